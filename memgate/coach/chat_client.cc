// The chat-completions client, on Beast and OpenSSL.
//
// One io_context, one thread. A call is a small state machine (connect or reuse,
// write, read the head, read the body piece by piece) whose handlers all run on
// that thread, so a call's state needs no lock; cancel() and the destructor only
// post to it. Each read and write arms the tcp_stream's own expiry (Beast closes
// the socket when it passes), which gives connect_timeout and read_timeout; a
// steady_timer per call ticks every poll_interval to enforce request_timeout and
// to ask still_wanted(), so a caller whose client went away stops the upstream
// request within one tick.
//
// Bounds. Everything a provider sends is bounded before it is held: the
// parser's header_limit covers the status line and fields, its body_limit the
// whole body (it counts chunked bodies chunk by chunk), and the connection's
// flat_buffer has a max_size, so bytes the parser cannot consume yet (a
// chunk-size line or a trailer that never ends: Beast bounds neither) stop
// growing it at kMaxReadBuffer, and the read fails with buffer_overflow. Each
// of those limits fails the call with kResourceExhausted. What is done with the
// bytes after each read is ResponseReader's, one path for a call on its
// connection and for replay_provider_response(), which fuzz/chat_client feeds
// arbitrary responses cut at arbitrary places. A provider's error
// body is read (bounded like any answer) but its text never reaches the status
// message, which the coach may show to a client: it goes to
// ChatOutcome::provider_error, cut and with secret-looking words masked, for
// the log.
//
// A connection is reused only when the previous response was read to its end and
// both sides kept the connection alive; anything else (an error, a cancel in the
// middle of a stream) closes it. Idle connections that the provider closed are
// found out on the next call's first read: if nothing of the answer arrived yet,
// the call retries once on a fresh connection.
//
// Usage. A streamed request asks for the usage chunk (stream_options); the
// option is newer than many OpenAI-compatible servers, and some refuse it with
// a 400. Such a call (the whole error body read, and naming stream_options) is
// written once more without it, on the same connection when it stayed open,
// and the client sets a flag so no later stream asks again: one extra round
// trip per provider, not per call. Counts are believed only as whole numbers
// within kMaxTokenCount; anything else reads as "not said".
//
// Accounting. The exchange runs here, not on the thread of the request that
// wanted it, so a call carries the request's TaskContext (captured by start(),
// as WorkerPool::post() does) and binds each completion handler it hands to
// Asio to a ContextExecutor. Binding the handler, rather than wrapping its body,
// matters: Asio's, Beast's and OpenSSL's composed operations run their
// intermediate steps (the TLS handshake, TLS records, the HTTP parser reading
// on) on the final handler's associated executor, and over TLS that is two
// thirds of a call's bytes (chat_client_test measures it). A connection is only
// ever driven by the handlers of the call it serves, so its work goes to that
// call; an idle connection runs nothing. The call owns the context and drops it
// once it reported; executors hold it weakly, so a handler that completes after
// that (the cancelled timer) neither delays the recording of the request's total
// nor counts in it. A call with no context binds nothing and takes Asio's usual
// path.
#include "memgate/coach/chat_client.h"

#include <spdlog/spdlog.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cstdio>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "memgate/base/task_context.h"

namespace memgate::coach {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace {

std::atomic<int64_t> g_open_connections{0};

// A connection to the provider: TCP, or TLS over TCP.
struct Connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer{kMaxReadBuffer};  // bounded: see "Bounds" above
  SteadyTime idle_since{};

  Connection() { g_open_connections.fetch_add(1, std::memory_order_relaxed); }
  ~Connection() { g_open_connections.fetch_sub(1, std::memory_order_relaxed); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  void close() {
    error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
  }
};

// Runs what Asio hands it inside a task context (see the top of this file): the
// inner executor decides where and when, the context what the work counts for.
// Properties (blocking, outstanding work, allocator, ...) go to the inner
// executor, the way asio::strand forwards them. Holds the context weakly: once
// it is gone, work runs plainly.
template <typename Inner>
class ContextExecutor {
 public:
  ContextExecutor(Inner inner, std::weak_ptr<TaskContext> context) noexcept
      : inner_(std::move(inner)), context_(std::move(context)) {}

  template <typename F>
  void execute(F&& f) const {
    inner_.execute(Run<std::decay_t<F>>{context_, std::forward<F>(f)});
  }

  template <typename Property>
    requires asio::can_query<const Inner&, const Property&>::value
  auto query(const Property& p) const noexcept(asio::is_nothrow_query<const Inner&, const Property&>::value) {
    return asio::query(inner_, p);
  }
  template <typename Property>
    requires asio::can_require<const Inner&, const Property&>::value
  auto require(const Property& p) const noexcept(asio::is_nothrow_require<const Inner&, const Property&>::value) {
    return ContextExecutor<std::decay_t<decltype(asio::require(inner_, p))>>(asio::require(inner_, p), context_);
  }
  template <typename Property>
    requires asio::can_prefer<const Inner&, const Property&>::value
  auto prefer(const Property& p) const noexcept(asio::is_nothrow_prefer<const Inner&, const Property&>::value) {
    return ContextExecutor<std::decay_t<decltype(asio::prefer(inner_, p))>>(asio::prefer(inner_, p), context_);
  }

