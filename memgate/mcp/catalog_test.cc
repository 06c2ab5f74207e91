// What the Registry holds, as McpServer serves it: resources with cursors,
// templates, reads, prompts and completion, in both protocol eras.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>

#include "memgate/mcp/server.h"

namespace memgate::mcp {
namespace {

namespace json = boost::json;

// A source of `n` documents "doc/000".."doc/nnn"; its position is the last
// number it returned, as three digits.
ResourceSource numbered_source(std::string scheme, int n) {
  ResourceSource s;
  s.list = [scheme, n](std::string_view after, size_t limit) -> Result<ResourcePage> {
    int start = 0;
    if (!after.empty()) {
      if (after.size() != 3 || after.find_first_not_of("0123456789") != std::string_view::npos)
        return InvalidArgument("not a position of ours");
      start = std::stoi(std::string(after)) + 1;
    }
    ResourcePage page;
    int i = start;
    for (; i < n && page.items.size() < limit; ++i) {
      char num[16];
      std::snprintf(num, sizeof num, "%03d", i);
      page.items.push_back({scheme + "://doc/" + num, "Doc " + std::string(num), "", "first line", "text/plain"});
      page.next = num;
    }
    if (i >= n) page.next.clear();
    return page;
  };
  s.read = [scheme](std::string_view uri) -> Result<std::vector<ResourceText>> {
    std::string prefix = scheme + "://doc/";
    if (uri.rfind(prefix, 0) != 0) return NotFound("not ours");
    std::string_view rest = uri.substr(prefix.size());
    if (rest.empty()) return InvalidArgument("a document URI needs an id");
    return std::vector<ResourceText>{{std::string(uri), "text/plain", "text of " + std::string(rest)}};
  };
  return s;
}

class CatalogTest : public ::testing::Test {
 protected:
  static ServerOptions small_pages() {
    ServerOptions o;
    o.resource_page_size = 4;
    return o;
  }
  CatalogTest() : registry_(std::make_shared<Registry>()), server_(small_pages(), registry_) {}

  json::object call(const std::string& method, json::object params = {}, bool stateless = false,
                    std::string mcp_name = "") {
    if (stateless)
      params["_meta"] = json::object{{"io.modelcontextprotocol/protocolVersion", "2026-07-28"},
                                     {"io.modelcontextprotocol/clientCapabilities", json::object{}}};
    std::string body = json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", params}});
    HttpExchange ex;
    ex.method = "POST";
    ex.body = body;
    ex.header = [&mcp_name](std::string_view name) -> std::string_view {
      if (name == "Mcp-Name") return mcp_name;
      return name == "Accept" ? "application/json, text/event-stream" : "";
    };
    HttpReply r = server_.handle(ex);
    last_status_ = r.status;
    return json::parse(r.body).as_object();
  }
  static int64_t code(const json::object& reply) { return reply.at("error").at("code").as_int64(); }

  // Every URI resources/list gives, following cursors; fails on a repeated cursor.
  std::vector<std::string> list_all(bool stateless, int* pages) {
    std::vector<std::string> uris;
    std::set<std::string> cursors;
    json::object params;
    *pages = 0;
    for (int guard = 0; guard < 100; ++guard) {
      json::object r = call("resources/list", params, stateless);
      EXPECT_TRUE(r.contains("result")) << json::serialize(r);
      if (!r.contains("result")) break;
      ++*pages;
      const json::object& result = r.at("result").as_object();
      EXPECT_LE(result.at("resources").as_array().size(), 4u);
      for (const json::value& v : result.at("resources").as_array()) uris.emplace_back(v.at("uri").as_string());
      if (!result.contains("nextCursor")) break;
      std::string next(result.at("nextCursor").as_string());
      EXPECT_TRUE(cursors.insert(next).second) << "a cursor came twice: " << next;
      params["cursor"] = next;
    }
    return uris;
  }

