// The coach handler.
//
// The IO thread does only what is cheap and bounded: size checks and parsing a
// body of at most COACH_MAX_BODY bytes. Everything else happens elsewhere: the
// bulkhead admits the request (or queues it, or says 503 at once), retrieval
// runs on the worker pool (SQLite is blocking), and the provider call runs on the
// chat client's own io_context. A Job carries the request from one to the next;
// it holds the bulkhead slot, so whichever path a request ends on (answered,
// failed, client gone), dropping the last reference to its Job frees its place.
//
// The stream's first event (meta) goes out only when the provider said 200, so a
// provider error before any piece still becomes a proper 502/504 status; an
// error after the stream began can only be an `error` event.
#include "memgate/coach/coach.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "memgate/base/units.h"
#include "memgate/base/worker_pool.h"
#include "memgate/coach/mcp_prompt.h"
#include "memgate/http/media_type.h"
#include "memgate/http/origin.h"

namespace memgate::coach {

namespace json = boost::json;
using http::Response;

namespace {

// A streaming client this far behind (StreamWriter::queued_bytes(): what the
// server holds for it that the kernel has not taken) is given up on: the
// provider call is cancelled (no more reading upstream) and the stream ends with
// an error event. Below the server's own cap, past which it drops the connection.
constexpr size_t kMaxStreamBacklog = 1 << 20;
static_assert(kMaxStreamBacklog < http::StreamWriter::kMaxPending);
// While a stream waits on the provider, a comment line this often: a write is the
// only way the HTTP layer notices that a streaming client has gone.
constexpr std::chrono::seconds kHeartbeat{1};

Response error_json(int status, std::string_view code, std::string_view message, int provider_status = 0) {
  json::object err{{"code", code}, {"message", message}};
  if (provider_status > 0) err["provider_status"] = provider_status;
  return Response::json(status, json::serialize(json::object{{"error", std::move(err)}}));
}

// {"prompt_tokens","completion_tokens"} for an answer, and the counters.
json::object usage_json(const TokenUsage& u) {
  return json::object{{"prompt_tokens", u.prompt_tokens}, {"completion_tokens", u.completion_tokens}};
}

json::array citations_json(const std::vector<Passage>& passages, const std::string* answer) {
  json::array out;
  for (size_t i = 0; i < passages.size(); ++i) {
    const Passage& p = passages[i];
    json::object c{{"n", i + 1},         {"doc_id", p.doc_id}, {"title", p.title},
                   {"path", p.path},     {"heading", p.heading}, {"score", p.score}};
    if (answer) c["cited"] = answer->find("[" + std::to_string(i + 1) + "]") != std::string::npos;
    else c["excerpt"] = p.text;
    out.push_back(std::move(c));
  }
  return out;
}

template <typename Field>
std::function<Status(const std::string&, CoachOptions&)> positive_duration(Field field) {
  return [field](const std::string& t, CoachOptions& o) {
    auto v = parse_duration(t);
    if (!v.ok() || v->count() <= 0) return InvalidArgument("expected a positive " + std::string(kDurationForm));
    o.*field = *v;
    return Status::Ok();
  };
}

template <typename Field>
std::function<Status(const std::string&, CoachOptions&)> whole(Field field, int64_t min, int64_t max) {
  return [field, min, max](const std::string& t, CoachOptions& o) {
    auto v = parse_int(t, min, max);
    if (!v.ok())
      return InvalidArgument("expected a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    o.*field = static_cast<std::remove_reference_t<decltype(o.*field)>>(*v);
    return Status::Ok();
  };
}

template <typename Field>
std::function<Status(const std::string&, CoachOptions&)> bytes(Field field, uint64_t min, uint64_t max) {
  return [field, min, max](const std::string& t, CoachOptions& o) {
    auto v = parse_size(t);
    if (!v.ok() || v->is_share || v->bytes < min || v->bytes > max)
      return InvalidArgument("expected a size from " + format_bytes(min) + " to " + format_bytes(max) +
                             " such as 4000, 64KB or 1MB");
    o.*field = static_cast<size_t>(v->bytes);
    return Status::Ok();
  };
}

SettingRow row(const char* env, const char* flag, const char* def, const char* help, bool secret = false) {
  return module_row("AI coach (ENABLE_AI_ROUTES)", env, flag, def, help, secret);
}

// The coach's rows; the defaults are CoachOptions' own (a test holds them equal).
const std::vector<OptionRow<CoachOptions>>& coach_rows() {
  static const std::vector<OptionRow<CoachOptions>> rows = {
      // Secret: a URL may hold credentials (user:password@, ?api_key=); shown redacted.
      {row("LLM_BASE_URL", "llm-base-url", "",
           "An OpenAI-compatible chat-completions server, http(s)://host[:port][/path]; unset: extractive answers",
           true),
       [](const std::string& t, CoachOptions& o) {
         if (Status st = check_base_url(t); !st.ok()) return st;
         o.llm_base_url = t;
         return Status::Ok();
       }},
      {row("LLM_API_KEY", "llm-api-key", "", "Sent to the provider as Authorization: Bearer <key>", true),
       [](const std::string& t, CoachOptions& o) {
         o.llm_api_key = t;
         return Status::Ok();
       }},
      {row("LLM_MODEL", "llm-model", "gpt-4o-mini", "The model of each provider request"),
       [](const std::string& t, CoachOptions& o) {
         if (t.empty() || t.size() > 200) return InvalidArgument("expected a model name of 1 to 200 characters");
         o.llm_model = t;
         return Status::Ok();
       }},
      {row("LLM_TLS_CA", "llm-tls-ca", "", "PEM CA file for an https:// provider with a private CA"),
       [](const std::string& t, CoachOptions& o) {
         FILE* f = std::fopen(t.c_str(), "r");
         if (!f) return InvalidArgument("expected a readable PEM file");
         std::fclose(f);
         o.llm_tls_ca = t;
         return Status::Ok();
       }},
      {row("LLM_CONNECT_TIMEOUT", "llm-connect-timeout", "5s", "TCP connect plus TLS handshake to the provider"),
       positive_duration(&CoachOptions::llm_connect_timeout)},
      {row("LLM_READ_TIMEOUT", "llm-read-timeout", "30s", "The longest the provider may stay silent"),
       positive_duration(&CoachOptions::llm_read_timeout)},
      {row("LLM_REQUEST_TIMEOUT", "llm-request-timeout", "120s", "The whole provider call"),
       positive_duration(&CoachOptions::llm_request_timeout)},
      {row("LLM_MAX_RESPONSE", "llm-max-response", "1MB", "The largest answer read from the provider (502 above)"),
       bytes(&CoachOptions::llm_max_response, 1024, 64ull << 20)},
      {row("LLM_MAX_TOKENS", "llm-max-tokens", "",
           "The longest answer, in tokens, asked of the provider; unset: not sent"),
       [](const std::string& t, CoachOptions& o) {
         auto v = parse_int(t, 1, 1'000'000);
         if (!v.ok()) return InvalidArgument("expected a whole number from 1 to 1000000");
         o.llm_max_tokens = *v;
         return Status::Ok();
       }},
      {row("LLM_TOKEN_PARAM", "llm-token-param", "max_completion_tokens",
           "The name LLM_MAX_TOKENS is sent under: max_completion_tokens or max_tokens (Ollama)"),
       [](const std::string& t, CoachOptions& o) {
         if (t == "max_completion_tokens") o.llm_token_param = TokenParam::kMaxCompletionTokens;
         else if (t == "max_tokens") o.llm_token_param = TokenParam::kMaxTokens;
         else return InvalidArgument("expected max_completion_tokens or max_tokens");
         return Status::Ok();
       }},
      {row("COACH_MAX_INFLIGHT", "coach-max-inflight", "8", "Coach requests at work at once (the bulkhead)"),
       whole(&CoachOptions::max_inflight, 1, 4096)},
      {row("COACH_QUEUE", "coach-queue", "32", "Coach requests waiting behind them (503 + Retry-After beyond)"),
       whole(&CoachOptions::max_queue, 0, 100'000)},
      {row("COACH_MAX_QUESTION", "coach-max-question", "4000",
           "The longest question (and history message), in bytes (413 above)"),
       bytes(&CoachOptions::max_question, 1, 1 << 20)},
      {row("COACH_MAX_BODY", "coach-max-body", "64KB", "The largest coach request body (413 above)"),
       bytes(&CoachOptions::max_body, 64, 16 << 20)},
      {row("COACH_MAX_HISTORY", "coach-max-history", "20", "The most history messages (413 above)"),
       whole(&CoachOptions::max_history, 0, 200)},
      {row("COACH_PASSAGES", "coach-passages", "4", "Knowledge-base passages retrieved per question"),
       whole(&CoachOptions::passages, 1, 20)},
      {row("COACH_PASSAGE_BYTES", "coach-passage-bytes", "1200", "Each passage's text is cut to this"),
       bytes(&CoachOptions::passage_bytes, 64, 64 * 1024)},
      {row("COACH_ALLOWED_ORIGINS", "coach-allowed-origins",
           "http://localhost,http://127.0.0.1,http://[::1],https://localhost,https://127.0.0.1,https://[::1]",
           "Origins allowed to call POST /api/ai/coach (an entry without a port allows any port; * for all)"),
       [](const std::string& t, CoachOptions& o) {
         if (Status st = http::check_origin_list(t); !st.ok()) return st;
         o.allowed_origins = http::split_origin_list(t);
         return Status::Ok();
       }},
  };
  return rows;
}

}  // namespace

SettingRows settings() { return to_rows(coach_rows()); }

Result<CoachOptions> coach_options_from_env(const EnvLookup& env) {
  CoachOptions o;
  if (Status st = apply_rows(coach_rows(), env, o); !st.ok()) return st;
  return o;
}

PromptTemplates default_templates() {
  PromptTemplates t;
  t.system =
      "You are a coach. Answer the user's question using only the knowledge-base passages below. "
      "Cite every passage you use by its number in square brackets, like [1]. If the passages do not "
      "contain the answer, say that the knowledge base does not cover it; do not invent facts.\n\n"
      "Passages:\n\n{passages}";
  t.passage = "[{n}] {title} ({path}){heading}\n{text}\n\n";
  t.no_passages = "(no passage of the knowledge base matched the question)\n";
  t.extractive_note =
      "No language model is configured (LLM_BASE_URL is unset): these are the knowledge-base passages that "
      "best match the question, quoted as they are.";
  t.empty_note = "No language model is configured, and no knowledge-base passage matched the question.";
  return t;
}

std::string templates_to_artifact(const PromptTemplates& t) {
  return json::serialize(json::object{{"format", "memgate-coach-templates/1"},
                                      {"system", t.system},
                                      {"passage", t.passage},
                                      {"no_passages", t.no_passages},
                                      {"extractive_note", t.extractive_note},
                                      {"empty_note", t.empty_note}});
}

Result<PromptTemplates> templates_from_artifact(std::string_view artifact) {
  boost::system::error_code ec;
  json::value v = json::parse(artifact, ec);
  if (ec || !v.is_object()) return InvalidArgument("the coach artifact is not a JSON object");
  const json::object& o = v.as_object();
  auto field = [&](const char* name, std::string* out) {
    auto* f = o.if_contains(name);
    if (!f || !f->is_string()) return false;
    *out = f->as_string().c_str();
    return true;
  };
  PromptTemplates t;
  std::string format;
  if (!field("format", &format) || format != "memgate-coach-templates/1")
    return InvalidArgument("the coach artifact has an unknown format");
  if (!field("system", &t.system) || !field("passage", &t.passage) || !field("no_passages", &t.no_passages) ||
      !field("extractive_note", &t.extractive_note) || !field("empty_note", &t.empty_note))
    return InvalidArgument("the coach artifact misses a template");
  if (t.system.find("{passages}") == std::string::npos || t.passage.find("{text}") == std::string::npos)
    return InvalidArgument("the coach artifact's templates lack their placeholders");
  return t;
}

// --- one request ---------------------------------------------------------------

struct Coach::Job {
  std::shared_ptr<Coach> coach;
  std::string question;
  std::vector<ChatMessage> history;
  bool stream = false;
  http::Responder responder;
  http::StreamWriter writer;  // once the stream began
  bool streaming = false;
  bool fell_behind = false;  // the backlog guard cancelled the provider call
  std::chrono::steady_clock::time_point last_write{};  // of the stream, on the client's thread
  Bulkhead::Slot slot;
  std::vector<Passage> passages;
  std::string retrieval_note;

  Job() = default;
  ~Job() {
    if (coach) coach->counters_.jobs.fetch_sub(1, std::memory_order_relaxed);
  }
  bool connected() const { return streaming ? writer.connected() : responder.connected(); }
  // The place in the bulkhead is given back before the answer goes out: a client
  // that has its answer may ask again at once and must find the place free.
  void send(Response r) {
    slot.release();
    if (responder.valid()) std::move(responder).send(std::move(r));
  }
};

Result<std::shared_ptr<Coach>> Coach::create(CoachOptions options, PromptTemplates templates,
                                             RetrieverSource retrievers, WorkerPool& workers) {
  std::shared_ptr<Coach> coach(new Coach(std::move(options), std::move(templates), std::move(retrievers), workers));
  if (!coach->options_.llm_base_url.empty()) {
    ChatClientOptions co;
    co.base_url = coach->options_.llm_base_url;
    co.api_key = coach->options_.llm_api_key;
    co.ca_file = coach->options_.llm_tls_ca;
    co.connect_timeout = coach->options_.llm_connect_timeout;
    co.read_timeout = coach->options_.llm_read_timeout;
    co.request_timeout = coach->options_.llm_request_timeout;
    co.max_response_bytes = coach->options_.llm_max_response;
    co.max_idle_connections = coach->options_.max_inflight;
    auto client = ChatClient::create(std::move(co));
    if (!client.ok()) return client.status();
    coach->client_ = std::move(*client);
    spdlog::info("coach: generative answers through {} (model {})", coach->client_->endpoint(), coach->options_.llm_model);
  } else {
    spdlog::info("coach: LLM_BASE_URL is unset; answers are extractive (cited passages)");
  }
  return coach;
}

Coach::Coach(CoachOptions options, PromptTemplates templates, RetrieverSource retrievers, WorkerPool& workers)
    : options_(std::move(options)),
      templates_(std::move(templates)),
      retrievers_(std::move(retrievers)),
      workers_(workers),
      bulkhead_(Bulkhead::make(options_.max_inflight, options_.max_queue)) {}

Coach::~Coach() = default;

void Coach::stop() {
  if (client_) client_->shutdown();
}

ChatClient::Stats Coach::client_stats() const { return client_ ? client_->stats() : ChatClient::Stats{}; }

void Coach::handle(const http::Request& request, http::Responder responder) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  auto invalid = [&](int status, std::string_view message) {
    counters_.invalid.fetch_add(1, std::memory_order_relaxed);
    std::move(responder).send(error_json(status, http::error_code_for_status(status), message));
  };
  // Cross-site requests first, before the body is even looked at.
  std::string_view origin = request.header("origin");
  if (!origin.empty() && !origin_allowed(options_.allowed_origins, origin))
    return invalid(403, "the Origin is not allowed to call the coach (COACH_ALLOWED_ORIGINS)");
  if (!http::is_media_type(request.header("content-type"), "application/json"))
    return invalid(415, "the body must be sent as Content-Type: application/json");
  std::string_view body = request.body();
  if (body.size() > options_.max_body)
    return invalid(413, "the request body is " + std::to_string(body.size()) + " bytes; COACH_MAX_BODY allows " +
                            std::to_string(options_.max_body));
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec) return invalid(400, "the body is not valid JSON: " + ec.message());
  if (!doc.is_object()) return invalid(400, "the body must be a JSON object");
  const json::object& o = doc.as_object();
  auto job = std::make_shared<Job>();
  auto* q = o.if_contains("question");
  if (!q || !q->is_string()) return invalid(400, "\"question\" is required and must be a string");
  job->question = q->as_string().c_str();
  if (job->question.find_first_not_of(" \t\r\n") == std::string::npos) return invalid(400, "\"question\" is empty");
  if (job->question.size() > options_.max_question)
    return invalid(413, "the question is " + std::to_string(job->question.size()) +
                            " bytes; COACH_MAX_QUESTION allows " + std::to_string(options_.max_question));
  if (auto* s = o.if_contains("stream")) {
    if (!s->is_bool()) return invalid(400, "\"stream\" must be true or false");
    job->stream = s->as_bool();
  }
  if (auto* h = o.if_contains("history"); h && !h->is_null()) {
    if (!h->is_array()) return invalid(400, "\"history\" must be an array of {\"role\", \"content\"}");
    const json::array& a = h->as_array();
    if (a.size() > options_.max_history)
      return invalid(413, "the history has " + std::to_string(a.size()) + " messages; COACH_MAX_HISTORY allows " +
                              std::to_string(options_.max_history));
    for (const json::value& m : a) {
      const json::object* mo = m.if_object();
      const json::value* role = mo ? mo->if_contains("role") : nullptr;
      const json::value* content = mo ? mo->if_contains("content") : nullptr;
      if (!role || !role->is_string() || !content || !content->is_string())
        return invalid(400, "each history entry must be {\"role\": \"user\"|\"assistant\", \"content\": string}");
      std::string r = role->as_string().c_str();
      if (r != "user" && r != "assistant") return invalid(400, "a history role must be \"user\" or \"assistant\"");
      if (content->as_string().size() > options_.max_question)
        return invalid(413, "a history message is longer than COACH_MAX_QUESTION allows");
      job->history.push_back({std::move(r), content->as_string().c_str()});
    }
  }
  job->coach = shared_from_this();
  counters_.jobs.fetch_add(1, std::memory_order_relaxed);
  job->responder = std::move(responder);
  auto self = shared_from_this();
  Bulkhead::Admission admission = bulkhead_->enter([self, job](Bulkhead::Slot slot) {
    job->slot = std::move(slot);
    // Request work: the pool's bounded lane, skipped when its client has gone
    // by the time a worker is free, refused (503) when the lane is full or
    // the pool is stopping.
    bool queued = self->workers_.try_post(
        [self, job] { self->run(job); }, [job] { return job->responder.connected(); },
        [self] { self->counters_.cancelled.fetch_add(1, std::memory_order_relaxed); });
    if (!queued) {
      self->counters_.rejected.fetch_add(1, std::memory_order_relaxed);
      Response r = error_json(503, "unavailable", "the server is busy; try again shortly");
      r.header("Retry-After", std::to_string(self->options_.retry_after_seconds));
      job->send(std::move(r));
    }
  });
  if (admission == Bulkhead::Admission::kRejected) {
    counters_.rejected.fetch_add(1, std::memory_order_relaxed);
    Response r = error_json(503, "unavailable",
                            "the coach is busy: " + std::to_string(options_.max_inflight) + " requests at work and " +
                                std::to_string(options_.max_queue) + " waiting; try again shortly");
    r.header("Retry-After", std::to_string(options_.retry_after_seconds));
    job->send(std::move(r));
  }
}

// On a worker: retrieval, then the extractive answer or the provider call.
void Coach::run(const std::shared_ptr<Job>& job) {
  if (!job->responder.connected()) {
    counters_.cancelled.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::shared_ptr<const Retriever> retriever = retrievers_ ? retrievers_() : nullptr;
  if (!retriever) {
    job->retrieval_note = "the knowledge base is not loaded";
  } else {
    auto found = retriever->search(job->question, options_.passages);
    if (found.ok()) {
      job->passages = std::move(*found);
    } else {
      job->retrieval_note = "retrieval failed: " + found.status().message();
      spdlog::warn("coach: {}", job->retrieval_note);
    }
  }
  if (client_) return generate(job);

  counters_.extractive.fetch_add(1, std::memory_order_relaxed);
  json::object out{{"mode", "extractive"}, {"question", job->question}};
  std::string answer;
  for (size_t i = 0; i < job->passages.size(); ++i) {
    const Passage& p = job->passages[i];
    answer += "[" + std::to_string(i + 1) + "] " + p.title + (p.heading.empty() ? "" : " — " + p.heading) + ": " +
              p.snippet + "\n";
  }
  out["answer"] = answer;
  out["citations"] = citations_json(job->passages, nullptr);
  out["note"] = job->passages.empty() ? templates_.empty_note : templates_.extractive_note;
  if (!job->retrieval_note.empty()) out["retrieval"] = job->retrieval_note;
  job->send(Response::json(200, json::serialize(out)));
}

void Coach::generate(const std::shared_ptr<Job>& job) {
  std::string system = render_system_prompt(templates_, job->passages);  // the MCP prompt's text too

  ChatRequest req;
  req.model = options_.llm_model;
  req.stream = job->stream;
  req.max_tokens = options_.llm_max_tokens;
  req.token_param = options_.llm_token_param;
  req.messages.push_back({"system", std::move(system)});
  for (ChatMessage& m : job->history) req.messages.push_back(std::move(m));
  job->history.clear();
  req.messages.push_back({"user", job->question});
  req.still_wanted = [job] {
    if (job->streaming && std::chrono::steady_clock::now() - job->last_write >= kHeartbeat) {
      job->last_write = std::chrono::steady_clock::now();
      job->writer.write(": keep-alive\n\n");
    }
    return job->connected();
  };

  ChatHandlers h;
  if (job->stream) {
    h.on_headers = [job] {
      if (job->streaming) return;
      job->streaming = true;
      job->writer = std::move(job->responder).stream(200, "text/event-stream",
                                                     {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}});
      json::object meta{{"mode", "generative"},
                        {"model", job->coach->options_.llm_model},
                        {"citations", citations_json(job->passages, nullptr)}};
      job->writer.write(http::sse_event(json::serialize(meta), "meta"));
      job->last_write = std::chrono::steady_clock::now();
    };
    h.on_delta = [job](std::string_view piece) {
      if (job->writer.queued_bytes() > kMaxStreamBacklog) {
        job->fell_behind = true;
        return false;  // the provider call ends kCancelled
      }
      job->last_write = std::chrono::steady_clock::now();
      return job->writer.write(http::sse_event(json::serialize(json::object{{"delta", piece}}), "token"));
    };
  }
  h.on_done = [job](ChatOutcome outcome) {
    Coach& c = *job->coach;
    const Status& st = outcome.status;
    if (st.code() == Code::kCancelled && (!job->connected() || job->fell_behind)) {
      c.counters_.cancelled.fetch_add(1, std::memory_order_relaxed);
      if (job->fell_behind && job->connected()) {
        // Not "stopping": say why, for a client that does catch up. The server's
        // write deadline closes the connection of one that never does.
        json::object err{{"code", "client_too_slow"},
                         {"message", "the client fell more than " + std::to_string(kMaxStreamBacklog >> 10) +
                                         " KiB behind the stream"}};
        job->writer.write(http::sse_event(json::serialize(json::object{{"error", std::move(err)}}), "error"));
        job->slot.release();
        job->writer.finish();
      }
      return;
    }
    int status = 200;
    std::string code;
    if (!outcome.provider_error.empty())  // cut and masked by the client; for us, never for the client
      spdlog::warn("coach: the provider answered {}: {}", outcome.provider_status, outcome.provider_error);
    if (!st.ok()) {
      if (st.code() == Code::kDeadlineExceeded) {
        status = 504;
        code = "gateway_timeout";
        c.counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
      } else if (st.code() == Code::kCancelled) {
        status = 503;
        code = "unavailable";  // stopping
        c.counters_.cancelled.fetch_add(1, std::memory_order_relaxed);
      } else {
        status = 502;
        code = "bad_gateway";
        c.counters_.provider_errors.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      c.counters_.generative.fetch_add(1, std::memory_order_relaxed);
    }
    if (outcome.usage) {  // bounded by the client (kMaxTokenCount)
      c.counters_.prompt_tokens.fetch_add(static_cast<uint64_t>(outcome.usage->prompt_tokens), std::memory_order_relaxed);
      c.counters_.completion_tokens.fetch_add(static_cast<uint64_t>(outcome.usage->completion_tokens),
                                              std::memory_order_relaxed);
    }
    if (job->streaming) {
      if (st.ok()) {
        json::object done{{"finish_reason", outcome.finish_reason},
                          {"model", outcome.model},
                          {"citations", citations_json(job->passages, &outcome.content)}};
        if (outcome.usage) done["usage"] = usage_json(*outcome.usage);
        job->writer.write(http::sse_event(json::serialize(done), "done"));
      } else {
        json::object err{{"code", code}, {"message", st.message()}};
        if (outcome.provider_status > 0 && outcome.provider_status != 200) err["provider_status"] = outcome.provider_status;
        job->writer.write(http::sse_event(json::serialize(json::object{{"error", std::move(err)}}), "error"));
      }
      job->slot.release();  // before the end of the stream reaches the client (see Job::send)
      job->writer.finish();
      return;
    }
    if (!st.ok()) {
      int ps = outcome.provider_status == 200 ? 0 : outcome.provider_status;
      job->send(error_json(status, code, st.message(), ps));
      return;
    }
    json::object out{{"mode", "generative"},
                     {"model", outcome.model.empty() ? c.options_.llm_model : outcome.model},
                     {"question", job->question},
                     {"answer", outcome.content},
                     {"finish_reason", outcome.finish_reason},
                     {"citations", citations_json(job->passages, &outcome.content)}};
    if (outcome.usage) out["usage"] = usage_json(*outcome.usage);
    if (!job->retrieval_note.empty()) out["retrieval"] = job->retrieval_note;
    job->send(Response::json(200, json::serialize(out)));
  };
  client_->start(std::move(req), std::move(h));
}

http::Response Coach::status() const {
  Bulkhead::Counts b = bulkhead_->counts();
  ChatClient::Stats cs = client_stats();
  auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  json::object out{
      {"mode", client_ ? "generative" : "extractive"},
      {"model", client_ ? options_.llm_model : std::string()},
      {"provider", client_ ? client_->endpoint() : std::string()},
      {"knowledge_base", retrievers_ && retrievers_() != nullptr},
      {"limits", json::object{{"max_inflight", options_.max_inflight},
                              {"max_queue", options_.max_queue},
                              {"max_question", options_.max_question},
                              {"max_body", options_.max_body}}},
      {"inflight", b.inflight},
      {"queued", b.queued},
      {"jobs", counters_.jobs.load(std::memory_order_relaxed)},
      {"requests", load(counters_.requests)},
      {"rejected", load(counters_.rejected)},
      {"invalid", load(counters_.invalid)},
      {"extractive", load(counters_.extractive)},
      {"generative", load(counters_.generative)},
      {"provider_errors", load(counters_.provider_errors)},
      {"timeouts", load(counters_.timeouts)},
      {"cancelled", load(counters_.cancelled)},
      {"tokens", json::object{{"prompt", load(counters_.prompt_tokens)},
                              {"completion", load(counters_.completion_tokens)}}},
      {"upstream", json::object{{"live_calls", cs.live_calls},
                                {"open_connections", cs.open_connections},
                                {"idle_connections", cs.idle_connections},
                                {"connects", cs.connects},
                                {"reuses", cs.reuses}}}};
  return Response::json(200, json::serialize(out));
}

}  // namespace memgate::coach
