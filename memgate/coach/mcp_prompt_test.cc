// The coach's MCP prompt: its templates filled with what the retriever finds.
#include "memgate/coach/mcp_prompt.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "memgate/mcp/server.h"

namespace memgate::coach {
namespace {

namespace json = boost::json;

class TwoPassages final : public Retriever {
 public:
  Result<std::vector<Passage>> search(std::string_view question, int k) const override {
    last_k = k;
    last_question = std::string(question);
    return std::vector<Passage>{{"d1", "Locks", "computing/locks.md", "Fencing", "Use a fencing {token}.", "", 2},
                                {"d2", "Moon", "astronomy/moon.txt", "", "Waxing gibbous.", "", 1}};
  }
  mutable int last_k = 0;
  mutable std::string last_question;
};

TEST(CoachPrompt, FillsTheCoachTemplatesWithTheRetrievedPassagesNumbered) {
  auto retriever = std::make_shared<TwoPassages>();
  mcp::Prompt p = coach_prompt(default_templates(), [retriever] { return retriever; }, 4, 4000);
  EXPECT_EQ(p.name, "answer_from_knowledge_base");
  ASSERT_EQ(p.arguments.size(), 1u);
  EXPECT_TRUE(p.arguments[0].required);
  auto filled = p.get({{"question", "what is a fencing token?"}});
  ASSERT_TRUE(filled.ok()) << filled.status().to_string();
  EXPECT_EQ(retriever->last_k, 4) << "as many passages as the coach uses";
  EXPECT_EQ(retriever->last_question, "what is a fencing token?");
  ASSERT_EQ(filled->messages.size(), 2u);
  const std::string& grounding = filled->messages[0].text;
  EXPECT_EQ(grounding.rfind(default_templates().system.substr(0, 40), 0), 0u) << "the coach's own instructions";
  EXPECT_NE(grounding.find("[1] Locks (computing/locks.md) — Fencing\nUse a fencing {token}."), std::string::npos)
      << grounding;
  EXPECT_NE(grounding.find("[2] Moon (astronomy/moon.txt)\nWaxing gibbous."), std::string::npos) << grounding;
  EXPECT_EQ(grounding.find("{passages}"), std::string::npos);
  EXPECT_EQ(filled->messages[1].text, "what is a fencing token?");
  EXPECT_EQ(filled->description, "Grounded in 2 knowledge-base passages");
}

TEST(CoachPrompt, WithoutAKnowledgeBaseItSaysSoAndStillGrounds) {
  mcp::Prompt p = coach_prompt(default_templates(), [] { return std::shared_ptr<const Retriever>(); }, 4, 4000);
  auto filled = p.get({{"question", "anything?"}});
  ASSERT_TRUE(filled.ok());
  EXPECT_NE(filled->messages[0].text.find(default_templates().no_passages), std::string::npos);
  EXPECT_NE(filled->description.find("not loaded"), std::string::npos);
  EXPECT_EQ(p.get({{"question", "  "}}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(coach_prompt(default_templates(), {}, 4, 10).get({{"question", std::string(11, 'a')}}).status().code(),
            Code::kInvalidArgument);
}

TEST(CoachPrompt, ServedByMcpServerInBothEras) {
  auto registry = std::make_shared<mcp::Registry>();
  auto retriever = std::make_shared<TwoPassages>();
  registry->add_prompt(coach_prompt(default_templates(), [retriever] { return retriever; }, 4, 4000));
  mcp::McpServer server({}, registry);
  for (bool stateless : {false, true}) {
    json::object params{{"name", "answer_from_knowledge_base"}, {"arguments", {{"question", "fencing?"}}}};
    if (stateless)
      params["_meta"] = json::object{{"io.modelcontextprotocol/protocolVersion", "2026-07-28"},
                                     {"io.modelcontextprotocol/clientCapabilities", json::object{}}};
    std::string body =
        json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "prompts/get"}, {"params", params}});
    mcp::HttpExchange ex;
    ex.method = "POST";
    ex.body = body;
    ex.header = [](std::string_view) -> std::string_view { return ""; };
    json::object r = json::parse(server.handle(ex).body).at("result").as_object();
    auto messages = r.at("messages").as_array();
    ASSERT_EQ(messages.size(), 2u);
    EXPECT_EQ(messages[0].at("role"), "user");
    EXPECT_NE(std::string(messages[0].at("content").at("text").as_string()).find("[1] Locks"), std::string::npos);
    EXPECT_EQ(r.contains("resultType"), stateless);
  }
}

}  // namespace
}  // namespace memgate::coach
