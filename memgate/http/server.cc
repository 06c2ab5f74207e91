// Server: listeners, connections and the request loop.
//
// Design. Every IO thread owns an io_context (concurrency hint 1), an
// SO_REUSEPORT acceptor on the shared port, the connections it accepted (an
// intrusive list), its request counters and one periodic sweep timer. Nothing on
// the request path is shared between threads except the router's version word,
// which is only read.
//
// A connection (Session) is a small state machine driven by completion handlers
// on its thread: Idle -> Reading (first byte arrived) -> Handling (a handler runs,
// or an async Responder is outstanding) -> Writing -> Idle, with Streaming for
// chunked responses and Draining for the lingering close after an error. The
// parser is Beast's basic_parser, re-created per request in place inside the
// session; header fields are copied into a per-connection arena string and the
// body into a per-connection string, so after warm-up a request allocates nothing
// in the server. Responses are serialised by hand into a reused output string
// (Date formatted once per sweep) and written with a non-blocking write() first;
// only when the kernel does not take it all does an async write start. Reads go
// through Asio's reactor, which skips the speculative read after a read that
// drained the socket: a keep-alive request costs one read and one write system
// call plus its share of an epoll_wait.
//
// Timeouts are not timers per operation: each session keeps a deadline and the
// thread's sweep (every 1/8 of the shorter timeout, 5..250 ms) closes or answers
// 408 to those that passed it; a write (a response's or a stream's) is on the
// clock while outstanding, restarted by each bit of progress. A stream's
// pending bytes are counted in its AsyncSlot (StreamWriter::queued_bytes()) and
// a stream past StreamWriter::kMaxPending is dropped. A session is deleted
// only when no operation of its socket is outstanding; handlers posted by
// Responders find it through an AsyncSlot that the session detaches from when
// it goes away.
#include "memgate/http/server.h"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>
#include <cstring>
#include <ctime>
#include <optional>
#include <random>

#include "memgate/http/responder.h"

namespace memgate::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyTime = std::chrono::steady_clock::time_point;

namespace detail {

class Session;
class IoThread;

// Shared by a session waiting on an async handler and the Responder (or
// StreamWriter) that will complete it. `session` is read and written only on the
// session's IO thread; the rest may be touched from any thread.
struct AsyncSlot {
  std::weak_ptr<asio::io_context> ctx;
  Session* session = nullptr;
  std::atomic<bool> connected{true};
  // Bytes of the stream not yet accepted by the kernel: pieces posted by the
  // writer (added by write()) plus what the session holds (it adds framing and
  // takes off what the kernel accepts). One word, so a reader never sees a
  // piece counted twice or not at all.
  std::atomic<size_t> pending{0};
};

namespace {

constexpr size_t kReadChunk = 4096;
constexpr int kMaxPipelinedPerTurn = 32;
constexpr size_t kShrinkAbove = 64 * 1024;
constexpr size_t kMaxRoutesTracked = 1024;
constexpr size_t kCellsPerRoute = 16;
constexpr int kClientClosedRequest = 499;  // nginx's status for a client that left before the answer

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

bool has_crlf(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n') return true;
  }
  return false;
}

std::string format_endpoint(const tcp::endpoint& ep) {
  std::string addr = ep.address().to_string();
  std::string out;
  if (ep.address().is_v6()) {
    out = "[" + addr + "]:";
  } else {
    out = addr + ":";
  }
  out += std::to_string(ep.port());
  return out;
}

// --- request parsing -------------------------------------------------------

// Per-connection storage the parser fills; reused, so it keeps its capacity.
struct RequestStorage {
  struct Field {
    uint32_t name_off, name_len, value_off, value_len;
  };
  std::string arena;
  std::vector<Field> fields;
  std::vector<Header> views;
  std::string body;
  uint32_t method_off = 0, method_len = 0, target_off = 0, target_len = 0;
  int version = 11;
  bool expect_continue = false;
  // RFC 9112 framing, checked when the header is complete.
  int hosts = 0;
  int content_lengths = 0;
  std::string transfer_encoding;  // every Transfer-Encoding line, joined with ", "
  int refuse_status = 0;          // set: answer this and close (400 or 501)
  std::string refuse_reason;

  void clear() {
    arena.clear();
    fields.clear();
    body.clear();
    expect_continue = false;
    method_len = target_len = 0;
    hosts = content_lengths = 0;
    transfer_encoding.clear();
    refuse_status = 0;
    refuse_reason.clear();
  }
  uint32_t put(std::string_view s) {
    auto off = static_cast<uint32_t>(arena.size());
    arena.append(s);
    return off;
  }
  std::string_view at(uint32_t off, uint32_t len) const { return {arena.data() + off, len}; }
};

inline std::string_view sv(beast::string_view v) { return {v.data(), v.size()}; }

class RequestParser final : public bhttp::basic_parser<true> {
 public:
  explicit RequestParser(RequestStorage& s) : s_(s) {}

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target, int version,
                       error_code&) override {
    s_.method_off = s_.put(sv(method));
    s_.method_len = static_cast<uint32_t>(method.size());
    s_.target_off = s_.put(sv(target));
    s_.target_len = static_cast<uint32_t>(target.size());
    s_.version = version;
  }
  void on_response_impl(int, beast::string_view, int, error_code&) override {}
  void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value, error_code&) override {
    if (f == bhttp::field::expect && iequals(sv(value), "100-continue")) s_.expect_continue = true;
    if (f == bhttp::field::host) ++s_.hosts;
    if (f == bhttp::field::content_length) ++s_.content_lengths;
    if (f == bhttp::field::transfer_encoding) {
      if (!s_.transfer_encoding.empty()) s_.transfer_encoding += ", ";
      s_.transfer_encoding.append(value.data(), std::min<size_t>(value.size(), 1024));
    }
    RequestStorage::Field field;
    field.name_off = s_.put(sv(name));
    field.name_len = static_cast<uint32_t>(name.size());
    field.value_off = s_.put(sv(value));
    field.value_len = static_cast<uint32_t>(value.size());
    s_.fields.push_back(field);
  }
  // The request-side MUSTs of RFC 9112 on framing (section 3.2 Host, 6.1
  // Transfer-Encoding, 6.3 message body length) that Beast leaves to us. A
  // request that breaks one is answered and the connection closed: its body's
  // length cannot be known, so nothing after it can be trusted as a request.
  void on_header_impl(error_code& ec) override {
    auto refuse = [&](int status, std::string why) {
      s_.refuse_status = status;
      s_.refuse_reason = std::move(why);
      ec = bhttp::error::bad_transfer_encoding;  // stops the parser; the status above is what is answered
    };
    if (s_.hosts > 1) return refuse(400, "more than one Host header");
    if (s_.hosts == 0 && s_.version >= 11) return refuse(400, "an HTTP/1.1 request needs a Host header");
    if (s_.transfer_encoding.empty()) return;
    if (s_.version < 11) return refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (s_.content_lengths > 0) return refuse(400, "both Transfer-Encoding and Content-Length");
    // Codings, comma-separated; only chunked is implemented, and it must be
    // the last one and appear once.
    std::vector<std::string> codings;
    std::string_view te = s_.transfer_encoding;
    for (size_t at = 0; at <= te.size();) {
      size_t comma = te.find(',', at);
      std::string_view c = te.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at);
      while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
      while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
      if (size_t semi = c.find(';'); semi != std::string_view::npos) c = c.substr(0, semi);
      while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
      std::string lower(c);
      for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      codings.push_back(lower);
      if (comma == std::string_view::npos) break;
      at = comma + 1;
    }
    int chunked = 0;
    for (const std::string& c : codings) {
      if (c == "chunked") {
        ++chunked;
        continue;
      }
      if (c.empty()) return refuse(400, "an empty transfer coding");
      return refuse(501, "transfer coding '" + c.substr(0, 40) + "' is not implemented");
    }
    if (chunked != 1 || codings.back() != "chunked") return refuse(400, "chunked must be the final transfer coding, once");
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) s_.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view body, error_code&) override {
    s_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code&) override {
    s_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  RequestStorage& s_;
};

