// ChatClient: an asynchronous client for OpenAI-compatible chat-completions
// servers (POST <base>/v1/chat/completions), plain or streamed.
//
// The client owns one io_context and the thread that runs it; every call runs
// there, so no handler of the caller's ever blocks on the provider. Connections
// are HTTP/1.1 keep-alive over TCP or TLS (OpenSSL, the server's certificate
// verified against the system store or a CA file, host name checked, SNI sent)
// and go back to a small idle pool after a complete response; a reused
// connection that turns out to be closed by the provider is retried once on a
// fresh one, before any byte of the answer arrived. Three clocks bound a call:
// connect_timeout (TCP and TLS handshake), read_timeout (the longest the provider
// may stay silent, before its first byte or between two pieces of a stream) and
// request_timeout (the whole call).
//
// A call reports exactly once, through on_done, on the client's thread: OK with
// the whole answer; kUnavailable when the provider could not be reached, closed
// early, answered garbage or answered an error status (provider_status says
// which); kDeadlineExceeded on a timeout; kCancelled when cancel() was called,
// still_wanted() said no, or on_delta returned false; kResourceExhausted when
// the answer outgrew max_response_bytes, or a head, a chunk header or a trailer
// outgrew kMaxProviderHead. In streamed mode on_delta gets each piece of the
// answer in order as it arrives.
//
// What a provider sends is bounded as a whole: the body by max_response_bytes
// (the parser's body limit, chunked or not), every head, chunk-size line and
// trailer by kMaxProviderHead, and a connection's read buffer never holds more
// than kMaxReadBuffer bytes, whatever the provider does. The provider's own
// error text never goes into the status (whose message callers may show to
// their clients); it comes back apart, in ChatOutcome::provider_error.
//
// A call counts for the work that started it. start() captures the calling
// thread's TaskContext (task_context.h), as WorkerPool::post() does, and the
// call holds it until it has reported: every step of the exchange on the
// client's thread (resolve, connect, TLS handshake, write, read, parsing, the
// timers, a cancel) and the caller's on_headers, on_delta, still_wanted and
// on_done run inside it, so a request's allocation accounting includes its
// provider exchange. A pooled connection's work belongs to the call it serves;
// an idle one runs nothing. Once on_done has returned the call lets the context
// go (a handler completing after that runs outside it), so the request's total
// is recorded then. The caller's handlers are destroyed after on_done with no
// context installed: work that their going posts elsewhere (in the coach, the
// bulkhead place passing to the next queued request) does not inherit this
// call's. A call started with no context pays nothing for this.
//
// Tokens. A request may cap the answer (ChatRequest::max_tokens, sent as
// "max_completion_tokens" or "max_tokens"). A streamed request asks for the
// usage chunk ("stream_options": {"include_usage": true}); a provider that
// answers 400 naming stream_options is asked once more without it, and the
// client remembers not to send it to that provider again. What the provider
// says it used comes back in ChatOutcome::usage, when it is believable.
//
// Thread-safe: start() and ChatCall::cancel() may be called from any thread.
// Destroying the client cancels every call in flight (their on_done runs with
// kCancelled) and joins its thread. The API key is sent as a bearer token and
// never logged.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace boost::json {
class value;
}

namespace memgate::coach {

// The largest head, chunk header (size line and extensions) or trailer a
// provider may send.
inline constexpr size_t kMaxProviderHead = 64 * 1024;
// The most bytes a connection's read buffer holds (what arrived and is not yet
// parsed); a provider that needs more fails the call with kResourceExhausted.
inline constexpr size_t kMaxReadBuffer = kMaxProviderHead + 16 * 1024;

struct ChatClientOptions {
  std::string base_url;  // "https://api.example.com" or ".../v1"; http:// or https://
  std::string api_key;   // secret; empty: no Authorization header
  std::string ca_file;   // PEM CA bundle for https; empty: the system store
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds request_timeout{120'000};
  size_t max_idle_connections = 8;
  size_t max_response_bytes = 1 << 20;  // the answer (and an error body) beyond this fails
  std::chrono::milliseconds poll_interval{200};  // how often still_wanted() is asked
};

// The name of the answer-length cap in a request body: OpenAI's
// "max_completion_tokens" (what it documents now), or the older "max_tokens",
// the only one some servers (Ollama, older vLLM) read.
enum class TokenParam { kMaxCompletionTokens, kMaxTokens };
std::string_view token_param_name(TokenParam param);

// The most tokens a count from the provider may say (prompt or completion); a
// count above it, negative, or not a whole number is not believed.
inline constexpr int64_t kMaxTokenCount = 100'000'000;

// What the provider said a call used, when it said (usage.prompt_tokens and
// usage.completion_tokens, both whole numbers from 0 to kMaxTokenCount).
struct TokenUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  bool stream = false;
  double temperature = 0.2;
  // The longest answer, in tokens, sent under token_param's name; unset: not sent.
  std::optional<int64_t> max_tokens;
  TokenParam token_param = TokenParam::kMaxCompletionTokens;
  // Asked every poll_interval and on every piece; false cancels the call.
  std::function<bool()> still_wanted;
};

struct ChatOutcome {
  Status status;
  int provider_status = 0;    // the provider's HTTP status, 0 when none arrived
  std::string content;        // the whole answer
  std::string finish_reason;  // "stop", "length", ... when the provider said
  std::string model;          // as the provider named it
  bool reused_connection = false;
  // The tokens the call used, when the provider said (a plain answer's "usage";
  // a stream's final usage chunk, asked for with stream_options.include_usage).
  std::optional<TokenUsage> usage;
  // When the provider answered an error status: its own words (the error
  // message, or the start of the body), cut to 200 bytes and printable, for the
  // log only. It may echo anything (a key, a prompt): never relay it to a client.
  std::string provider_error;
};

struct ChatHandlers {
  // Streamed calls: the provider accepted (200); pieces follow. Optional.
  std::function<void()> on_headers;
  // Streamed calls: one piece of the answer; return false to cancel. Optional.
  std::function<bool(std::string_view)> on_delta;
  // Exactly once.
  std::function<void(ChatOutcome)> on_done;
};

class ChatCall {
 public:
  virtual ~ChatCall() = default;
  // Stops the call; on_done reports kCancelled unless it already reported.
  virtual void cancel() = 0;
};

class ChatClient {
 public:
  // Fails with kInvalidArgument for a base URL that is not http(s)://host[:port][/path],
  // or a CA file that cannot be read.
  static Result<std::unique_ptr<ChatClient>> create(ChatClientOptions options);
  ~ChatClient();
  ChatClient(const ChatClient&) = delete;
  ChatClient& operator=(const ChatClient&) = delete;

