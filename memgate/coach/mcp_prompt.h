// The coach's grounding as an MCP prompt, so a host can run it with its own
// model: "answer_from_knowledge_base", one required argument `question`.
// prompts/get retrieves the passages for the question as the coach does (the
// same Retriever, the same number of passages) and fills the coach's own
// templates (the ones its artifact carries) with them; the result is two user
// messages, the grounding instructions with the numbered passages, then the
// question.
//
// Thread-safe: the prompt's callback holds copies of the templates and asks
// `retrievers` per call.
#pragma once

#include <string>
#include <vector>

#include "memgate/coach/coach.h"
#include "memgate/coach/retriever.h"
#include "memgate/mcp/registry.h"

namespace memgate::coach {

inline constexpr std::string_view kCoachPromptName = "answer_from_knowledge_base";

// The system prompt the coach sends a provider: `templates.system` with
// {passages} replaced by each passage through `templates.passage` ({n} from 1),
// or by `templates.no_passages` when there are none.
std::string render_system_prompt(const PromptTemplates& templates, const std::vector<Passage>& passages);

// The prompt, for mcp::Registry::add_prompt. `passages` per question (the
// coach's COACH_PASSAGES); a question longer than `max_question` bytes or
// without a word is kInvalidArgument. Without a retriever (the kb is off or not
// loaded) the prompt is filled with no_passages and its description says why.
mcp::Prompt coach_prompt(PromptTemplates templates, RetrieverSource retrievers, int passages, size_t max_question);

}  // namespace memgate::coach