// --- statistics ------------------------------------------------------------

inline void bump(std::atomic<uint64_t>& a, uint64_t d = 1) {
  a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

constexpr std::array<uint64_t, kLatencyBucketBounds.size()> bucket_bounds_ns() {
  std::array<uint64_t, kLatencyBucketBounds.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint64_t>(kLatencyBucketBounds[i] * 1e9 + 0.5);
  return out;
}
constexpr auto kBoundsNs = bucket_bounds_ns();

struct StatCell {
  std::atomic<uint32_t> key{0};  // (method + 1) << 16 | status; 0 = empty. Published last.
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_ns{0};
  std::array<std::atomic<uint64_t>, kLatencyBucketBounds.size()> buckets{};  // not cumulative
};

struct RouteBlock {
  std::array<StatCell, kCellsPerRoute> cells;
};

}  // namespace

// One thread's counters. Written only by its IO thread; read by stats().
class ThreadStats {
 public:
  ThreadStats() {
    for (auto& b : blocks_) b.store(nullptr, std::memory_order_relaxed);
  }
  ~ThreadStats() {
    for (auto& b : blocks_) delete b.load(std::memory_order_relaxed);
  }

  void record(RouteId route, Method method, int status, uint64_t ns) {
    if (route >= kMaxRoutesTracked) route = kUnmatchedRoute;
    RouteBlock* block = blocks_[route].load(std::memory_order_relaxed);
    if (block == nullptr) {
      block = new RouteBlock();
      blocks_[route].store(block, std::memory_order_release);
    }
    uint32_t key = (static_cast<uint32_t>(method) + 1) << 16 | static_cast<uint32_t>(status & 0xffff);
    size_t h = (key * 2654435761u) >> 28;
    for (size_t i = 0; i < kCellsPerRoute; ++i) {
      StatCell& c = block->cells[(h + i) % kCellsPerRoute];
      uint32_t k = c.key.load(std::memory_order_relaxed);
      if (k == key) {
        add(c, ns);
        return;
      }
      if (k == 0) {
        add(c, ns);
        c.key.store(key, std::memory_order_release);
        return;
      }
    }
    bump(overflow_);  // more than kCellsPerRoute (method, status) pairs on one route
  }

  template <typename F>  // F(RouteId, Method, int status, const StatCell&)
  void for_each(F&& f) const {
    for (size_t r = 0; r < kMaxRoutesTracked; ++r) {
      const RouteBlock* block = blocks_[r].load(std::memory_order_acquire);
      if (block == nullptr) continue;
      for (const StatCell& c : block->cells) {
        uint32_t key = c.key.load(std::memory_order_acquire);
        if (key == 0) continue;
        f(static_cast<RouteId>(r), static_cast<Method>((key >> 16) - 1), static_cast<int>(key & 0xffff), c);
      }
    }
  }

  std::atomic<uint64_t> accepted{0}, closed{0}, read_timeouts{0}, idle_closes{0}, bad_requests{0}, client_aborts{0},
      refused{0}, evicted{0};

 private:
  static void add(StatCell& c, uint64_t ns) {
    bump(c.count);
    bump(c.sum_ns, ns);
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    if (i < kBoundsNs.size()) bump(c.buckets[i]);
  }
  std::array<std::atomic<RouteBlock*>, kMaxRoutesTracked> blocks_;
  std::atomic<uint64_t> overflow_{0};
};

// --- the IO thread ---------------------------------------------------------

class IoThread {
 public:
  IoThread(const ServerOptions& options, std::shared_ptr<Router> router, RequestObserver* observer,
           uint64_t id_seed, std::shared_ptr<ServerControls> controls);
  ~IoThread();