  std::shared_ptr<Registry> registry_;
  McpServer server_;
  int last_status_ = 0;
};

TEST_F(CatalogTest, CapabilitiesNameOnlyWhatTheRegistryHolds) {
  json::object caps =
      call("initialize", {{"protocolVersion", "2025-11-25"}}).at("result").at("capabilities").as_object();
  EXPECT_EQ(caps.size(), 1u) << json::serialize(caps);
  EXPECT_TRUE(caps.contains("logging")) << "the handshake era's logging/setLevel";
  EXPECT_TRUE(call("logging/setLevel", {{"level", "info"}}).at("result").as_object().empty());
  EXPECT_EQ(code(call("logging/setLevel", {{"level", "loud"}})), kInvalidParams);
  EXPECT_EQ(code(call("logging/setLevel", {{"level", "info"}}, true)), kMethodNotFound) << "not in 2026-07-28";
  EXPECT_FALSE(call("server/discover", {}, true).at("result").at("capabilities").as_object().contains("logging"));
  EXPECT_EQ(code(call("resources/list")), kMethodNotFound);
  EXPECT_EQ(code(call("prompts/list")), kMethodNotFound);
  registry_->add_resources(numbered_source("t", 3));
  registry_->add_prompt({"p", "", "", {}, [](const PromptArguments&) -> Result<PromptText> { return PromptText{}; }});
  caps = call("initialize", {{"protocolVersion", "2025-11-25"}}).at("result").at("capabilities").as_object();
  EXPECT_TRUE(caps.contains("resources"));
  EXPECT_TRUE(caps.contains("prompts"));
  EXPECT_FALSE(caps.contains("tools"));
  EXPECT_FALSE(caps.contains("completions"));
  caps = call("server/discover", {}, true).at("result").at("capabilities").as_object();
  EXPECT_TRUE(caps.contains("resources"));
}

TEST_F(CatalogTest, CursorsWalkEverySourceOnceInPagesOfTheSetSize) {
  registry_->add_resources(numbered_source("a", 10));
  registry_->add_resources(numbered_source("b", 4));
  for (bool stateless : {false, true}) {
    int pages = 0;
    std::vector<std::string> uris = list_all(stateless, &pages);
    ASSERT_EQ(uris.size(), 14u);
    EXPECT_EQ(uris.front(), "a://doc/000");
    EXPECT_EQ(uris[10], "b://doc/000");
    EXPECT_EQ(std::set<std::string>(uris.begin(), uris.end()).size(), 14u) << "no resource twice";
    EXPECT_EQ(pages, 4) << "4 + 4 + 4 + 2";
  }
}

TEST_F(CatalogTest, ACursorIsStableAndOpaque) {
  registry_->add_resources(numbered_source("a", 10));
  json::object first = call("resources/list").at("result").as_object();
  std::string cursor(first.at("nextCursor").as_string());
  EXPECT_EQ(cursor.find("003"), std::string::npos) << "opaque: the position is not in plain sight";
  json::object again = call("resources/list").at("result").as_object();
  EXPECT_EQ(again.at("nextCursor").as_string(), cursor) << "the same position, the same cursor";
  json::object second = call("resources/list", {{"cursor", cursor}}).at("result").as_object();
  EXPECT_EQ(second.at("resources").as_array()[0].at("uri"), "a://doc/004");
  EXPECT_EQ(call("resources/list", {{"cursor", cursor}}).at("result"), second) << "a cursor can be replayed";
}

TEST_F(CatalogTest, InvalidCursorsAreInvalidParams) {
  registry_->add_resources(numbered_source("a", 10));
  std::string good(call("resources/list").at("result").at("nextCursor").as_string());
  std::vector<json::value> bad = {json::value(""), json::value("not base64!"), json::value("YQ"),
                                  json::value(good + "A"), json::value(std::string(5000, 'A')), json::value(42),
                                  json::value(json::object{}),
                                  // base64url of "c1:9:003" (no source 9) and of "c1:0:zzz" (not a position of ours)
                                  json::value("YzE6OTowMDM"), json::value("YzE6MDp6eno")};
  for (const json::value& cursor : bad) {
    for (bool stateless : {false, true}) {
      json::object r = call("resources/list", {{"cursor", cursor}}, stateless);
      ASSERT_TRUE(r.contains("error")) << json::serialize(cursor);
      EXPECT_EQ(code(r), kInvalidParams) << json::serialize(cursor);
      EXPECT_EQ(last_status_, 200);
    }
  }
  EXPECT_TRUE(call("resources/list", {{"cursor", nullptr}}).contains("result")) << "null: from the start";
}

TEST_F(CatalogTest, ASourceThatDoesNotAdvanceEndsTheListInsteadOfLoopingTheClient) {
  ResourceSource stuck;
  stuck.list = [](std::string_view, size_t) -> Result<ResourcePage> {
    return ResourcePage{{{"s://x", "x", "", "", "text/plain"}}, "same"};
  };
  stuck.read = [](std::string_view) -> Result<std::vector<ResourceText>> { return NotFound(""); };
  registry_->add_resources(stuck);
  json::object first = call("resources/list").at("result").as_object();
  ASSERT_TRUE(first.contains("nextCursor"));
  json::object second = call("resources/list", {{"cursor", first.at("nextCursor")}}).at("result").as_object();
  EXPECT_FALSE(second.contains("nextCursor")) << json::serialize(second);
}

TEST_F(CatalogTest, ReadReturnsTheTextAndUnknownUrisAreResourceNotFound) {
  registry_->add_resources(numbered_source("a", 3));
  registry_->add_resources(numbered_source("b", 3));
  json::object r = call("resources/read", {{"uri", "b://doc/002"}}).at("result").as_object();
  ASSERT_EQ(r.at("contents").as_array().size(), 1u);
  EXPECT_EQ(r.at("contents").as_array()[0].at("text"), "text of 002");
  EXPECT_EQ(r.at("contents").as_array()[0].at("mimeType"), "text/plain");
  EXPECT_FALSE(r.contains("ttlMs"));
  r = call("resources/read", {{"uri", "b://doc/002"}}, true).at("result").as_object();
  EXPECT_EQ(r.at("resultType"), "complete");
  EXPECT_EQ(r.at("cacheScope"), "public");
  EXPECT_GT(r.at("ttlMs").as_int64(), 0);
  json::object missing = call("resources/read", {{"uri", "zz://nothing"}});
  EXPECT_EQ(code(missing), kInvalidParams);
  EXPECT_EQ(missing.at("error").at("data").at("uri"), "zz://nothing");
  EXPECT_EQ(code(call("resources/read", {{"uri", "a://doc/"}})), kInvalidParams);
  EXPECT_EQ(code(call("resources/read", {{"uri", 5}})), kInvalidParams);
  EXPECT_EQ(code(call("resources/read", {{"uri", std::string(9000, 'a')}})), kInvalidParams);
}

TEST_F(CatalogTest, McpNameMirrorsTheUriOfAReadPlainOrInBase64) {
  registry_->add_resources(numbered_source("a", 3));
  json::object params{{"uri", "a://doc/001"}};
  EXPECT_TRUE(call("resources/read", params, true, "a://doc/001").contains("result"));
  // base64 of "a://doc/001"
  EXPECT_TRUE(call("resources/read", params, true, "=?base64?YTovL2RvYy8wMDE=?=").contains("result"));
  EXPECT_EQ(code(call("resources/read", params, true, "a://doc/002")), kHeaderMismatch);
  EXPECT_EQ(last_status_, 400);
  EXPECT_EQ(code(call("resources/read", params, true, "=?base64?!!?=")), kHeaderMismatch);
}

TEST_F(CatalogTest, ListResultsCarryTtlAndCacheScopeOnlyInTheStatelessEra) {
  registry_->add_resources(numbered_source("a", 3));
  registry_->add_template({"a://doc/{id}", "doc", "A document", "one document", "text/plain"});
  registry_->add_prompt({"p", "", "", {}, [](const PromptArguments&) -> Result<PromptText> { return PromptText{}; }});
  for (const char* method : {"resources/list", "resources/templates/list", "prompts/list"}) {
    json::object legacy = call(method).at("result").as_object();
    EXPECT_FALSE(legacy.contains("ttlMs")) << method;
    EXPECT_FALSE(legacy.contains("resultType")) << method;
    json::object now = call(method, {}, true).at("result").as_object();
    EXPECT_EQ(now.at("resultType"), "complete") << method;
    EXPECT_EQ(now.at("cacheScope"), "public") << method;
    EXPECT_EQ(now.at("ttlMs").as_int64(), 300'000) << method;
  }
  json::object t = call("resources/templates/list").at("result").at("resourceTemplates").as_array()[0].as_object();
  EXPECT_EQ(t.at("uriTemplate"), "a://doc/{id}");
  EXPECT_EQ(t.at("name"), "doc");
  EXPECT_EQ(t.at("mimeType"), "text/plain");
}

TEST_F(CatalogTest, PromptsCheckTheirArgumentsBeforeFilling) {
  Prompt p;
  p.name = "ask";
  p.title = "Ask";
  p.description = "asks";
  p.arguments = {{"question", "what to ask", true}};
  p.get = [](const PromptArguments& a) -> Result<PromptText> {
    if (a.at("question") == "bad") return InvalidArgument("a bad question");
    return PromptText{"filled", {{"user", "Q: " + a.at("question")}}};
  };
  registry_->add_prompt(p);
  json::object list = call("prompts/list").at("result").at("prompts").as_array()[0].as_object();
  EXPECT_EQ(list.at("name"), "ask");
  EXPECT_EQ(list.at("arguments").as_array()[0].at("required"), true);
  for (bool stateless : {false, true}) {
    json::object r =
        call("prompts/get", {{"name", "ask"}, {"arguments", {{"question", "why"}, {"extra", 1}}}}, stateless)
            .at("result")
            .as_object();
    EXPECT_EQ(r.at("description"), "filled");
    EXPECT_EQ(r.at("messages").as_array()[0].at("role"), "user");
    EXPECT_EQ(r.at("messages").as_array()[0].at("content").at("type"), "text");
    EXPECT_EQ(r.at("messages").as_array()[0].at("content").at("text"), "Q: why");
  }
  EXPECT_EQ(code(call("prompts/get", {{"name", "ask"}})), kInvalidParams) << "question is required";
  EXPECT_EQ(code(call("prompts/get", {{"name", "ask"}, {"arguments", {{"question", 3}}}})), kInvalidParams);
  EXPECT_EQ(code(call("prompts/get", {{"name", "ask"}, {"arguments", {{"question", std::string(5000, 'q')}}}})),
            kInvalidParams);
  EXPECT_EQ(code(call("prompts/get", {{"name", "ask"}, {"arguments", {{"question", "bad"}}}})), kInvalidParams);
  EXPECT_EQ(code(call("prompts/get", {{"name", "nope"}})), kInvalidParams);
  // Registering again replaces the prompt of that name.
  p.description = "asks again";
  registry_->add_prompt(p);
  EXPECT_EQ(call("prompts/list").at("result").at("prompts").as_array().size(), 1u);
}

TEST_F(CatalogTest, CompletionAnswersTheRegisteredArgumentAndNothingElse) {
  registry_->add_template({"a://doc/{id}", "doc", "", "", "text/plain"});
  registry_->add_completer({Completer::Ref::kResource, "a://doc/{id}", "id",
                            [](std::string_view value, size_t limit, bool* more) -> Result<std::vector<std::string>> {
                              std::vector<std::string> out;
                              for (int i = 0; i < 300 && out.size() < limit; ++i) out.push_back(std::string(value) + std::to_string(i));
                              *more = true;
                              return out;
                            }});
  json::object caps =
      call("initialize", {{"protocolVersion", "2025-11-25"}}).at("result").at("capabilities").as_object();
  EXPECT_TRUE(caps.contains("completions"));
  json::object r = call("completion/complete", {{"ref", {{"type", "ref/resource"}, {"uri", "a://doc/{id}"}}},
                                                {"argument", {{"name", "id"}, {"value", "ab"}}}})
                       .at("result")
                       .at("completion")
                       .as_object();
  EXPECT_EQ(r.at("values").as_array().size(), kMaxCompletionValues);
  EXPECT_EQ(r.at("values").as_array()[0], "ab0");
  EXPECT_EQ(r.at("hasMore"), true);
  r = call("completion/complete", {{"ref", {{"type", "ref/resource"}, {"uri", "a://other/{x}"}}},
                                   {"argument", {{"name", "x"}, {"value", ""}}}})
          .at("result")
          .at("completion")
          .as_object();
  EXPECT_TRUE(r.at("values").as_array().empty());
  EXPECT_EQ(code(call("completion/complete", {{"ref", {{"type", "ref/thing"}}}, {"argument", {{"name", "id"}}}})),
            kInvalidParams);
  EXPECT_EQ(code(call("completion/complete", {{"ref", 1}})), kInvalidParams);
}

}  // namespace
}  // namespace memgate::mcp
