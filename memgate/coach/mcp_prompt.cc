#include "memgate/coach/mcp_prompt.h"

#include <spdlog/spdlog.h>

namespace memgate::coach {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

}  // namespace

std::string render_system_prompt(const PromptTemplates& templates, const std::vector<Passage>& passages) {
  std::string text;
  for (size_t i = 0; i < passages.size(); ++i) {
    const Passage& p = passages[i];
    std::string s = templates.passage;
    replace_all(s, "{n}", std::to_string(i + 1));
    replace_all(s, "{title}", p.title);
    replace_all(s, "{path}", p.path);
    replace_all(s, "{heading}", p.heading.empty() ? "" : " — " + p.heading);
    replace_all(s, "{text}", p.text);  // last: passage text may contain braces
    text += s;
  }
  std::string system = templates.system;
  replace_all(system, "{passages}", text.empty() ? templates.no_passages : text);
  return system;
}

mcp::Prompt coach_prompt(PromptTemplates templates, RetrieverSource retrievers, int passages, size_t max_question) {
  mcp::Prompt p;
  p.name = std::string(kCoachPromptName);
  p.title = "Answer from the knowledge base";
  p.description =
      "The coach's grounding: the knowledge-base passages that best match the question, numbered for citation, with "
      "the instructions to answer from them alone; run it with your own model.";
  p.arguments = {{"question", "the question to answer from the knowledge base", true}};
  p.get = [templates = std::move(templates), retrievers = std::move(retrievers), passages,
           max_question](const mcp::PromptArguments& args) -> Result<mcp::PromptText> {
    const std::string& question = args.at("question");
    if (question.size() > max_question)
      return InvalidArgument("question is longer than " + std::to_string(max_question) + " bytes");
    if (question.find_first_not_of(" \t\r\n") == std::string::npos) return InvalidArgument("question is empty");
    std::vector<Passage> found;
    std::string note;
    std::shared_ptr<const Retriever> retriever = retrievers ? retrievers() : nullptr;
    if (!retriever) {
      note = "the knowledge base is not loaded";
    } else if (auto r = retriever->search(question, passages); r.ok()) {
      found = std::move(*r);
    } else {
      spdlog::warn("coach: the MCP prompt's retrieval failed: {}", r.status().to_string());
      note = "retrieval failed";
    }
    mcp::PromptText out;
    out.description = found.empty() ? "No knowledge-base passage" + (note.empty() ? std::string(" matched") : " (" + note + ")")
                                    : "Grounded in " + std::to_string(found.size()) + " knowledge-base passage" +
                                          (found.size() == 1 ? "" : "s");
    out.messages.push_back({"user", render_system_prompt(templates, found)});
    out.messages.push_back({"user", question});
    return out;
  };
  return p;
}

}  // namespace memgate::coach