  Status listen(const tcp::endpoint& endpoint);
  void run_in_thread();
  void begin_stop();   // posted: stop accepting, close idle connections
  void force_stop();   // posted: close everything, let run() return
  bool wait_exit(std::chrono::milliseconds timeout);
  void hard_stop() { ctx_->stop(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  size_t live() const { return live_.load(std::memory_order_acquire); }
  // Closes the oldest idle connection when at the cap; false when none can go.
  bool make_room();

  // Used by sessions (on this thread).
  asio::io_context& ctx() { return *ctx_; }
  const std::shared_ptr<asio::io_context>& shared_ctx() const { return ctx_; }
  const ServerOptions& options() const { return options_; }
  // "Server: <name>\r\nDate: <http-date>\r\n", refreshed once a second.
  std::string_view common_headers() const { return common_headers_; }
  bool stopping() const { return stopping_; }
  ThreadStats& stats() { return stats_; }
  const ThreadStats& stats() const { return stats_; }
  RequestObserver* observer() const { return observer_; }
  ServerControls& controls() { return *controls_; }
  const RouteTable& routes() {
    uint64_t v = router_->version();
    if (v != table_version_) table_ = router_->snapshot(&table_version_);
    return *table_;
  }
  uint64_t next_serial() { return ++serial_; }
  uint64_t id_seed() const { return id_seed_; }
  void remove(Session* s);

  // Set by the server to hear when a stopping thread has no connections left.
  std::function<void()> on_drained;

 private:
  void accept();
  void sweep();
  void refresh_date();
  void arm_sweep();

  ServerOptions options_;
  std::shared_ptr<Router> router_;
  RequestObserver* observer_;
  std::shared_ptr<ServerControls> controls_;
  std::shared_ptr<asio::io_context> ctx_;
  tcp::acceptor acceptor_;
  asio::steady_timer sweep_timer_;
  asio::steady_timer accept_retry_;
  std::chrono::milliseconds sweep_period_;
  std::thread thread_;
  std::mutex exit_mu_;
  std::condition_variable exit_cv_;
  bool exited_ = false;

  std::shared_ptr<const RouteTable> table_;
  uint64_t table_version_ = 0;
  Session* head_ = nullptr;  // intrusive list of sessions
  std::atomic<size_t> live_{0};
  size_t cap_ = 0;  // this thread's share of ServerOptions::max_connections; 0: none
  bool stopping_ = false;
  bool forced_ = false;
  std::string common_headers_;
  time_t date_second_ = -1;
  uint64_t serial_ = 0;
  uint64_t id_seed_;
  ThreadStats stats_;

  friend class Session;
};

// --- the connection --------------------------------------------------------

class Session {
 public:
  enum class State : uint8_t { kIdle, kReading, kHandling, kWriting, kStreaming, kDraining, kClosed };

  Session(IoThread& thread, tcp::socket socket)
      : thread_(thread), socket_(std::move(socket)), in_(thread.options().header_limit + 64 * 1024) {
    error_code ec;
    remote_ = format_endpoint(socket_.remote_endpoint(ec));
  }

  void start() {
    state_ = State::kIdle;
    deadline_ = std::chrono::steady_clock::now() + thread_.options().idle_timeout;
    read();
  }

  // Called by the sweep; `now` is the sweep's time.
  void check_deadline(SteadyTime now) {
    if (state_ == State::kClosed || now < deadline_) return;
    switch (state_) {
      case State::kIdle:
        bump(thread_.stats().idle_closes);
        close();
        break;
      case State::kReading:
        bump(thread_.stats().read_timeouts);
        error_response(408, "the request was not received in time");
        break;
      case State::kWriting:
      case State::kDraining:
        close();
        break;
      case State::kStreaming:
        // A stream is only on the clock while a write is outstanding: each
        // write, and each bit of progress, restarts deadline_ (start_write).
        // Between pieces a stream may stay quiet as long as its producer likes.
        if (writing_) {
          abandoned();
          close();
        }
        break;
      default:
        break;
    }
  }

  bool idle() const { return state_ == State::kIdle; }
  bool closed() const { return state_ == State::kClosed; }

  // Posted by begin_stop: idle connections go now, others after their response.
  void on_stop() {
    close_after_ = true;
    if (state_ == State::kIdle) close();
  }

  void close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    error_code ec;
    socket_.close(ec);
    detach_slot();
    if (ops_ == 0) {
      asio::post(thread_.ctx(), [this] { thread_.remove(this); });
    }
  }

  // --- from Responders (on this thread) ---
  void async_response(Response&& r) {
    detach_slot();
    send(r);
    if (finish_write_sync()) advance();
  }
  void stream_begin(int status, std::string&& content_type,
                    std::vector<std::pair<std::string, std::string>>&& headers) {
    state_ = State::kStreaming;
    streamed_ = true;
    chunked_ = version_ >= 11;
    if (!chunked_) close_after_ = true;
    keep_ = !close_after_ && keep_;
    status_ = status;
    write_head(status, content_type, headers, std::nullopt);
    flush_and_continue();
    note_buffered();
  }
  void stream_data(std::string&& data) {
    if (state_ != State::kStreaming || data.empty()) {
      if (slot_) slot_->pending.fetch_sub(data.size(), std::memory_order_relaxed);
      return;
    }
    if (chunked_) {
      char buf[20];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, data.size(), 16);
      pending_.append(buf, end);
      pending_ += "\r\n";
      pending_ += data;
      pending_ += "\r\n";
    } else {
      pending_ += data;
    }
    note_buffered(data.size());  // the piece moves from posted to held
    if (buffered() > StreamWriter::kMaxPending) return drop_stream();
    flush_and_continue();
    note_buffered();
  }
  // The stream's client is too far behind (or the writer saw it so): close the
  // connection, so the slot reads disconnected and later writes are refused.
  void drop_stream() {
    if (state_ != State::kStreaming) return;
    abandoned();
    close();
  }
  void stream_end() {
    if (state_ != State::kStreaming) return;
    if (chunked_) pending_ += "0\r\n\r\n";
    stream_done_ = true;
    detach_slot();
    flush_and_continue();
  }

  Session* prev_ = nullptr;
  Session* next_ = nullptr;
  State state() const { return state_; }
  int ops() const { return ops_; }

 private:
  enum class Parse { kNeedMore, kComplete, kFailed };

  // Starts reading. Asio's reactor skips the speculative read when its last read
  // drained the socket, so this costs no EAGAIN read and no epoll_ctl: the read
  // happens when epoll reports data.
  void read() {
    if (reading_) return;
    size_t room = read_room();
    if (room == 0) {
      bump(thread_.stats().bad_requests);
      return error_response(431, "request header too large");
    }
    reading_ = true;
    ++ops_;
    socket_.async_read_some(in_.prepare(room), [this](error_code ec, size_t n) { on_read(ec, n); });
  }

  size_t read_room() const {
    size_t max = in_.max_size() - in_.size();
    return std::min(max, std::max(kReadChunk, in_.capacity() - in_.size()));
  }

  void on_read(error_code ec, size_t n) {
    --ops_;
    reading_ = false;
    if (state_ == State::kClosed) return done_op();
    if (state_ == State::kDraining) {
      in_.consume(in_.size());
      if (ec) return close();
      return drain();
    }
    after_read(ec, n);
  }

  void after_read(error_code ec, size_t n) {
    if (ec) return close();  // EOF or reset: nothing to answer
    in_.commit(n);
    read_time_ = std::chrono::steady_clock::now();
    if (state_ != State::kIdle && state_ != State::kReading) return;  // input parked until the response is out
    advance();
  }