  friend bool operator==(const ContextExecutor& a, const ContextExecutor& b) noexcept {
    return a.inner_ == b.inner_ && !a.context_.owner_before(b.context_) && !b.context_.owner_before(a.context_);
  }
  friend bool operator!=(const ContextExecutor& a, const ContextExecutor& b) noexcept { return !(a == b); }

 private:
  template <typename F>
  struct Run {
    std::weak_ptr<TaskContext> context;
    F f;
    void operator()() {
      if (std::shared_ptr<TaskContext> c = context.lock())
        run_in_context(c, [this] { f(); });  // one pointer: std::function keeps it inline
      else
        f();
    }
  };

  Inner inner_;
  std::weak_ptr<TaskContext> context_;
};

// True for a word that looks like a credential: an "sk-..." key, or a long run
// of letters and digits with both in it (tokens, hashes, keys).
bool looks_secret(std::string_view word) {
  if (word.size() >= 8 && (word.substr(0, 3) == "sk-" || word.substr(0, 3) == "pk-" || word.substr(0, 4) == "key-"))
    return true;
  if (word.size() < 24) return false;
  bool alpha = false, digit = false;
  for (char c : word) {
    alpha = alpha || std::isalpha(static_cast<unsigned char>(c));
    digit = digit || std::isdigit(static_cast<unsigned char>(c));
  }
  return alpha && digit;
}

// The provider's words about its error, fit for a log line: the error object's
// message (or the start of the body), secret-looking words replaced by "***",
// control bytes as \xNN, at most 200 bytes.
std::string provider_error_text(std::string_view body) {
  std::string detail;
  error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const json::object& o = v.as_object();
    if (auto* e = o.if_contains("error")) {
      if (e->is_object()) {
        if (auto* m = e->as_object().if_contains("message"); m && m->is_string()) detail = m->as_string().c_str();
      } else if (e->is_string()) {
        detail = e->as_string().c_str();
      }
    }
  }
  if (detail.empty()) detail = std::string(body.substr(0, 400));
  std::string out;
  auto word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/' || c == '+' ||
           c == '=';
  };
  for (size_t i = 0; i < detail.size() && out.size() < 200;) {
    if (word_char(detail[i])) {
      size_t j = i;
      while (j < detail.size() && word_char(detail[j])) ++j;
      std::string_view word(detail.data() + i, j - i);
      out += looks_secret(word) ? std::string("***") : std::string(word);
      i = j;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(detail[i++]);
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > 200) out.resize(200);
  if (out.size() == 200 || detail.size() > 400) out += "...";
  return out;
}

}  // namespace

// --- tokens --------------------------------------------------------------------

std::string_view token_param_name(TokenParam param) {
  return param == TokenParam::kMaxTokens ? "max_tokens" : "max_completion_tokens";
}

std::optional<TokenUsage> read_token_usage(const json::value* usage) {
  if (!usage || !usage->is_object()) return std::nullopt;
  auto count = [&](std::string_view name) -> std::optional<int64_t> {
    const json::value* v = usage->as_object().if_contains(name);
    if (!v) return std::nullopt;
    if (v->is_int64() && v->get_int64() >= 0 && v->get_int64() <= kMaxTokenCount) return v->get_int64();
    if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(kMaxTokenCount))
      return static_cast<int64_t>(v->get_uint64());
    return std::nullopt;  // a double, a string, negative, absurd
  };
  std::optional<int64_t> prompt = count("prompt_tokens");
  std::optional<int64_t> completion = count("completion_tokens");
  if (!prompt || !completion) return std::nullopt;
  return TokenUsage{*prompt, *completion};
}

// --- the SSE body of a streamed completion -----------------------------------

