// Coach: the POST /api/ai/coach handler, its settings and its prompt templates.
//
// A question comes in as {"question": "...", "history": [...]?, "stream": bool?}.
// The coach first refuses what a browser may send from another site: an Origin
// header off COACH_ALLOWED_ORIGINS is 403 (no Origin: not a browser, allowed),
// and a body that is not Content-Type: application/json is 415 (which takes the
// request out of the "simple" ones a page may send cross-site without a CORS
// preflight). Then it checks the body (sizes, shape), passes it through the bulkhead, and on a
// worker thread asks the current Retriever for the best passages. Then:
//   - with a provider (LLM_BASE_URL), it sends the passages, the history and the
//     question to the chat-completions server and answers {"mode":"generative",
//     "answer", "citations", "usage"?, ...}; with "stream": true it relays the provider's
//     pieces as server-sent events (event: meta, token..., done | error);
//   - without one, it answers {"mode":"extractive", ...}: the passages
//     themselves with their citations. It never pretends to generate.
// Provider failures become 502 (with the provider's status and a generic
// message: the provider's own error text is logged, cut and masked, never
// relayed), timeouts 504, a
// full bulkhead 503 with Retry-After. A client that goes away cancels its
// upstream call.
//
// Thread-safe: handle() may be called from any IO thread at once. The Coach must
// be held by a shared_ptr (its calls keep it alive until they report).
#pragma once

#include "memgate/http/origin.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/config.h"
#include "memgate/base/status.h"
#include "memgate/coach/bulkhead.h"
#include "memgate/coach/chat_client.h"
#include "memgate/coach/retriever.h"
#include "memgate/http/request.h"
#include "memgate/http/responder.h"
#include "memgate/http/response.h"

namespace memgate {
class WorkerPool;
}

namespace memgate::coach {

// Settings, from the environment (see docs/operations.md, "AI coach").
struct CoachOptions {
  // The provider; empty base_url: extractive answers only.
  std::string llm_base_url;  // LLM_BASE_URL
  std::string llm_api_key;   // LLM_API_KEY (secret)
  std::string llm_model = "gpt-4o-mini";  // LLM_MODEL
  std::string llm_tls_ca;    // LLM_TLS_CA
  std::chrono::milliseconds llm_connect_timeout{5'000};   // LLM_CONNECT_TIMEOUT
  std::chrono::milliseconds llm_read_timeout{30'000};     // LLM_READ_TIMEOUT
  std::chrono::milliseconds llm_request_timeout{120'000}; // LLM_REQUEST_TIMEOUT
  size_t llm_max_response = 1 << 20;                      // LLM_MAX_RESPONSE
  std::optional<int64_t> llm_max_tokens;                  // LLM_MAX_TOKENS; unset: not sent
  TokenParam llm_token_param = TokenParam::kMaxCompletionTokens;  // LLM_TOKEN_PARAM
  // The route.
  size_t max_inflight = 8;        // COACH_MAX_INFLIGHT
  size_t max_queue = 32;          // COACH_QUEUE
  size_t max_question = 4000;     // COACH_MAX_QUESTION (bytes)
  size_t max_body = 64 * 1024;    // COACH_MAX_BODY
  size_t max_history = 20;        // COACH_MAX_HISTORY (messages)
  int passages = 4;               // COACH_PASSAGES
  size_t passage_bytes = 1200;    // COACH_PASSAGE_BYTES
  int retry_after_seconds = 2;    // Retry-After on a full bulkhead
  // COACH_ALLOWED_ORIGINS: scheme://host or scheme://host:port (an entry without
  // a port allows any port), or "*"; the same form and default as /mcp's.
  std::vector<std::string> allowed_origins = {"http://localhost", "http://127.0.0.1", "http://[::1]",
                                              "https://localhost", "https://127.0.0.1", "https://[::1]"};
};

// Whether a request with this Origin header may call the coach: the same rule
// as /mcp's (http/origin.h).
using http::origin_allowed;

// The coach's rows of the settings table (LLM_*, COACH_*), with CoachOptions'
// defaults: what the runtime parses, checks and lists before any module is made.
SettingRows settings();

// Reads the settings through `env` (the runtime hands it settings_lookup(); an
// unset variable reads as its row's default). A bad value fails with kInvalidArgument and a message that
// names the variable, its value (never LLM_API_KEY's; a URL with its credentials
// redacted) and the accepted form.
Result<CoachOptions> coach_options_from_env(const EnvLookup& env);

// The prompt templates: what the coach's build produces and its artifact holds.
struct PromptTemplates {
  std::string system;        // with {passages}
  std::string passage;       // with {n} {title} {path} {heading} {text}
  std::string no_passages;   // replaces {passages} when there are none
  std::string extractive_note;
  std::string empty_note;
};
PromptTemplates default_templates();
// The artifact: the templates as JSON, and back (kInvalidArgument when malformed).
std::string templates_to_artifact(const PromptTemplates& t);
Result<PromptTemplates> templates_from_artifact(std::string_view artifact);

// The current retriever, asked per request (null: no knowledge base).
using RetrieverSource = std::function<std::shared_ptr<const Retriever>()>;

class Coach : public std::enable_shared_from_this<Coach> {
 public:
  // Fails when the provider client cannot be made (bad URL or CA file).
  static Result<std::shared_ptr<Coach>> create(CoachOptions options, PromptTemplates templates,
                                               RetrieverSource retrievers, WorkerPool& workers);
  ~Coach();

  // POST /api/ai/coach.
  void handle(const http::Request& request, http::Responder responder);
  // GET /api/ai/coach/status: mode, model, limits and counters (no secrets).
  http::Response status() const;

  // Cancels every provider call in flight and drops idle connections.
  void stop();

  bool generative() const { return client_ != nullptr; }

  struct Counters {
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> rejected{0};         // bulkhead full, or the worker pool refused the job
    std::atomic<uint64_t> invalid{0};          // 400/403/413/415
    std::atomic<uint64_t> extractive{0};
    std::atomic<uint64_t> generative{0};
    std::atomic<uint64_t> provider_errors{0};  // 502
    std::atomic<uint64_t> timeouts{0};         // 504
    std::atomic<uint64_t> cancelled{0};        // the client went away, or the server stopped first
    std::atomic<int64_t> jobs{0};              // admitted and not yet finished
    // What the provider said its answers used (calls that said, believably).
    std::atomic<uint64_t> prompt_tokens{0};
    std::atomic<uint64_t> completion_tokens{0};
  };
  const Counters& counters() const { return counters_; }
  Bulkhead::Counts bulkhead() const { return bulkhead_->counts(); }
  ChatClient::Stats client_stats() const;

  struct Job;

 private:
  Coach(CoachOptions options, PromptTemplates templates, RetrieverSource retrievers, WorkerPool& workers);
  void run(const std::shared_ptr<Job>& job);
  void generate(const std::shared_ptr<Job>& job);

  CoachOptions options_;
  PromptTemplates templates_;
  RetrieverSource retrievers_;
  WorkerPool& workers_;
  std::shared_ptr<Bulkhead> bulkhead_;
  std::unique_ptr<ChatClient> client_;
  Counters counters_;
};

}  // namespace memgate::coach