  // While an async handler works (or a stream is open), the session waits for
  // the socket to become readable, so that a client that closes or resets the
  // connection is seen at once: close() marks the slot disconnected, so the
  // handler's Responder::connected() turns false and it can cancel its upstream
  // work instead of finishing an answer nobody will read. A wait, not a read:
  // no read into in_ is outstanding when the response completes and parsing
  // resumes. Bytes that arrive meanwhile (a pipelined request) are read at once
  // and kept for after the response; with the buffer full, watching pauses
  // until then. A half-close (EOF) counts as going away, as with most servers:
  // a client that still wants the answer keeps its side open.
  void watch() {
    if (watching_ || state_ == State::kClosed) return;
    watching_ = true;
    ++ops_;
    socket_.async_wait(tcp::socket::wait_read, [this](error_code ec) { on_watch(ec); });
  }

  void on_watch(error_code ec) {
    --ops_;
    watching_ = false;
    if (state_ == State::kClosed) return done_op();
    if (state_ != State::kHandling && state_ != State::kStreaming) return;  // answered: reads took over
    if (ec) {
      abandoned();
      return close();
    }
    size_t room = read_room();
    if (room == 0) return;  // full of pipelined input: the read after the response resumes
    error_code rec;
    size_t n = socket_.read_some(in_.prepare(room), rec);
    if (rec == asio::error::would_block || rec == asio::error::try_again) return watch();
    if (rec) {  // eof or reset
      abandoned();
      return close();
    }
    in_.commit(n);
    read_time_ = std::chrono::steady_clock::now();
    watch();
  }

  // The client went away before the response was complete: count the request
  // (499, "client closed request", when no response had begun; a stream keeps
  // the status it started with).
  void abandoned() {
    if (state_ == State::kHandling) status_ = kClientClosedRequest;
    bump(thread_.stats().client_aborts);
    record(std::chrono::steady_clock::now());
    streamed_ = false;
  }

  // Parses and serves what is buffered, then waits for more.
  void advance() {
    for (int turn = 0; turn < kMaxPipelinedPerTurn; ++turn) {
      switch (parse()) {
        case Parse::kNeedMore:
          return read();
        case Parse::kFailed:
          return;
        case Parse::kComplete:
          break;
      }
      if (!dispatch()) return;
    }
    // Many pipelined requests: let other connections run before continuing.
    ++ops_;
    asio::post(thread_.ctx(), [this] {
      --ops_;
      if (state_ == State::kClosed) return done_op();
      advance();
    });
  }

  Parse parse() {
    if (!parser_) {
      storage_.clear();
      parser_.emplace(storage_);
      parser_->header_limit(static_cast<uint32_t>(std::min<size_t>(thread_.options().header_limit, UINT32_MAX)));
      parser_->body_limit(static_cast<uint64_t>(thread_.options().body_limit));
      parser_->eager(true);
    }
    if (in_.size() == 0) return Parse::kNeedMore;
    if (state_ == State::kIdle) {
      state_ = State::kReading;
      deadline_ = read_time_ + thread_.options().read_timeout;
    }
    while (in_.size() > 0) {
      error_code ec;
      auto data = in_.data();
      size_t used = parser_->put(asio::const_buffer(data.data(), data.size()), ec);
      in_.consume(used);
      if (ec == bhttp::error::need_more) {
        maybe_continue();
        return Parse::kNeedMore;
      }
      if (ec) {
        bump(thread_.stats().bad_requests);
        if (storage_.refuse_status) {
          error_response(storage_.refuse_status, storage_.refuse_reason);
        } else if (ec == bhttp::error::header_limit) {
          error_response(431, "request header too large");
        } else if (ec == bhttp::error::body_limit) {
          error_response(413, "request body too large");
        } else {
          error_response(400, "malformed request: " + ec.message());
        }
        return Parse::kFailed;
      }
      if (parser_->is_done()) return Parse::kComplete;
      if (used == 0) break;
    }
    maybe_continue();
    return Parse::kNeedMore;
  }

  // Answers "Expect: 100-continue" once the header is in and the body is not.
  void maybe_continue() {
    if (storage_.expect_continue && parser_->is_header_done() && !parser_->is_done()) {
      storage_.expect_continue = false;
      std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      error_code ec;
      socket_.write_some(asio::buffer(cont.data(), cont.size()), ec);  // best effort
    }
  }

  // Runs the handler for the parsed request. Returns true when the response was
  // written at once and the connection is ready for the next request.
  bool dispatch() {
    state_ = State::kHandling;
    keep_ = parser_->keep_alive() && !close_after_ && !thread_.stopping();
    version_ = storage_.version;
    started_ = read_time_;
    parser_.reset();  // the request lives on in storage_; the next one gets a fresh parser

    RequestStorage& s = storage_;
    s.views.clear();
    for (const auto& f : s.fields) s.views.push_back({s.at(f.name_off, f.name_len), s.at(f.value_off, f.value_len)});
    RequestBuilder builder;
    builder.method(s.at(s.method_off, s.method_len))
        .target(s.at(s.target_off, s.target_len))
        .version(s.version)
        .keep_alive(keep_)
        .headers(s.views)
        .body(s.body)
        .remote_address(remote_)
        .id_source(id_buffer_, thread_.id_seed(), thread_.next_serial());
    const Request& req = builder.get();
    method_ = req.method();
    head_ = method_ == Method::kHead;

    RouteTable::Match match = thread_.routes().find(method_, req.path());
    route_ = match.route ? match.route->id : kUnmatchedRoute;
    if (match.route == nullptr) {
      Response r = Response::error(404, "not_found", "no route for " + std::string(req.path()));
      send(r);
      return finish_write_sync();
    }
    if (match.endpoint == nullptr) {
      Response r = Response::error(405, "method_not_allowed",
                                   std::string(req.method_string()) + " is not allowed on " + match.route->pattern);
      r.header("Allow", match.route->allow);
      send(r);
      return finish_write_sync();
    }
    const Endpoint& e = *match.endpoint;
    if (int priority = match.route->shed_priority;
        priority > 0 && priority <= thread_.controls().shed_level.load(std::memory_order_relaxed)) {
      thread_.controls().shed_requests.fetch_add(1, std::memory_order_relaxed);
      Response r = Response::error(503, "unavailable", "shedding load: the server is under memory pressure");
      r.header("Retry-After", "5");
      send(r);
      return finish_write_sync();
    }
    RequestObserver* observer = thread_.observer();
    switch (e.kind) {
      case Endpoint::Kind::kPending:
        send(*e.pending);
        return finish_write_sync();
      case Endpoint::Kind::kSync: {
        if (observer) observer->on_request_begin(route_, req);
        std::optional<Response> r;
        try {
          r.emplace(e.sync(req));
        } catch (const std::exception& ex) {
          r.emplace(Response::error(500, "internal", std::string("handler failed: ") + ex.what()));
        } catch (...) {
          r.emplace(Response::error(500, "internal", "handler failed"));
        }
        if (observer) observer->on_request_end(route_, r->status);
        send(*r);
        return finish_write_sync();
      }
      case Endpoint::Kind::kAsync: {
        auto slot = std::make_shared<AsyncSlot>();
        slot->ctx = thread_.shared_ctx();
        slot->session = this;
        slot_ = slot;
        noted_ = 0;
        if (observer) observer->on_request_begin(route_, req);
        try {
          e.async(req, Responder(std::move(slot)));
        } catch (...) {
          // The Responder, destroyed during unwinding, has already posted a 500.
        }
        if (observer) observer->on_request_end(route_, 0);
        if (slot_) watch();  // still owed: see the client go if it does
        return false;
      }
    }
    return false;
  }