  // Starts a call. After shutdown() the call reports kCancelled at once.
  std::shared_ptr<ChatCall> start(ChatRequest request, ChatHandlers handlers);

  // Cancels every call in flight (each reports kCancelled), closes idle
  // connections and joins the client's thread. Idempotent; the destructor calls it.
  void shutdown();

  // "https://host:port/v1/chat/completions", for logs (it holds no secret).
  const std::string& endpoint() const;

  struct Stats {
    int64_t live_calls = 0;        // started and not yet reported
    int64_t open_connections = 0;  // sockets open, busy or idle
    int64_t idle_connections = 0;
    uint64_t connects = 0;         // fresh connections made
    uint64_t reuses = 0;           // calls served on a kept-alive connection
    uint64_t largest_read_buffer = 0;  // the most bytes any read buffer held (never above kMaxReadBuffer)
    bool stream_options_rejected = false;  // the provider refused stream_options once; no longer sent
  };
  Stats stats() const;

  struct Impl;

 private:
  explicit ChatClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

// A "usage" object as the provider sent it: both counts, when both are whole
// numbers from 0 to kMaxTokenCount; nullopt otherwise (absent, null, a string, a
// fraction, a negative or an absurd count: a provider's figure is not trusted).
std::optional<TokenUsage> read_token_usage(const boost::json::value* usage);

// OK when `base_url` is a URL the client accepts: http(s)://host[:port][/path],
// with no user name or password in it.
Status check_base_url(std::string_view base_url);

// For the fuzzer and the tests: reads `response` as the provider's whole answer
// to one call, through the code a call runs on its connection (Beast's reader
// into a read buffer bounded by kMaxReadBuffer, the parser with the call's
// limits, the SSE parser, the same errors), from a stand-in connection that
// hands over at most `piece` bytes a read and then ends. No socket, no thread,
// no timers (so no kDeadlineExceeded). Never throws.
struct ReplayOptions {
  bool stream = false;  // the call asked for a streamed answer
  size_t piece = 1 << 16;
  size_t max_response_bytes = ChatClientOptions{}.max_response_bytes;
  size_t cancel_after_reads = 0;  // > 0: still_wanted() says no from that read on
};
struct ReplayedResponse {
  ChatOutcome outcome;              // what on_done would get
  std::vector<std::string> pieces;  // what on_delta got, in order
  bool headers = false;             // on_headers ran
  bool keep_alive = false;          // a call would keep the connection
  size_t reads = 0;                 // read_some calls made
  size_t largest_read_buffer = 0;   // the most the read buffer held (capacity)
  size_t largest_body = 0;          // the most body bytes the parser held at once
};
ReplayedResponse replay_provider_response(std::string_view response, const ReplayOptions& options);

// The pieces of one server-sent-events body of a streamed chat completion.
// feed() takes bytes as they arrive and calls on_delta for each content piece;
// returns false when a data line is not a chunk of a chat completion. Linear in
// the bytes fed, however they are cut.
class ChatStreamParser {
 public:
  bool feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_delta);
  bool done() const { return done_; }  // "data: [DONE]" seen
  bool cancelled() const { return cancelled_; }
  const std::string& finish_reason() const { return finish_reason_; }
  const std::string& model() const { return model_; }
  // The last usage a chunk carried (the final one, choices empty), if any was believable.
  const std::optional<TokenUsage>& usage() const { return usage_; }

 private:
  bool line(std::string_view line, const std::function<bool(std::string_view)>& on_delta);
  std::string pending_;  // the unfinished line
  size_t scanned_ = 0;   // bytes of pending_ already searched for its end
  std::string finish_reason_;
  std::string model_;
  std::optional<TokenUsage> usage_;
  bool done_ = false;
  bool cancelled_ = false;
};

}  // namespace memgate::coach
