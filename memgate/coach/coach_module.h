// The coach as a module of the staged loader: "ai-routes".
//
// Stage 2, flag ENABLE_AI_ROUTES (on by default), fleet lock init:ai-routes
// (15 s; done flag init:ai-routes:done, 5 min), routes POST /api/ai/coach and
// GET /api/ai/coach/status. Its build renders and checks the prompt templates;
// the artifact is those templates, so every instance of a fleet answers with the
// same ones. Its load makes the provider client (when LLM_BASE_URL is set) and
// installs the handlers.
#pragma once

#include <memory>

#include "memgate/base/config.h"
#include "memgate/coach/coach.h"
#include "memgate/startup/module.h"

namespace memgate::mcp {
class Registry;
}

namespace memgate::coach {

inline constexpr std::string_view kCoachRoute = "/api/ai/coach";
inline constexpr std::string_view kCoachStatusRoute = "/api/ai/coach/status";

// Reads the coach's settings from `env` (kInvalidArgument naming the variable on
// a bad value). `retrievers` gives the knowledge base per request (the runtime
// hands over a RetrieverRegistry's get()); without one the coach answers
// without passages. With `mcp_registry`, each load adds (or replaces) the
// prompt "answer_from_knowledge_base" there (mcp_prompt.h), filled with the
// templates that load brought.
Result<std::shared_ptr<startup::Module>> make_coach_module(const Config& config, const EnvLookup& env,
                                                           RetrieverSource retrievers = {},
                                                           std::shared_ptr<mcp::Registry> mcp_registry = nullptr);

}  // namespace memgate::coach