  // Serialises a complete response into pending_ and starts writing it.
  void send(const Response& r) {
    state_ = State::kWriting;
    if (r.close) keep_ = false;
    if (close_after_ || thread_.stopping()) keep_ = false;
    if (thread_.controls().keepalive_disabled.load(std::memory_order_relaxed)) keep_ = false;
    status_ = r.status;
    write_head(r.status, r.content_type, r.headers, r.body.size());
    bool no_body = head_ || r.status == 204 || r.status == 304 || r.status < 200;
    if (!no_body) pending_ += r.body;
    parser_.reset();
    sent_at_ = std::chrono::steady_clock::now();
    record(sent_at_);
    wrote_all_ = flush();
  }

  void record(SteadyTime now) {
    if (!thread_.options().request_stats) return;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count();
    thread_.stats().record(route_, method_, status_, static_cast<uint64_t>(std::max<int64_t>(ns, 0)));
  }

  // Serialises the status line and headers into pending_. One resize, then
  // plain copies: the common header lines ("Server", "Date") come prepared from
  // the thread, refreshed once a second.
  void write_head(int status, std::string_view content_type,
                  const std::vector<std::pair<std::string, std::string>>& headers,
                  std::optional<size_t> content_length) {
    using namespace std::string_view_literals;
    status = std::clamp(status, 100, 999);
    std::string_view reason = reason_phrase(status);
    std::string_view common = thread_.common_headers();
    bool ct = !content_type.empty() && !has_crlf(content_type);
    size_t need = 16 + reason.size() + common.size() + (ct ? 16 + content_type.size() : 0) + 48 + 26;
    for (const auto& [name, value] : headers) need += name.size() + value.size() + 4;
    std::string& o = pending_;
    size_t start = o.size();
    o.resize(start + need);
    char* p = o.data() + start;
    auto put = [&p](std::string_view v) {
      std::memcpy(p, v.data(), v.size());
      p += v.size();
    };
    put(version_ >= 11 ? "HTTP/1.1 "sv : "HTTP/1.0 "sv);
    p[0] = static_cast<char>('0' + status / 100);
    p[1] = static_cast<char>('0' + status / 10 % 10);
    p[2] = static_cast<char>('0' + status % 10);
    p[3] = ' ';
    p += 4;
    put(reason);
    put("\r\n"sv);
    put(common);
    if (ct) {
      put("Content-Type: "sv);
      put(content_type);
      put("\r\n"sv);
    }
    if (content_length) {
      put("Content-Length: "sv);
      p = std::to_chars(p, p + 20, *content_length).ptr;
      put("\r\n"sv);
    } else if (chunked_) {
      put("Transfer-Encoding: chunked\r\n"sv);
    }
    for (const auto& [name, value] : headers) {
      if (name.empty() || has_crlf(name) || has_crlf(value)) continue;
      put(name);
      put(": "sv);
      put(value);
      put("\r\n"sv);
    }
    if (!keep_) {
      put("Connection: close\r\n"sv);
    } else if (version_ < 11) {
      put("Connection: keep-alive\r\n"sv);
    }
    put("\r\n"sv);
    o.resize(static_cast<size_t>(p - o.data()));
  }