// The provider decides how its stream is cut (1-byte chunks make every byte a
// read of its own), so the unfinished line is never searched twice: scanned_
// says how much of pending_ is known to hold no newline. Searching it all again
// on every piece made a line of n bytes cost n^2/2 compares.
bool ChatStreamParser::feed(std::string_view bytes, const std::function<bool(std::string_view)>& on_delta) {
  pending_.append(bytes);
  size_t start = 0;        // the first byte of the line being looked at
  size_t from = scanned_;  // where the search for its end goes on
  bool ok = true;
  while (ok && !cancelled_) {
    size_t eol = pending_.find('\n', from);
    if (eol == std::string::npos) {
      from = pending_.size();
      break;
    }
    std::string_view l(pending_.data() + start, eol - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    ok = line(l, on_delta);
    start = from = eol + 1;
  }
  pending_.erase(0, start);
  scanned_ = from - start;
  return ok;
}

bool ChatStreamParser::line(std::string_view l, const std::function<bool(std::string_view)>& on_delta) {
  if (l.empty() || l[0] == ':' || done_) return true;  // event boundary, comment, or after [DONE]
  if (l.substr(0, 5) != "data:") return true;           // event:, id:, retry: carry nothing for us
  std::string_view data = l.substr(5);
  if (!data.empty() && data[0] == ' ') data.remove_prefix(1);
  if (data == "[DONE]") {
    done_ = true;
    return true;
  }
  error_code ec;
  json::value v = json::parse(data, ec);
  if (ec || !v.is_object()) return false;
  const json::object& o = v.as_object();
  if (auto* m = o.if_contains("model"); m && m->is_string() && model_.empty()) model_ = m->as_string().c_str();
  if (auto* e = o.if_contains("error"); e) return false;
  // The final chunk of a stream asked for usage carries it (choices empty);
  // some servers send "usage": null on every chunk before it.
  if (std::optional<TokenUsage> u = read_token_usage(o.if_contains("usage"))) usage_ = u;
  auto* choices = o.if_contains("choices");
  if (!choices || !choices->is_array()) return false;
  for (const json::value& c : choices->as_array()) {
    if (!c.is_object()) continue;
    const json::object& co = c.as_object();
    if (auto* fr = co.if_contains("finish_reason"); fr && fr->is_string()) finish_reason_ = fr->as_string().c_str();
    auto* delta = co.if_contains("delta");
    if (!delta || !delta->is_object()) continue;
    auto* content = delta->as_object().if_contains("content");
    if (!content || !content->is_string() || content->as_string().empty()) continue;
    if (on_delta && !on_delta(std::string_view(content->as_string()))) {
      cancelled_ = true;
      return true;
    }
  }
  return true;
}

// --- the client ----------------------------------------------------------------

struct ChatClient::Impl : std::enable_shared_from_this<ChatClient::Impl> {
  ChatClientOptions options;
  bool https = false;
  std::string host, port, target, endpoint;
  asio::io_context ctx{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<ssl::context> tls{std::nullopt};
  std::thread thread;
  // Only touched on the client's thread.
  std::deque<std::unique_ptr<Connection>> idle;
  std::vector<std::weak_ptr<ChatCall>> calls;
  // start() checks `stopped` and posts its call under this lock, and shutdown()
  // sets it and posts its cancel-all under it too: a call that got past the
  // check is queued before the cancel-all, so it is cancelled, never left to run
  // (or to wait forever) after the client stopped.
  std::mutex start_mu;
  std::atomic<bool> stopped{false};
  std::atomic<int64_t> live_calls{0};
  std::atomic<int64_t> idle_count{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> reuses{0};
  std::atomic<uint64_t> largest_read_buffer{0};
  // The provider answered 400 to stream_options once: streams no longer ask for usage.
  std::atomic<bool> stream_options_rejected{false};

  std::unique_ptr<Connection> checkout() {
    auto now = std::chrono::steady_clock::now();
    while (!idle.empty()) {
      std::unique_ptr<Connection> c = std::move(idle.back());
      idle.pop_back();
      idle_count.store(static_cast<int64_t>(idle.size()), std::memory_order_relaxed);
      // Providers close idle connections after a while; don't bet on an old one.
      if (now - c->idle_since < std::chrono::seconds(30) && c->lowest().socket().is_open()) return c;
      c->close();
    }
    return nullptr;
  }
  void checkin(std::unique_ptr<Connection> c) {
    c->idle_since = std::chrono::steady_clock::now();
    c->buffer.clear();
    idle.push_back(std::move(c));
    while (idle.size() > options.max_idle_connections) {
      idle.front()->close();
      idle.pop_front();
    }
    idle_count.store(static_cast<int64_t>(idle.size()), std::memory_order_relaxed);
  }
};

namespace {

// One provider response, read by read (see "Bounds" at the top): Beast's parser
// with the call's limits; the status and the content type once the head is in;
// a streamed (SSE) body handed piece by piece to the stream parser and dropped;
// any other body kept whole until the parser is done. A call drives it from its
// connection, replay_provider_response() from bytes in memory (the fuzzer and
// the tests), through the same step().
class ResponseReader {
 public:
  using Parser = bhttp::response_parser<bhttp::string_body>;

  ResponseReader(const ChatClientOptions& options, bool stream_requested)
      : options_(options), stream_requested_(stream_requested) {
    // The whole body, chunked or not, error bodies included.
    parser_.body_limit(static_cast<std::uint64_t>(options.max_response_bytes));
    parser_.header_limit(static_cast<std::uint32_t>(kMaxProviderHead));
  }

  Parser& parser() { return parser_; }
  int status() const { return status_; }
  bool keep_alive() const { return parser_.keep_alive(); }
  size_t largest_body() const { return largest_body_; }
  // The whole response is read, it is an error status, and its body (bounded
  // by max_response_bytes) holds `word`.
  bool error_names(std::string_view word) {
    return parser_.is_done() && status_ >= 400 && parser_.get().body().find(word) != std::string::npos;
  }

  // A read error that one of the bounds raised (not the transport).
  static bool is_limit(error_code ec) {
    return ec == bhttp::error::body_limit || ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow;
  }

  // What the call does after one read (Beast's read_some into the connection's
  // buffer and this parser) that ended with `ec`: nullopt to read on, else the
  // call's end: OK with the answer in `outcome`, or why not (the status's
  // message never holds the provider's words). Runs the caller's on_headers and
  // on_delta (streamed calls only) and asks still_wanted.
  std::optional<Status> step(error_code ec, const ChatHandlers& handlers, const std::function<bool()>& still_wanted,
                             ChatOutcome& outcome) {
    if (ec && ec != bhttp::error::need_buffer) return read_error(ec);
    if (Status st = take(handlers, outcome); !st.ok()) return st;
    if (still_wanted && !still_wanted()) return Cancelled("the client went away");
    if (!parser_.is_done()) return std::nullopt;
    return complete(handlers, outcome);
  }

 private:
  Status read_error(error_code ec) const {
    if (ec == bhttp::error::body_limit)
      return ResourceExhausted("the provider's answer is larger than " + std::to_string(options_.max_response_bytes) + " bytes");
    if (is_limit(ec))
      return ResourceExhausted("the provider sent a head, chunk header or trailer larger than " +
                               std::to_string(kMaxProviderHead) + " bytes");
    if (ec == beast::error::timeout)
      return DeadlineExceeded("the provider sent nothing for " + std::to_string(options_.read_timeout.count()) + " ms");
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == bhttp::error::partial_message)
      return Unavailable("the provider closed the connection before the answer was complete");
    return Unavailable("reading from the provider failed: " + ec.message());
  }

  // Takes what the parser has of the response so far.
  Status take(const ChatHandlers& handlers, ChatOutcome& outcome) {
    if (parser_.is_header_done() && status_ == 0) {
      status_ = static_cast<int>(parser_.get().result_int());
      std::string_view ct = parser_.get()[bhttp::field::content_type];
      sse_ = ct.substr(0, 17) == "text/event-stream";
      if (status_ == 200 && stream_requested_ && sse_ && handlers.on_headers) handlers.on_headers();
    }
    std::string& body = parser_.get().body();
    largest_body_ = std::max(largest_body_, body.size());
    if (body.empty()) return Status::Ok();
    bool consume = status_ == 200 && sse_;  // stream pieces are consumed; anything else accumulates
    size_t total = consume ? received_ + body.size() : body.size();
    if (consume) received_ = total;
    if (total > options_.max_response_bytes)
      return ResourceExhausted("the provider's answer is larger than " + std::to_string(options_.max_response_bytes) + " bytes");
    if (!consume) return Status::Ok();
    auto on_delta = [&](std::string_view piece) {
      outcome.content.append(piece);
      return !(stream_requested_ && handlers.on_delta && !handlers.on_delta(piece));
    };
    if (!stream_.feed(body, on_delta)) return Unavailable("the provider's stream is not a chat completion stream");
    if (stream_.cancelled()) return Cancelled("the client went away");
    body.clear();
    return Status::Ok();
  }

  // The parser is done: the answer, or why there is none.
  Status complete(const ChatHandlers& handlers, ChatOutcome& outcome) {
    std::string& body = parser_.get().body();
    if (status_ != 200) {
      // The status is generic on purpose: callers may show it to their clients.
      outcome.provider_error = provider_error_text(body);
      return Unavailable("the provider answered " + std::to_string(status_));
    }
    if (sse_) {
      if (!stream_.feed("\n", nullptr)) return Unavailable("the provider's stream is not a chat completion stream");
      outcome.finish_reason = stream_.finish_reason();
      outcome.model = stream_.model();
      outcome.usage = stream_.usage();
      return Status::Ok();
    }
    error_code ec;
    json::value v = json::parse(body, ec);
    const json::value* content = nullptr;
    if (!ec && v.is_object()) {
      const json::object& o = v.as_object();
      if (auto* m = o.if_contains("model"); m && m->is_string()) outcome.model = m->as_string().c_str();
      outcome.usage = read_token_usage(o.if_contains("usage"));
      if (auto* ch = o.if_contains("choices");
          ch && ch->is_array() && !ch->as_array().empty() && ch->as_array()[0].is_object()) {
        const json::object& c0 = ch->as_array()[0].as_object();
        if (auto* fr = c0.if_contains("finish_reason"); fr && fr->is_string())
          outcome.finish_reason = fr->as_string().c_str();
        if (auto* msg = c0.if_contains("message"); msg && msg->is_object())
          content = msg->as_object().if_contains("content");
      }
    }
    if (!content || !content->is_string()) return Unavailable("the provider's answer is not a chat completion");
    outcome.content = content->as_string().c_str();
    // A provider that ignored "stream": relay its answer as one piece.
    if (stream_requested_ && handlers.on_headers) handlers.on_headers();
    if (stream_requested_ && handlers.on_delta && !handlers.on_delta(outcome.content))
      return Cancelled("the client went away");
    return Status::Ok();
  }

  const ChatClientOptions& options_;
  bool stream_requested_;
  Parser parser_;
  ChatStreamParser stream_;
  size_t received_ = 0;      // SSE body bytes taken so far
  size_t largest_body_ = 0;  // the most body bytes the parser held at once
  int status_ = 0;
  bool sse_ = false;
};

class Call final : public ChatCall, public std::enable_shared_from_this<Call> {
 public:
  Call(std::shared_ptr<ChatClient::Impl> client, ChatRequest request, ChatHandlers handlers,
       std::shared_ptr<TaskContext> context)
      : client_(std::move(client)),
        request_(std::move(request)),
        handlers_(std::move(handlers)),
        context_(std::move(context)),
        timer_(client_->ctx) {
    client_->live_calls.fetch_add(1, std::memory_order_relaxed);
  }
  ~Call() override {
    if (!done_) client_->live_calls.fetch_sub(1, std::memory_order_relaxed);
  }

  void begin() {
    started_ = std::chrono::steady_clock::now();
    body_ = request_body();
    tick();
    connection_ = client_->checkout();
    if (connection_) {
      reused_ = true;
      client_->reuses.fetch_add(1, std::memory_order_relaxed);
      write();
    } else {
      connect();
    }
  }

  void cancel() override {
    post([self = shared_from_this()] { self->fail(Cancelled("the call was cancelled"), 0); });
  }

  // Runs `f` on the client's thread inside the call's context. context_ is read
  // there, not here: cancel() may come from any thread while finish() drops it.
  template <typename F>
  void post(F f) {
    asio::post(client_->ctx, [self = shared_from_this(), f = std::move(f)]() mutable {
      // A copy: what f() runs may drop the member (finish()).
      if (std::shared_ptr<TaskContext> context = self->context_)
        run_in_context(context, [&f] { f(); });
      else
        f();
    });
  }

 private:
  const ChatClientOptions& opt() const { return client_->options; }
  int provider_status() const { return reader_ ? reader_->status() : 0; }

  // Starts an asynchronous operation: initiate(handler), the handler bound to
  // the call's context when it has one (and left alone when not, so a call
  // without a context keeps Asio's direct path).
  template <typename Initiate, typename Handler>
  void launch(Initiate&& initiate, Handler&& handler) {
    if (context_) {
      ContextExecutor executor(client_->ctx.get_executor(), std::weak_ptr<TaskContext>(context_));
      std::forward<Initiate>(initiate)(asio::bind_executor(std::move(executor), std::forward<Handler>(handler)));
    } else {
      std::forward<Initiate>(initiate)(std::forward<Handler>(handler));
    }
  }

  // Sets asked_usage_: whether this body asks for the stream's usage chunk.
  std::string request_body() {
    json::array messages;
    for (const ChatMessage& m : request_.messages)
      messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
    json::object body{{"model", request_.model},
                      {"messages", std::move(messages)},
                      {"stream", request_.stream},
                      {"temperature", request_.temperature}};
    if (request_.max_tokens) body[token_param_name(request_.token_param)] = *request_.max_tokens;
    asked_usage_ =
        request_.stream && !usage_refused_ && !client_->stream_options_rejected.load(std::memory_order_relaxed);
    if (asked_usage_) body["stream_options"] = json::object{{"include_usage", true}};
    return json::serialize(body);
  }

  // The provider refused the stream_options this call sent (400 naming it):
  // ask once more without, on the same connection when it stays open, and
  // never send it to this provider again.
  bool retry_without_stream_options() {
    if (!asked_usage_ || usage_refused_ || !reader_->error_names("stream_options")) return false;
    usage_refused_ = true;
    client_->stream_options_rejected.store(true, std::memory_order_relaxed);
    spdlog::info("coach: the provider refused stream_options; streams no longer ask it for usage");
    body_ = request_body();
    outcome_ = ChatOutcome{};
    if (reader_->keep_alive()) {
      write();
    } else {
      retire();
      connect();
    }
    return true;
  }

  // request_timeout and still_wanted(), every poll_interval.
  void tick() {
    if (done_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - started_ >= opt().request_timeout)
      return fail(DeadlineExceeded("the provider did not finish within " + std::to_string(opt().request_timeout.count()) + " ms"), provider_status());
    if (request_.still_wanted && !request_.still_wanted()) return fail(Cancelled("the client went away"), provider_status());
    auto next = std::min<std::chrono::nanoseconds>(opt().poll_interval, opt().request_timeout - (now - started_));
    timer_.expires_after(next);
    launch([this](auto handler) { timer_.async_wait(std::move(handler)); },
           [self = shared_from_this()](error_code ec) {
             if (!ec) self->tick();
           });
  }

  void connect() {
    connection_ = std::make_unique<Connection>();
    client_->connects.fetch_add(1, std::memory_order_relaxed);
    if (client_->https) {
      connection_->tls.emplace(client_->ctx, *client_->tls);
      if (!SSL_set_tlsext_host_name(connection_->tls->native_handle(), client_->host.c_str()))
        return fail(Internal("could not set the TLS server name"), 0);
      connection_->tls->set_verify_callback(ssl::host_name_verification(client_->host));
    } else {
      connection_->plain.emplace(client_->ctx);
    }
    resolver_.emplace(client_->ctx);
    connection_->lowest().expires_after(opt().connect_timeout);
    launch([this](auto handler) { resolver_->async_resolve(client_->host, client_->port, std::move(handler)); },
           [self = shared_from_this()](error_code ec, tcp::resolver::results_type results) {
             if (self->done_) return;
             if (ec) return self->fail(Unavailable("cannot resolve the provider's host: " + ec.message()), 0);
             self->launch(
                 [&](auto handler) { self->connection_->lowest().async_connect(results, std::move(handler)); },
                 [self](error_code ec2, const tcp::endpoint&) { self->on_connect(ec2); });
           });
  }

  void on_connect(error_code ec) {
    if (done_) return;
    if (ec) return fail(transport_error("connecting to the provider", ec, opt().connect_timeout), 0);
    connection_->lowest().socket().set_option(tcp::no_delay(true), ec);
    if (!connection_->tls) return write();
    connection_->lowest().expires_after(opt().connect_timeout);
    launch([this](auto handler) { connection_->tls->async_handshake(ssl::stream_base::client, std::move(handler)); },
           [self = shared_from_this()](error_code ec2) {
             if (self->done_) return;
             if (ec2) {
               Status st = transport_error("the TLS handshake with the provider", ec2, self->opt().connect_timeout);
               return self->fail(std::move(st), 0);
             }
             self->write();
           });
  }

  static Status transport_error(std::string_view what, error_code ec, std::chrono::milliseconds limit) {
    if (ec == beast::error::timeout)
      return DeadlineExceeded(std::string(what) + " took longer than " + std::to_string(limit.count()) + " ms");
    return Unavailable(std::string(what) + " failed: " + ec.message());
  }

  void write() {
    req_.emplace(bhttp::verb::post, client_->target, 11);
    req_->set(bhttp::field::host, client_->host);
    req_->set(bhttp::field::user_agent, "memgate-coach");
    req_->set(bhttp::field::content_type, "application/json");
    req_->set(bhttp::field::accept, request_.stream ? "text/event-stream" : "application/json");
    if (!opt().api_key.empty()) req_->set(bhttp::field::authorization, "Bearer " + opt().api_key);
    req_->keep_alive(true);
    req_->body() = body_;
    req_->prepare_payload();
    reader_.emplace(opt(), request_.stream);
    connection_->lowest().expires_after(opt().read_timeout);
    launch(
        [this](auto handler) {
          if (connection_->tls)
            bhttp::async_write(*connection_->tls, *req_, std::move(handler));
          else
            bhttp::async_write(*connection_->plain, *req_, std::move(handler));
        },
        [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(error_code ec) {
    if (done_) return;
    if (ec) {
      if (retry_stale()) return;
      return fail(transport_error("sending to the provider", ec, opt().read_timeout), 0);
    }
    read_more();
  }

  // A kept-alive connection the provider had closed: try once more, fresh.
  bool retry_stale() {
    if (!reused_ || got_bytes_ || retried_) return false;
    retried_ = true;
    reused_ = false;
    retire();
    connect();
    return true;
  }

  void read_more() {
    connection_->lowest().expires_after(opt().read_timeout);
    launch(
        [this](auto handler) {
          if (connection_->tls)
            bhttp::async_read_some(*connection_->tls, connection_->buffer, reader_->parser(), std::move(handler));
          else
            bhttp::async_read_some(*connection_->plain, connection_->buffer, reader_->parser(), std::move(handler));
        },
        [self = shared_from_this()](error_code ec, size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, size_t n) {
    if (done_) return;
    if (n > 0 || reader_->parser().got_some()) got_bytes_ = true;
    uint64_t held = connection_->buffer.capacity();
    for (uint64_t seen = client_->largest_read_buffer.load(std::memory_order_relaxed);
         held > seen && !client_->largest_read_buffer.compare_exchange_weak(seen, held, std::memory_order_relaxed);) {
    }
    if (ec && ec != bhttp::error::need_buffer && !ResponseReader::is_limit(ec) && !got_bytes_ && retry_stale()) return;
    std::optional<Status> end = reader_->step(ec, handlers_, request_.still_wanted, outcome_);
    if (!end) return read_more();
    if (!end->ok()) {
      if (provider_status() == 400 && retry_without_stream_options()) return;
      return fail(std::move(*end), provider_status());
    }
    finish(Status::Ok(), reader_->keep_alive());
  }

  // Closes the connection but keeps the object until the call goes: a cancel or
  // a timeout may finish the call while a read is still pending, and that read
  // completes later (with operation_aborted) into the connection's buffer and
  // stream. The pending handler holds the call, so the call outlives it.
  void retire() {
    connection_->close();
    retired_.push_back(std::move(connection_));
  }

  void fail(Status status, int provider_status) {
    if (done_) return;
    outcome_.provider_status = provider_status;
    finish(std::move(status), false);
  }

  void finish(Status status, bool reusable) {
    if (done_) return;
    done_ = true;
    client_->live_calls.fetch_sub(1, std::memory_order_relaxed);
    timer_.cancel();
    if (resolver_) resolver_->cancel();
    if (connection_) {
      if (reusable && status.ok()) {
        connection_->lowest().expires_never();
        client_->checkin(std::move(connection_));
      } else {
        retire();
      }
    }
    outcome_.status = std::move(status);
    if (outcome_.provider_status == 0) outcome_.provider_status = provider_status();
    outcome_.reused_connection = reused_;
    ChatHandlers handlers = std::exchange(handlers_, {});
    std::function<bool()> still_wanted = std::exchange(request_.still_wanted, nullptr);
    if (handlers.on_done) handlers.on_done(std::move(outcome_));
    {
      // The caller's handlers go with no source installed: what their going sets
      // off is the caller's next piece of work, not this call's. In the coach the
      // last of them holds the request's bulkhead place, which passes to the next
      // queued request, whose work is posted right here; inheriting this context,
      // one request's context would pass from call to call for as long as the
      // queue lasts, and never be recorded under a steady load.
      TaskContextSourceScope no_source(nullptr);
      handlers = {};
      still_wanted = nullptr;
    }
    // Reported: the request's context goes (its total is recorded as soon as the
    // handler running now returns, if nothing else holds it).
    context_.reset();
  }

  std::shared_ptr<ChatClient::Impl> client_;
  ChatRequest request_;
  ChatHandlers handlers_;
  std::shared_ptr<TaskContext> context_;  // the starter's; null when none, and once reported
  asio::steady_timer timer_;
  std::optional<tcp::resolver> resolver_;
  std::unique_ptr<Connection> connection_;
  std::vector<std::unique_ptr<Connection>> retired_;  // closed, kept for their pending operations
  std::optional<bhttp::request<bhttp::string_body>> req_;
  std::optional<ResponseReader> reader_;  // the response to the request written last
  std::string body_;
  ChatOutcome outcome_;
  SteadyTime started_{};
  bool reused_ = false;
  bool retried_ = false;
  bool got_bytes_ = false;
  bool asked_usage_ = false;    // the body written last has stream_options
  bool usage_refused_ = false;  // the provider refused it; this call retried without
  bool done_ = false;
};

}  // namespace

namespace {

// A connection in memory, for replay_provider_response(): at most `piece` bytes
// a read, then the end of the stream. Beast's SyncReadStream.
class MemoryStream {
 public:
  MemoryStream(std::string_view bytes, size_t piece) : bytes_(bytes), piece_(std::max<size_t>(piece, 1)) {}
  template <typename MutableBuffers>
  size_t read_some(const MutableBuffers& buffers, error_code& ec) {
    if (bytes_.empty()) {
      ec = asio::error::eof;
      return 0;
    }
    ec = {};
    size_t n = asio::buffer_copy(buffers, asio::buffer(bytes_.data(), std::min(piece_, bytes_.size())));
    bytes_.remove_prefix(n);
    return n;
  }
  template <typename MutableBuffers>
  size_t read_some(const MutableBuffers& buffers) {
    error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::string_view bytes_;
  size_t piece_;
};

}  // namespace

ReplayedResponse replay_provider_response(std::string_view response, const ReplayOptions& options) {
  ReplayedResponse r;
  ChatClientOptions client_options;
  client_options.max_response_bytes = options.max_response_bytes;
  ResponseReader reader(client_options, options.stream);
  beast::flat_buffer buffer{kMaxReadBuffer};  // as a Connection's
  MemoryStream connection(response, options.piece);
  ChatHandlers handlers;
  handlers.on_headers = [&r] { r.headers = true; };
  handlers.on_delta = [&r](std::string_view piece) {
    r.pieces.emplace_back(piece);
    return true;
  };
  std::function<bool()> still_wanted;
  if (options.cancel_after_reads > 0) still_wanted = [&r, &options] { return r.reads < options.cancel_after_reads; };
  for (;;) {
    error_code ec;
    bhttp::read_some(connection, buffer, reader.parser(), ec);
    ++r.reads;
    r.largest_read_buffer = std::max(r.largest_read_buffer, buffer.capacity());
    std::optional<Status> end = reader.step(ec, handlers, still_wanted, r.outcome);
    r.largest_body = std::max(r.largest_body, reader.largest_body());
    if (!end) continue;
    r.outcome.status = std::move(*end);
    r.outcome.provider_status = reader.status();
    r.keep_alive = r.outcome.status.ok() && reader.keep_alive();
    return r;
  }
}

Status check_base_url(std::string_view base_url) {
  auto url = boost::urls::parse_uri(base_url);
  if (!url) return InvalidArgument("expected http(s)://host[:port][/path]");
  std::string scheme = url->scheme();
  if (scheme != "http" && scheme != "https")
    return InvalidArgument("expected http(s)://host[:port][/path] (the scheme is " + scheme + ")");
  if (url->encoded_host().empty()) return InvalidArgument("expected http(s)://host[:port][/path] (no host)");
  if (url->has_userinfo()) return InvalidArgument("put the API key in LLM_API_KEY, not in the URL");
  if (url->has_query() || url->has_fragment()) return InvalidArgument("expected no query or fragment");
  return Status::Ok();
}

Result<std::unique_ptr<ChatClient>> ChatClient::create(ChatClientOptions options) {
  auto impl = std::make_shared<Impl>();
  if (Status st = check_base_url(options.base_url); !st.ok()) return st;
  auto url = boost::urls::parse_uri(options.base_url);
  std::string scheme = url->scheme();
  impl->https = scheme == "https";
  impl->host = url->host();
  impl->port = url->has_port() ? std::string(url->port()) : (impl->https ? "443" : "80");
  std::string path = url->path();
  while (!path.empty() && path.back() == '/') path.pop_back();
  bool has_v1 = path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0;
  impl->target = path + (has_v1 ? "/chat/completions" : "/v1/chat/completions");
  impl->endpoint = scheme + "://" + std::string(url->encoded_host_and_port()) + impl->target;
  if (impl->https) {
    impl->tls.emplace(ssl::context::tls_client);
    impl->tls->set_verify_mode(ssl::verify_peer);
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    error_code ec;
    if (options.ca_file.empty()) {
      impl->tls->set_default_verify_paths(ec);
      if (ec) return InvalidArgument("cannot load the system CA store: " + ec.message());
    } else {
      impl->tls->load_verify_file(options.ca_file, ec);
      if (ec) return InvalidArgument("cannot read the CA file " + options.ca_file + ": " + ec.message());
    }
  }
  impl->options = std::move(options);
  impl->work.emplace(impl->ctx.get_executor());
  impl->thread = std::thread([raw = impl.get()] { raw->ctx.run(); });
  return std::unique_ptr<ChatClient>(new ChatClient(std::move(impl)));
}

ChatClient::~ChatClient() { shutdown(); }

void ChatClient::shutdown() {
  {
    std::lock_guard lock(impl_->start_mu);
    if (impl_->stopped.exchange(true)) return;
    // Cancel what is in flight (each reports kCancelled), drop idle connections,
    // and let the thread run out of work.
    asio::post(impl_->ctx, [impl = impl_] {
      for (auto& weak : impl->calls)
        if (auto call = weak.lock()) call->cancel();
      impl->calls.clear();
      for (auto& c : impl->idle) c->close();
      impl->idle.clear();
      impl->idle_count.store(0);
      impl->work.reset();
    });
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::shared_ptr<ChatCall> ChatClient::start(ChatRequest request, ChatHandlers handlers) {
  std::unique_lock lock(impl_->start_mu);
  if (impl_->stopped.load()) {
    lock.unlock();
    ChatOutcome outcome;
    outcome.status = Cancelled("the provider client is shut down");
    if (handlers.on_done) handlers.on_done(std::move(outcome));
    return nullptr;
  }
  // The exchange counts for whatever the caller's work counts for (its request).
  std::shared_ptr<TaskContext> context;
  if (TaskContextSource* source = current_task_context_source()) context = source->capture();
  auto call = std::make_shared<Call>(impl_, std::move(request), std::move(handlers), std::move(context));
  call->post([impl = impl_, call] {
    // Forget calls that have finished; remember this one for the destructor.
    std::erase_if(impl->calls, [](const std::weak_ptr<ChatCall>& w) { return w.expired(); });
    impl->calls.push_back(call);
    call->begin();
  });
  return call;
}

const std::string& ChatClient::endpoint() const { return impl_->endpoint; }

ChatClient::Stats ChatClient::stats() const {
  Stats s;
  s.live_calls = impl_->live_calls.load(std::memory_order_relaxed);
  s.open_connections = g_open_connections.load(std::memory_order_relaxed);
  s.idle_connections = impl_->idle_count.load(std::memory_order_relaxed);
  s.connects = impl_->connects.load(std::memory_order_relaxed);
  s.reuses = impl_->reuses.load(std::memory_order_relaxed);
  s.largest_read_buffer = impl_->largest_read_buffer.load(std::memory_order_relaxed);
  s.stream_options_rejected = impl_->stream_options_rejected.load(std::memory_order_relaxed);
  return s;
}

}  // namespace memgate::coach