  // Hands pending_ to the socket. Returns true when all of it was written at
  // once; otherwise an async write is under way (or the connection closed).
  bool flush() {
    if (writing_) return false;
    if (pending_.empty()) return true;
    out_.swap(pending_);
    pending_.clear();
    error_code ec;
    size_t n = socket_.write_some(asio::buffer(out_), ec);
    if (!ec && n == out_.size()) {
      out_.clear();
      out_off_ = 0;
      return true;
    }
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      close();
      return false;
    }
    out_off_ = ec ? 0 : n;
    start_write();
    return false;
  }

  // Writes the rest of out_ piece by piece (write_some, not the composed
  // async_write), so that every bit of progress is seen: it restarts the write
  // deadline (a write that makes no progress for read_timeout is closed by the
  // sweep) and updates what a stream's writer sees as pending.
  void start_write() {
    writing_ = true;
    ++ops_;
    deadline_ = std::chrono::steady_clock::now() + thread_.options().read_timeout;
    socket_.async_write_some(asio::buffer(out_.data() + out_off_, out_.size() - out_off_),
                             [this](error_code ec, size_t n) { on_written(ec, n); });
  }

  // Bytes of this response not yet accepted by the kernel.
  size_t buffered() const { return pending_.size() + out_.size() - out_off_; }
  // Brings the slot's pending count up to date; `taken` bytes of the change
  // were already counted there as posted (modular arithmetic: may go down).
  void note_buffered(size_t taken = 0) {
    if (!slot_) return;
    size_t now = buffered();
    slot_->pending.fetch_add(now - noted_ - taken, std::memory_order_relaxed);
    noted_ = now;
  }

  void on_written(error_code ec, size_t n) {
    --ops_;
    writing_ = false;
    if (state_ == State::kClosed) return done_op();
    if (ec) {
      if (state_ == State::kStreaming) abandoned();
      return close();
    }
    out_off_ += n;
    if (out_off_ < out_.size()) {
      start_write();
      return note_buffered();
    }
    out_.clear();
    out_off_ = 0;
    if (!pending_.empty()) {
      bool all = flush();
      note_buffered();
      if (!all) return;
    }
    note_buffered();
    if (state_ == State::kStreaming) {
      if (stream_done_ && finish_response()) advance();
      return;
    }
    if (state_ == State::kWriting && finish_response()) advance();
  }

  // After send(): if the write completed at once, finish the response.
  bool finish_write_sync() {
    if (state_ == State::kClosed || !wrote_all_) return false;
    return finish_response();
  }

  void flush_and_continue() {
    if (flush() && state_ == State::kStreaming && stream_done_ && finish_response()) advance();
  }

  // The response is fully written: count it, then keep the connection or close
  // it. Returns true when the session is ready for the next request.
  bool finish_response() {
    SteadyTime now = sent_at_;
    if (streamed_) {  // a stream counts when it ends; others when handed to the socket
      now = std::chrono::steady_clock::now();
      record(now);
    }
    streamed_ = false;
    // Bytes already buffered (pipelined) start their clock now, not when they arrived.
    if (read_time_ < now) read_time_ = now;
    chunked_ = false;
    stream_done_ = false;
    if (!keep_) {
      linger_close(now);
      return false;
    }
    if (out_.capacity() > kShrinkAbove) std::string().swap(out_);
    if (pending_.capacity() > kShrinkAbove) std::string().swap(pending_);
    if (storage_.body.capacity() > kShrinkAbove) std::string().swap(storage_.body);
    state_ = State::kIdle;
    deadline_ = now + thread_.options().idle_timeout;
    return true;
  }

  // Sends a final error response and closes after it.
  void error_response(int status, std::string message) {
    detach_slot();
    close_after_ = true;
    keep_ = false;
    route_ = kUnmatchedRoute;
    method_ = storage_.method_len ? parse_method(storage_.at(storage_.method_off, storage_.method_len)) : Method::kOther;
    head_ = false;
    started_ = std::chrono::steady_clock::now();
    pending_.clear();
    if (state_ == State::kStreaming || writing_) {  // cannot answer mid-response
      close();
      return;
    }
    Response r = Response::error(status, message);
    send(r);
    finish_write_sync();
  }

  // Half-closes and reads until the peer closes (or the deadline), so a client
  // still sending does not get a reset that would destroy our response.
  void linger_close(SteadyTime now) {
    state_ = State::kDraining;
    deadline_ = now + std::min<std::chrono::milliseconds>(thread_.options().read_timeout, std::chrono::seconds(2));
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    drain();
  }

  void drain() {
    if (reading_) return;
    in_.consume(in_.size());
    reading_ = true;
    ++ops_;
    socket_.async_read_some(in_.prepare(kReadChunk), [this](error_code ec, size_t n) { on_read(ec, n); });
  }

  void detach_slot() {
    if (slot_) {
      slot_->session = nullptr;
      slot_->connected.store(false, std::memory_order_release);
      slot_.reset();
    }
  }

  void done_op() {
    if (ops_ == 0) thread_.remove(this);
  }

  IoThread& thread_;
  tcp::socket socket_;
  beast::flat_buffer in_;
  RequestStorage storage_;
  std::optional<RequestParser> parser_;
  std::string out_;      // being written
  size_t out_off_ = 0;   // of out_, already written
  size_t noted_ = 0;     // of buffered(), counted in slot_->pending
  std::string pending_;  // to write next
  std::string remote_;
  std::shared_ptr<AsyncSlot> slot_;
  SteadyTime deadline_{};
  SteadyTime read_time_{};
  SteadyTime started_{};
  SteadyTime sent_at_{};
  State state_ = State::kIdle;
  RouteId route_ = kUnmatchedRoute;
  Method method_ = Method::kGet;
  int status_ = 0;
  int version_ = 11;
  int ops_ = 0;
  bool reading_ = false;
  bool watching_ = false;
  bool writing_ = false;
  bool wrote_all_ = false;
  bool keep_ = true;
  bool head_ = false;
  bool close_after_ = false;
  bool chunked_ = false;
  bool stream_done_ = false;
  bool streamed_ = false;
  char id_buffer_[Request::kIdBufferSize];
};

// --- IoThread implementation -----------------------------------------------

IoThread::IoThread(const ServerOptions& options, std::shared_ptr<Router> router, RequestObserver* observer,
                   uint64_t id_seed, std::shared_ptr<ServerControls> controls)
    : options_(options),
      router_(std::move(router)),
      observer_(observer),
      controls_(std::move(controls)),
      ctx_(std::make_shared<asio::io_context>(1)),
      acceptor_(*ctx_),
      sweep_timer_(*ctx_),
      accept_retry_(*ctx_),
      id_seed_(id_seed) {
  auto shorter = std::min(options.read_timeout, options.idle_timeout);
  sweep_period_ = std::clamp<std::chrono::milliseconds>(shorter / 8, std::chrono::milliseconds(5),
                                                        std::chrono::milliseconds(250));
  table_ = router_->snapshot(&table_version_);
  if (options.max_connections > 0) {
    size_t threads = static_cast<size_t>(std::max(1, options.io_threads));
    cap_ = (options.max_connections + threads - 1) / threads;
  }
  refresh_date();
}

IoThread::~IoThread() {
  join();
  while (head_ != nullptr) {
    Session* s = head_;
    head_ = s->next_;
    delete s;
  }
}

Status IoThread::listen(const tcp::endpoint& endpoint) {
  error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    acceptor_.close(ignored);
    if (ec == asio::error::address_in_use) {
      return FailedPrecondition("port " + std::to_string(endpoint.port()) + " is already in use");
    }
    return Internal("cannot listen on " + format_endpoint(endpoint) + ": " + ec.message());
  }
  return Status::Ok();
}

void IoThread::run_in_thread() {
  accept();
  arm_sweep();
  thread_ = std::thread([this] {
    ctx_->run();
    std::lock_guard lock(exit_mu_);
    exited_ = true;
    exit_cv_.notify_all();
  });
}

bool IoThread::wait_exit(std::chrono::milliseconds timeout) {
  std::unique_lock lock(exit_mu_);
  return exit_cv_.wait_for(lock, timeout, [this] { return exited_; });
}

void IoThread::accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (stopping_ || !acceptor_.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: back off a little rather than spin.
      accept_retry_.expires_after(std::chrono::milliseconds(20));
      accept_retry_.async_wait([this](error_code e) {
        if (!e) accept();
      });
      return;
    }
    error_code opt;
    socket.set_option(tcp::no_delay(true), opt);
    if (!make_room()) {
      // Every connection is busy: a short answer, then close, so the client
      // learns why instead of hanging in the backlog.
      static constexpr std::string_view kFull =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 71\r\n"
          "Retry-After: 1\r\nConnection: close\r\n\r\n"
          "{\"error\":{\"code\":\"unavailable\",\"message\":\"too many open connections\"}}\n";
      static_assert(kFull.size() - kFull.find("\r\n\r\n") - 4 == 71, "Content-Length of the 503 body");
      bump(stats_.refused);  // counted before the client can see the answer
      socket.non_blocking(true, opt);
      socket.write_some(asio::buffer(kFull.data(), kFull.size()), opt);  // best effort
      socket.shutdown(tcp::socket::shutdown_both, opt);
      accept();
      return;
    }
    socket.non_blocking(true, opt);
    auto* s = new Session(*this, std::move(socket));
    s->next_ = head_;
    if (head_) head_->prev_ = s;
    head_ = s;
    live_.fetch_add(1, std::memory_order_relaxed);
    bump(stats_.accepted);
    s->start();
    accept();
  });
}

bool IoThread::make_room() {
  if (cap_ == 0 || live_.load(std::memory_order_relaxed) < cap_) return true;
  // The oldest idle keep-alive connection: the list's tail end (new sessions
  // are pushed at the head). Sessions already closing still count until removed.
  Session* oldest_idle = nullptr;
  size_t closing = 0;
  for (Session* s = head_; s != nullptr; s = s->next_) {
    if (s->closed()) ++closing;
    else if (s->idle()) oldest_idle = s;
  }
  if (live_.load(std::memory_order_relaxed) - closing < cap_) return true;
  if (oldest_idle == nullptr) return false;
  bump(stats_.evicted);
  oldest_idle->close();
  return true;
}

void IoThread::remove(Session* s) {
  if (s->prev_) {
    s->prev_->next_ = s->next_;
  } else if (head_ == s) {
    head_ = s->next_;
  }
  if (s->next_) s->next_->prev_ = s->prev_;
  delete s;
  bump(stats_.closed);
  if (live_.fetch_sub(1, std::memory_order_acq_rel) == 1 && stopping_ && on_drained) on_drained();
}

void IoThread::arm_sweep() {
  sweep_timer_.expires_after(sweep_period_);
  sweep_timer_.async_wait([this](error_code ec) {
    if (ec || forced_) return;
    sweep();
    arm_sweep();
  });
}

void IoThread::sweep() {
  refresh_date();
  auto now = std::chrono::steady_clock::now();
  for (Session* s = head_; s != nullptr;) {
    Session* next = s->next_;  // check_deadline never frees synchronously
    s->check_deadline(now);
    s = next;
  }
}

void IoThread::refresh_date() {
  time_t t = std::time(nullptr);
  if (t == date_second_) return;
  date_second_ = t;
  struct tm tm;
  gmtime_r(&t, &tm);
  char date[64];
  size_t n = std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  common_headers_ = "Server: " + options_.server_name + "\r\nDate: " + std::string(date, n) + "\r\n";
}

void IoThread::begin_stop() {
  stopping_ = true;
  error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
  for (Session* s = head_; s != nullptr; s = s->next_) s->on_stop();
  if (live_.load() == 0 && on_drained) on_drained();
}

void IoThread::force_stop() {
  stopping_ = true;
  forced_ = true;
  error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
  sweep_timer_.cancel();
  for (Session* s = head_; s != nullptr; s = s->next_) s->close();
}

}  // namespace detail

// --- Responder / StreamWriter ----------------------------------------------

namespace {

template <typename F>
void post_to_session(const std::shared_ptr<detail::AsyncSlot>& slot, F&& f) {
  if (auto ctx = slot->ctx.lock()) {
    asio::post(*ctx, [slot, f = std::forward<F>(f)]() mutable {
      if (slot->session) f(*slot->session);
    });
  }
}

}  // namespace

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (slot_) std::move(*this).send(Response::error(500, "internal", "the handler dropped its responder"));
    slot_ = std::move(other.slot_);
  }
  return *this;
}

Responder::~Responder() {
  if (slot_) std::move(*this).send(Response::error(500, "internal", "the handler dropped its responder"));
}

void Responder::send(Response response) && {
  if (!slot_) return;
  auto slot = std::move(slot_);
  post_to_session(slot, [r = std::move(response)](detail::Session& s) mutable { s.async_response(std::move(r)); });
}

StreamWriter Responder::stream(int status, std::string content_type,
                               std::vector<std::pair<std::string, std::string>> headers) && {
  if (!slot_) return StreamWriter();
  auto slot = std::move(slot_);
  post_to_session(slot, [status, ct = std::move(content_type), h = std::move(headers)](detail::Session& s) mutable {
    s.stream_begin(status, std::move(ct), std::move(h));
  });
  return StreamWriter(std::move(slot));
}

bool Responder::connected() const { return slot_ && slot_->connected.load(std::memory_order_acquire); }

StreamWriter& StreamWriter::operator=(StreamWriter&& other) noexcept {
  if (this != &other) {
    finish();
    slot_ = std::move(other.slot_);
  }
  return *this;
}

StreamWriter::~StreamWriter() { finish(); }

bool StreamWriter::write(std::string data) {
  if (!slot_ || !slot_->connected.load(std::memory_order_acquire)) return false;
  if (data.empty()) return true;
  if (slot_->pending.load(std::memory_order_relaxed) > kMaxPending) {  // the client is this far behind: drop it
    slot_->connected.store(false, std::memory_order_release);
    post_to_session(slot_, [](detail::Session& s) { s.drop_stream(); });
    return false;
  }
  size_t n = data.size();
  slot_->pending.fetch_add(n, std::memory_order_relaxed);
  if (auto ctx = slot_->ctx.lock()) {
    asio::post(*ctx, [n, slot = slot_, d = std::move(data)]() mutable {
      if (slot->session) {
        slot->session->stream_data(std::move(d));  // takes the piece over in the count
      } else {
        slot->pending.fetch_sub(n, std::memory_order_relaxed);
      }
    });
  } else {
    slot_->pending.fetch_sub(n, std::memory_order_relaxed);
  }
  return true;
}

void StreamWriter::finish() {
  if (!slot_) return;
  auto slot = std::move(slot_);
  post_to_session(slot, [](detail::Session& s) { s.stream_end(); });
}

bool StreamWriter::connected() const { return slot_ && slot_->connected.load(std::memory_order_acquire); }

size_t StreamWriter::queued_bytes() const { return slot_ ? slot_->pending.load(std::memory_order_relaxed) : 0; }

// --- Server ----------------------------------------------------------------

Server::Server(ServerOptions options, std::shared_ptr<Router> router)
    : options_(std::move(options)), router_(router ? std::move(router) : std::make_shared<Router>()) {}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

Status Server::start() {
  if (started_) return FailedPrecondition("the server was already started");
  if (options_.io_threads < 1 || options_.io_threads > 256) {
    return InvalidArgument("io_threads must be between 1 and 256, not " + std::to_string(options_.io_threads));
  }
  if (options_.header_limit < 256) return InvalidArgument("header_limit must be at least 256 bytes");
  if (options_.server_name.find_first_of("\r\n") != std::string::npos) {
    return InvalidArgument("server_name must not contain line breaks");
  }
  if (options_.read_timeout.count() <= 0 || options_.idle_timeout.count() <= 0) {
    return InvalidArgument("read_timeout and idle_timeout must be positive");
  }
  error_code ec;
  auto address = asio::ip::make_address(options_.host, ec);
  if (ec) return InvalidArgument("host '" + options_.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options_.port);

  // The probe: binding without SO_REUSEPORT fails if anyone is listening on the
  // port, where our SO_REUSEPORT listeners would quietly share it with another
  // process of the same user. With port 0 it also picks the port.
  {
    asio::io_context probe_ctx(1);
    tcp::acceptor probe(probe_ctx);
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec == asio::error::address_in_use) {
      return FailedPrecondition("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                                ": address already in use");
    }
    if (ec) return Internal("cannot bind " + options_.host + ":" + std::to_string(options_.port) + ": " + ec.message());
    endpoint.port(probe.local_endpoint(ec).port());
    probe.close(ec);
  }

  std::random_device rd;
  for (int i = 0; i < options_.io_threads; ++i) {
    uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    auto t = std::make_unique<detail::IoThread>(options_, router_, observer_, seed, controls_);
    Status s = t->listen(endpoint);
    if (!s.ok()) {
      threads_.clear();
      return s;
    }
    t->on_drained = [this] {
      std::lock_guard lock(stop_mu_);
      stopped_cv_.notify_all();
    };
    threads_.push_back(std::move(t));
  }
  started_ = true;
  port_.store(endpoint.port(), std::memory_order_release);
  running_.store(true, std::memory_order_release);
  for (auto& t : threads_) t->run_in_thread();
  return Status::Ok();
}

void Server::stop(std::chrono::milliseconds deadline) {
  {
    std::lock_guard lock(stop_mu_);
    if (!running_.load() || stopped_) return;
  }
  auto until = std::chrono::steady_clock::now() + deadline;
  for (auto& t : threads_) asio::post(t->ctx(), [p = t.get()] { p->begin_stop(); });
  {
    std::unique_lock lock(stop_mu_);
    stopped_cv_.wait_until(lock, until, [this] {
      return std::all_of(threads_.begin(), threads_.end(), [](const auto& t) { return t->live() == 0; });
    });
  }
  for (auto& t : threads_) asio::post(t->ctx(), [p = t.get()] { p->force_stop(); });
  for (auto& t : threads_) {
    if (!t->wait_exit(std::chrono::milliseconds(200))) t->hard_stop();
    t->join();
  }
  running_.store(false, std::memory_order_release);
  std::lock_guard lock(stop_mu_);
  stopped_ = true;
  stopped_cv_.notify_all();
}

void Server::join() {
  std::unique_lock lock(stop_mu_);
  stopped_cv_.wait(lock, [this] { return stopped_ || !started_; });
}

std::vector<RouteStats> Server::stats() const {
  struct Key {
    RouteId route;
    Method method;
    int status;
    bool operator<(const Key& o) const {
      return std::tie(route, method, status) < std::tie(o.route, o.method, o.status);
    }
  };
  std::vector<std::pair<Key, RouteStats>> rows;
  for (const auto& t : threads_) {
    t->stats().for_each([&](RouteId route, Method method, int status, const detail::StatCell& c) {
      Key key{route, method, status};
      auto it = std::find_if(rows.begin(), rows.end(), [&](const auto& r) {
        return r.first.route == route && r.first.method == method && r.first.status == status;
      });
      if (it == rows.end()) {
        RouteStats rs;
        rs.method = std::string(method_name(method));
        rs.status = status;
        rows.emplace_back(key, std::move(rs));
        it = rows.end() - 1;
      }
      RouteStats& rs = it->second;
      rs.count += c.count.load(std::memory_order_relaxed);
      rs.latency_sum_seconds += static_cast<double>(c.sum_ns.load(std::memory_order_relaxed)) / 1e9;
      for (size_t i = 0; i < rs.bucket_counts.size(); ++i) {
        rs.bucket_counts[i] += c.buckets[i].load(std::memory_order_relaxed);
      }
    });
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<RouteStats> out;
  out.reserve(rows.size());
  for (auto& [key, rs] : rows) {
    if (rs.count == 0) continue;
    rs.route = router_->pattern(key.route);
    for (size_t i = 1; i < rs.bucket_counts.size(); ++i) rs.bucket_counts[i] += rs.bucket_counts[i - 1];
    out.push_back(std::move(rs));
  }
  return out;
}

ConnectionStats Server::connection_stats() const {
  ConnectionStats s;
  for (const auto& t : threads_) {
    const auto& ts = t->stats();
    s.accepted += ts.accepted.load(std::memory_order_relaxed);
    uint64_t closed = ts.closed.load(std::memory_order_relaxed);
    s.read_timeouts += ts.read_timeouts.load(std::memory_order_relaxed);
    s.idle_closes += ts.idle_closes.load(std::memory_order_relaxed);
    s.bad_requests += ts.bad_requests.load(std::memory_order_relaxed);
    s.client_aborts += ts.client_aborts.load(std::memory_order_relaxed);
    s.refused += ts.refused.load(std::memory_order_relaxed);
    s.evicted += ts.evicted.load(std::memory_order_relaxed);
    s.open += ts.accepted.load(std::memory_order_relaxed) - std::min(closed, ts.accepted.load());
  }
  return s;
}

int stop_on_signal(Server& server, std::chrono::milliseconds deadline) {
  asio::io_context ctx(1);
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  int received = 0;
  signals.async_wait([&](error_code ec, int sig) {
    if (!ec) received = sig;
  });
  ctx.run();
  server.stop(deadline);
  return received;
}

}  // namespace memgate::http
