// The Redis connection: one socket, one io thread, pipelined.
//
// Design. Senders format a command with hiredis and, under one mutex, append it to
// `out_` and push its callback onto `pending_`; bytes and callbacks therefore stay
// in the same order, which is all that reply matching needs (Redis answers in
// order). When no write is in flight, the sender tries a direct non-blocking
// send() on the socket's descriptor (plain TCP and Unix sockets only): an idle
// connection then costs no thread hop on the way out. Anything not sent is left to
// the io thread, which swaps `out_` into its write buffer, writes it whole, and
// repeats while more arrived meanwhile: under load, hundreds of commands leave in
// one write. The io thread also reads, feeds hiredis's reader, and pops one
// callback per reply. Each connection attempt has an epoch; handlers of an older
// epoch do nothing, so a late completion cannot touch a newer socket.
//
// Blocking calls go one step further on plain connections: when the connection is
// idle, the caller takes ownership of the reader, sends, and polls and reads the
// socket itself until its own reply is parsed, then hands reading back (and wakes
// the io thread only if other replies are now expected). The io thread, for its
// part, reads only while replies are expected, with a readiness wait it re-checks
// after queuing (Asio's epoll reactor is edge-triggered and does not look before it
// queues a wait). A sequential client therefore pays one wake-up per reply, like a
// plain blocking hiredis context. A close that happens while a caller reads is
// turned into shutdown(), and the socket is closed once the caller let go.
//
// Timeouts are checked by one ticking timer rather than a timer per command: a
// command's deadline is fixed when it is queued, deadlines are therefore in queue
// order, and the tick only looks at the front.
#include "memgate/coord/connection.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <array>
#include <atomic>
#include <condition_variable>
#include <optional>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>

namespace memgate::coord {

namespace asio = boost::asio;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

Script::Script(std::string source) : source_(std::move(source)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source_.data()), source_.size(), digest);
  static const char* hex = "0123456789abcdef";
  sha1_.reserve(2 * SHA_DIGEST_LENGTH);
  for (unsigned char c : digest) {
    sha1_.push_back(hex[c >> 4]);
    sha1_.push_back(hex[c & 15]);
  }
}

std::chrono::milliseconds reconnect_delay(int attempt, std::chrono::milliseconds min, std::chrono::milliseconds max,
                                          double rand01) {
  double base = static_cast<double>(min.count());
  for (int i = 0; i < attempt && base < static_cast<double>(max.count()); ++i) base *= 2;
  if (base > static_cast<double>(max.count())) base = static_cast<double>(max.count());
  double d = base / 2 + base / 2 * rand01;
  return std::chrono::milliseconds(static_cast<int64_t>(d));
}

bool is_readonly_error(std::string_view text) {
  return text.rfind("READONLY", 0) == 0 || text.find("-READONLY") != std::string_view::npos ||
         text.find("READONLY You can't write") != std::string_view::npos;
}

std::string describe_reply_error(const Result<Reply>& r) {
  if (!r.ok()) return r.status().to_string();
  if (r->is_error()) return "redis error: " + r->str;
  return "unexpected reply";
}

namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  return out;
}

// The byte stream under the protocol: TCP, TLS over TCP, or a Unix socket.
class Stream {
 public:
  using Handler = std::function<void(error_code, size_t)>;
  virtual ~Stream() = default;
  virtual void async_read_some(asio::mutable_buffer buf, Handler h) = 0;
  virtual void async_write(asio::const_buffer buf, Handler h) = 0;
  virtual void close() = 0;
  // The descriptor senders may write to directly, or -1 (TLS).
  virtual int direct_fd() = 0;
  // Plain streams: wait until the descriptor is readable (reads are done with recv()).
  virtual void async_wait_readable(std::function<void(error_code)> h) {}
};

template <typename Socket>
class PlainStream final : public Stream {
 public:
  explicit PlainStream(Socket s) : socket_(std::move(s)) {}
  void async_read_some(asio::mutable_buffer buf, Handler h) override { socket_.async_read_some(buf, std::move(h)); }
  void async_write(asio::const_buffer buf, Handler h) override { asio::async_write(socket_, buf, std::move(h)); }
  void close() override {
    error_code ec;
    socket_.close(ec);
  }
  int direct_fd() override { return socket_.native_handle(); }
  void async_wait_readable(std::function<void(error_code)> h) override {
    socket_.async_wait(Socket::wait_read, std::move(h));
  }

 private:
  Socket socket_;
};

class TlsStream final : public Stream {
 public:
  explicit TlsStream(std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> s) : s_(std::move(s)) {}
  void async_read_some(asio::mutable_buffer buf, Handler h) override { s_->async_read_some(buf, std::move(h)); }
  void async_write(asio::const_buffer buf, Handler h) override { asio::async_write(*s_, buf, std::move(h)); }
  void close() override {
    error_code ec;
    s_->lowest_layer().close(ec);
  }
  int direct_fd() override { return -1; }

 private:
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> s_;
};

struct Pending {
  ReplyCallback cb;
  Clock::time_point deadline;
  bool abandoned = false;  // timed out: its reply is dropped
  const void* driver = nullptr;  // the blocking caller reading this reply itself, if any
};

// Who parses replies right now: the io thread, a blocking caller, or nobody.
enum class ReaderOwner { kNone, kIo, kCaller };

// Set while a thread drives the socket for its own blocking call.
thread_local const void* tls_driving = nullptr;

}  // namespace

class Connection::Impl {
 public:
  Impl(RedisSettings settings, CoordMetrics* metrics, bool report_state, bool subscriber,
       std::vector<std::string> patterns, MessageHandler handler, EndpointSource source)
      : settings_(std::move(settings)),
        source_(std::move(source)),
        target_host_(settings_.host),
        target_port_(settings_.port),
        metrics_(metrics),
        report_state_(report_state),
        subscriber_(subscriber),
        patterns_(std::move(patterns)),
        message_handler_(std::move(handler)),
        ssl_ctx_(asio::ssl::context::tls_client),
        resolver_(io_),
        connect_timer_(io_),
        reconnect_timer_(io_),
        tick_timer_(io_),
        rng_(std::random_device{}()) {
    reader_ = redisReaderCreate();
    if (settings_.transport == Transport::kTls) setup_tls();
    work_.emplace(asio::make_work_guard(io_));
    thread_ = std::thread([this] {
      io_thread_id_ = std::this_thread::get_id();
      io_thread_known_.store(true);
      io_.run();
    });
    asio::post(io_, [this] {
      start_attempt();
      tick();
    });
  }

  void subscribe(std::vector<std::string> command) {
    bool now;
    {
      std::lock_guard lock(mu_);
      subscriptions_.push_back(command);
      now = state_ == ConnectionState::kConnected;  // else the next connect sends it
    }
    if (now) submit(std::vector<std::string_view>(command.begin(), command.end()), nullptr, true);
  }
  std::vector<std::vector<std::string>> subscriptions() {
    std::lock_guard lock(mu_);
    return subscriptions_;
  }

  void reconnect(const std::string& why) {
    asio::post(io_, [this, why] {
      if (stopping_) return;
      ConnectionState now = state();
      attempt_ = 0;  // an attempt under way that fails is followed by the shortest delay
      if (now == ConnectionState::kConnecting) return;
      if (now == ConnectionState::kConnected) return fail_connection(why, true);
      // Waiting out a backoff (up to reconnect_max): try now instead, so a
      // +switch-master hint moves a connection the dead master left too.
      ++backoff_generation_;
      reconnect_timer_.cancel();
      start_attempt();
    });
  }

  ~Impl() {
    asio::post(io_, [this] {
      stopping_ = true;
      fail_connection("connection closed", false);
      connect_timer_.cancel();
      reconnect_timer_.cancel();
      tick_timer_.cancel();
      resolver_.cancel();
      work_.reset();
    });
    thread_.join();
    redisReaderFree(reader_);
  }

  // ---- public surface -------------------------------------------------------------

  Status wait_connected(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    bool ok = state_cv_.wait_for(lock, timeout, [&] { return state_ == ConnectionState::kConnected; });
    if (ok) return Status::Ok();
    return Unavailable("redis at " + settings_.describe() + " is not reachable: " +
                       (last_error_.empty() ? "still connecting" : last_error_));
  }

  ConnectionState state() const {
    std::lock_guard lock(mu_);
    return state_;
  }
  std::string last_error() const {
    std::lock_guard lock(mu_);
    return last_error_;
  }
  const RedisSettings& settings() const { return settings_; }
  bool on_io_thread() const { return io_thread_known_.load() && std::this_thread::get_id() == io_thread_id_; }

  void submit(const std::vector<std::string_view>& args, ReplyCallback cb, bool internal = false) {
    thread_local std::vector<const char*> argv;
    thread_local std::vector<size_t> argl;
    argv.clear();
    argl.clear();
    for (auto a : args) {
      argv.push_back(a.data());
      argl.push_back(a.size());
    }
    char* cmd = nullptr;
    int len = redisFormatCommandArgv(&cmd, static_cast<int>(argv.size()), argv.data(), argl.data());
    if (len < 0) {
      post_failure(std::move(cb), Internal("cannot format a redis command"));
      return;
    }
    std::unique_lock lock(mu_);
    if (!internal && state_ != ConnectionState::kConnected) {
      std::string err = last_error_.empty() ? "still connecting" : last_error_;
      lock.unlock();
      redisFreeCommand(cmd);
      metrics_->count(CommandErrorKind::kDisconnected);
      post_failure(std::move(cb), Unavailable("redis at " + settings_.describe() + " is not connected: " + err));
      return;
    }
    if (cb) {
      pending_.push_back(Pending{std::move(cb), Clock::now() + settings_.command_timeout, false,
                                 tls_driving == this ? this : nullptr});
      ensure_reading_locked();
    }
    size_t sent = 0;
    // Direct send only from other threads: on the io thread (a callback sending the
    // next command) the bytes wait for the flush after the current read batch, so
    // replies handled together produce one write.
    if (!writing_ && out_.empty() && direct_fd_ >= 0 && !on_io_thread()) {
      ssize_t n = ::send(direct_fd_, cmd, static_cast<size_t>(len), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) sent = static_cast<size_t>(n);
    }
    if (sent < static_cast<size_t>(len)) {
      out_.append(cmd + sent, static_cast<size_t>(len) - sent);
      if (!writing_ && !flush_posted_) {
        flush_posted_ = true;
        asio::post(io_, [this, epoch = epoch_] { flush(epoch); });
      }
    }
    lock.unlock();
    redisFreeCommand(cmd);
  }

 private:
  void post_failure(ReplyCallback cb, Status st) {
    if (!cb) return;
    asio::post(io_, [cb = std::move(cb), st = std::move(st)]() mutable { cb(Result<Reply>(std::move(st))); });
  }

  void setup_tls() {
    error_code ec;
    ssl_ctx_.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1);
    if (settings_.tls_insecure) {
      ssl_ctx_.set_verify_mode(asio::ssl::verify_none);
      return;
    }
    ssl_ctx_.set_verify_mode(asio::ssl::verify_peer);
    if (!settings_.tls_ca.empty()) {
      ssl_ctx_.load_verify_file(settings_.tls_ca, ec);
      if (ec) tls_setup_error_ = "cannot load the TLS CA file " + settings_.tls_ca + ": " + ec.message();
    } else {
      ssl_ctx_.set_default_verify_paths(ec);
    }
  }

  // ---- connecting (io thread) -----------------------------------------------------

  void set_state(ConnectionState s, const std::string& error = {}) {
    {
      std::lock_guard lock(mu_);
      state_ = s;
      if (!error.empty()) last_error_ = error;
      if (s == ConnectionState::kConnected) last_error_.clear();
    }
    if (report_state_) metrics_->connection_state.store(static_cast<int>(s));
    state_cv_.notify_all();
  }

  void start_attempt() {
    if (stopping_) return;
    uint64_t epoch;
    {
      std::lock_guard lock(mu_);
      epoch = ++epoch_;
    }
    set_state(ConnectionState::kConnecting);
    if (!tls_setup_error_.empty()) {
      attempt_failed(epoch, tls_setup_error_);
      return;
    }
    if (source_ && settings_.transport != Transport::kUnix) {
      Result<Endpoint> where = source_();
      if (epoch != current_epoch() || stopping_) return;
      if (!where.ok()) return attempt_failed(epoch, where.status().message());
      target_host_ = where->host;
      target_port_ = where->port;
    }
    connect_timer_.expires_after(settings_.connect_timeout);
    connect_timer_.async_wait([this, epoch](error_code ec) {
      if (!ec && epoch == current_epoch() && !handshake_done_) {
        attempt_failed(epoch, "connecting to " + settings_.describe() + " timed out after " +
                                  std::to_string(settings_.connect_timeout.count()) + "ms");
      }
    });
    handshake_done_ = false;
    if (settings_.transport == Transport::kUnix) {
      auto sock = std::make_shared<asio::local::stream_protocol::socket>(io_);
      sock->async_connect(asio::local::stream_protocol::endpoint(settings_.unix_path),
                          [this, epoch, sock](error_code ec) {
                            if (epoch != current_epoch()) return;
                            if (ec) return attempt_failed(epoch, "connect to " + settings_.unix_path + ": " + ec.message());
                            install_stream(epoch, std::make_unique<PlainStream<asio::local::stream_protocol::socket>>(
                                                      std::move(*sock)));
                          });
      return;
    }
    resolver_.async_resolve(target_host_, std::to_string(target_port_),
                            [this, epoch](error_code ec, asio::ip::tcp::resolver::results_type results) {
                              if (epoch != current_epoch()) return;
                              if (ec) return attempt_failed(epoch, "resolve " + target_host_ + ": " + ec.message());
                              connect_tcp(epoch, results);
                            });
  }

  void connect_tcp(uint64_t epoch, const asio::ip::tcp::resolver::results_type& results) {
    auto sock = std::make_shared<asio::ip::tcp::socket>(io_);
    pending_socket_ = sock;
    asio::async_connect(*sock, results, [this, epoch, sock](error_code ec, const asio::ip::tcp::endpoint&) {
      if (epoch != current_epoch()) return;
      pending_socket_.reset();
      std::string where = Endpoint{target_host_, target_port_}.describe();
      if (ec) return attempt_failed(epoch, "connect to " + where + ": " + ec.message());
      error_code ignored;
      sock->set_option(asio::ip::tcp::no_delay(true), ignored);
      sock->set_option(asio::socket_base::keep_alive(true), ignored);
      if (settings_.transport == Transport::kTcp) {
        install_stream(epoch, std::make_unique<PlainStream<asio::ip::tcp::socket>>(std::move(*sock)));
        return;
      }
      auto tls = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(*sock), ssl_ctx_);
      SSL* ssl = tls->native_handle();
      error_code addr_ec;
      (void)asio::ip::make_address(target_host_, addr_ec);
      if (!settings_.tls_insecure) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        if (!addr_ec) {
          X509_VERIFY_PARAM_set1_ip_asc(param, target_host_.c_str());
        } else {
          X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
          X509_VERIFY_PARAM_set1_host(param, target_host_.c_str(), 0);
        }
      }
      if (addr_ec) SSL_set_tlsext_host_name(ssl, target_host_.c_str());
      auto* raw = tls.get();
      auto holder = std::make_shared<std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>>>(std::move(tls));
      pending_tls_ = holder;
      raw->async_handshake(asio::ssl::stream_base::client, [this, epoch, holder, where](error_code ec) {
        if (epoch != current_epoch()) return;
        pending_tls_.reset();
        if (ec) {
          std::string why = ec.message();
          long verify = SSL_get_verify_result((*holder)->native_handle());
          if (verify != X509_V_OK) why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
          return attempt_failed(epoch, "TLS handshake with " + where + " failed: " + why);
        }
        install_stream(epoch, std::make_unique<TlsStream>(std::move(*holder)));
      });
    });
  }

  // The transport is up: read, and run AUTH / SELECT / PING before taking commands.
  void install_stream(uint64_t epoch, std::unique_ptr<Stream> stream) {
    stream_ = std::move(stream);
    {
      std::lock_guard lock(mu_);
      direct_fd_ = stream_->direct_fd();
      caller_runs_ = direct_fd_ >= 0 && !subscriber_;
    }
    last_read_.store(Clock::now().time_since_epoch().count());
    wait_outstanding_ = false;
    if (direct_fd_ >= 0) {
      {
        std::lock_guard lock(mu_);
        read_armed_ = true;
      }
      arm_wait(epoch);
    } else {
      read_loop(epoch);
    }
    auto step_failed = [this, epoch](const std::string& what, const Result<Reply>& r) {
      if (epoch != current_epoch()) return;
      attempt_failed(epoch, what + ": " + describe_reply_error(r));
    };
    if (!settings_.password.empty()) {
      std::vector<std::string_view> auth = {"AUTH"};
      if (!settings_.username.empty()) auth.push_back(settings_.username);
      auth.push_back(settings_.password);
      submit(auth,
             [step_failed](Result<Reply> r) {
               if (!r.ok() || r->is_error()) step_failed("redis refused AUTH", r);
             },
             true);
    }
    if (settings_.db != 0) {
      std::string db = std::to_string(settings_.db);
      submit({"SELECT", db},
             [step_failed](Result<Reply> r) {
               if (!r.ok() || r->is_error()) step_failed("redis refused SELECT", r);
             },
             true);
    }
    submit({"PING"},
           [this, epoch, step_failed](Result<Reply> r) {
             if (epoch != current_epoch()) return;
             if (!r.ok() || r->is_error()) return step_failed("redis did not answer PING", r);
             handshake_done_ = true;
             connect_timer_.cancel();
             attempt_ = 0;
             if (ever_connected_) metrics_->reconnects.fetch_add(1);
             ever_connected_ = true;
             set_state(ConnectionState::kConnected);
             if (subscriber_) {
               for (auto& p : patterns_) submit({"PSUBSCRIBE", p}, nullptr, true);
               for (auto& c : subscriptions()) submit(std::vector<std::string_view>(c.begin(), c.end()), nullptr, true);
             }
           },
           true);
  }

  uint64_t current_epoch() {
    std::lock_guard lock(mu_);
    return epoch_;
  }

  void attempt_failed(uint64_t epoch, const std::string& why) {
    if (epoch != current_epoch()) return;
    fail_connection(why, true);
  }

  // Closes the socket, fails every pending callback, and schedules a reconnect.
  void fail_connection(const std::string& why, bool reconnect) {
    std::deque<Pending> failed;
    bool was_connected;
    {
      std::lock_guard lock(mu_);
      ++epoch_;
      was_connected = state_ == ConnectionState::kConnected;
      failed.swap(pending_);
      out_.clear();
      writing_ = false;
      flush_posted_ = false;
      if (reader_owner_ == ReaderOwner::kCaller) {
        // A blocking caller is reading this socket: wake it (shutdown) but let it
        // finish with the descriptor before the socket is closed and the reader reset.
        if (direct_fd_ >= 0) ::shutdown(direct_fd_, SHUT_RDWR);
        if (stream_) deferred_.push_back(std::move(stream_));
        reader_reset_needed_ = true;
      } else {
        if (stream_) stream_->close();
        redisReaderFree(reader_);
        reader_ = redisReaderCreate();
        reader_owner_ = ReaderOwner::kNone;
      }
      direct_fd_ = -1;
      caller_runs_ = false;
      read_armed_ = false;
    }
    if (pending_socket_) {
      error_code ec;
      pending_socket_->close(ec);
      pending_socket_.reset();
    }
    if (pending_tls_ && *pending_tls_) {
      error_code ec;
      (*pending_tls_)->lowest_layer().close(ec);
      pending_tls_.reset();
    }
    resolver_.cancel();
    connect_timer_.cancel();
    // The closed stream still has handlers queued; keep it alive until they ran.
    // The closed stream may still have handlers queued: keep it until the next failure.
    if (stream_) retired_ = std::move(stream_);
    set_state(ConnectionState::kDisconnected, why);
    Status st = Unavailable((was_connected ? "redis connection lost: " : "redis not connected: ") + why);
    for (auto& p : failed) {
      if (p.abandoned || !p.cb) continue;
      metrics_->count(CommandErrorKind::kDisconnected);
      p.cb(Result<Reply>(st));
    }
    if (reconnect && !stopping_) {
      std::uniform_real_distribution<double> u(0.0, 1.0);
      auto delay = reconnect_delay(attempt_++, settings_.reconnect_min, settings_.reconnect_max, u(rng_));
      reconnect_timer_.expires_after(delay);
      reconnect_timer_.async_wait([this, generation = ++backoff_generation_](error_code ec) {
        if (!ec && generation == backoff_generation_) start_attempt();
      });
    }
  }

  // ---- reading and writing (io thread) --------------------------------------------

  void read_loop(uint64_t epoch) {
    stream_->async_read_some(asio::buffer(read_buf_), [this, epoch](error_code ec, size_t n) {
      if (epoch != current_epoch()) return;
      if (ec) {
        attempt_failed(epoch, ec == asio::error::eof ? "the server closed the connection" : "read: " + ec.message());
        return;
      }
      last_read_.store(Clock::now().time_since_epoch().count());
      if (redisReaderFeed(reader_, read_buf_.data(), n) != REDIS_OK) {
        metrics_->count(CommandErrorKind::kProtocol);
        return attempt_failed(epoch, std::string("protocol error: ") + reader_->errstr);
      }
      for (;;) {
        void* obj = nullptr;
        if (redisReaderGetReply(reader_, &obj) != REDIS_OK) {
          metrics_->count(CommandErrorKind::kProtocol);
          return attempt_failed(epoch, std::string("protocol error: ") + reader_->errstr);
        }
        if (obj == nullptr) break;
        auto* reply = static_cast<redisReply*>(obj);
        dispatch(reply);
        freeReplyObject(reply);
        if (epoch != current_epoch()) return;  // a callback closed the connection
      }
      read_loop(epoch);
    });
  }

  void dispatch(const redisReply* reply) {
    Pending p;
    bool have = false;
    {
      std::lock_guard lock(mu_);
      if (!pending_.empty()) {
        p = std::move(pending_.front());
        pending_.pop_front();
        have = true;
      }
    }
    if (!have) {
      if (subscriber_ && message_handler_ && reply->type == REDIS_REPLY_ARRAY) {
        Reply r = convert(reply);
        if (r.elements.size() == 4 && r.elements[0].str == "pmessage") {
          message_handler_(r.elements[2].str, r.elements[3].str);
        } else if (r.elements.size() == 3 && (r.elements[0].str == "message" || r.elements[0].str == "smessage")) {
          message_handler_(r.elements[1].str, r.elements[2].str);
        }
      }
      return;
    }
    bool readonly = source_ && reply->type == REDIS_REPLY_ERROR &&
                    is_readonly_error(std::string_view(reply->str, reply->len));
    if (readonly) {
      // A demoted master: take no more commands here (a retry must not find this
      // socket "connected"), then reconnect, which asks the source again.
      set_state(ConnectionState::kConnecting, "the server answered READONLY: it is a replica now");
      post_fail(current_epoch(), "the server answered READONLY: it is a replica now");
    }
    if (p.abandoned || !p.cb) return;
    if (reply->type == REDIS_REPLY_ERROR) metrics_->count(CommandErrorKind::kServer);
    p.cb(Result<Reply>(convert(reply)));
  }

  // Plain streams: the io thread reads only while replies are expected (pending_
  // not empty) or pushes may come (subscriber). An idle connection has no wait
  // armed, so a blocking caller that reads its own reply does not wake the io
  // thread as well; the tick notices a server that closed an idle connection.
  //
  // Asio queues a readiness wait without checking the descriptor first, and the
  // reactor is edge-triggered: bytes that arrived before the wait was queued would
  // never complete it. So after queuing, look once (poll with timeout 0) and read
  // now if something is already there.
  void arm_wait(uint64_t epoch) {
    if (!stream_) return;
    if (!wait_outstanding_) {
      wait_outstanding_ = true;
      stream_->async_wait_readable([this, epoch](error_code ec) {
        if (epoch != current_epoch()) return;
        wait_outstanding_ = false;
        if (ec) return;
        on_readable(epoch);
      });
    }
    pollfd pfd{stream_->direct_fd(), POLLIN, 0};
    if (::poll(&pfd, 1, 0) > 0) asio::post(io_, [this, epoch] { on_readable(epoch); });
  }

  // mu_ held: make sure the io thread reads, when it is not already.
  void ensure_reading_locked() {
    if (read_armed_ || direct_fd_ < 0 || reader_owner_ == ReaderOwner::kCaller) return;
    read_armed_ = true;
    asio::post(io_, [this, epoch = epoch_] {
      if (epoch != current_epoch()) return;
      on_readable(epoch);
    });
  }

  // Parses complete replies in the reader and dispatches them. `driver` set: stop
  // before a reply that is not this blocking caller's. False on a protocol error
  // or when a callback closed the connection.
  bool drain(uint64_t epoch, const void* driver, const std::function<bool()>& done) {
    for (;;) {
      if (driver != nullptr) {
        if (done()) return true;
        std::lock_guard lock(mu_);
        if (pending_.empty() || pending_.front().driver != driver) return true;
      }
      void* obj = nullptr;
      if (redisReaderGetReply(reader_, &obj) != REDIS_OK) {
        metrics_->count(CommandErrorKind::kProtocol);
        post_fail(epoch, std::string("protocol error: ") + reader_->errstr);
        return false;
      }
      if (obj == nullptr) return true;
      auto* reply = static_cast<redisReply*>(obj);
      dispatch(reply);
      freeReplyObject(reply);
      if (epoch != current_epoch()) return false;
    }
  }

  void post_fail(uint64_t epoch, std::string why) {
    if (on_io_thread()) return attempt_failed(epoch, why);
    asio::post(io_, [this, epoch, why = std::move(why)] { attempt_failed(epoch, why); });
  }

  // io thread: read what is there (once), unless a blocking caller owns the reader.
  void on_readable(uint64_t epoch) {
    int fd;
    {
      std::lock_guard lock(mu_);
      if (epoch != epoch_) return;
      if (reader_owner_ != ReaderOwner::kNone) {
        read_armed_ = false;  // the caller hands reading back when it lets go
        return;
      }
      reader_owner_ = ReaderOwner::kIo;
      fd = direct_fd_;
    }
    auto release = [this, epoch] {
      std::lock_guard lock(mu_);
      if (epoch == epoch_) reader_owner_ = ReaderOwner::kNone;
    };
    // Keep reading while replies are expected; otherwise go idle.
    auto next = [this, epoch](bool more_now) {
      bool keep;
      {
        std::lock_guard lock(mu_);
        if (epoch != epoch_) return;
        keep = subscriber_ || !pending_.empty();
        read_armed_ = keep;
      }
      if (!keep) return;
      if (more_now) {
        asio::post(io_, [this, epoch] { on_readable(epoch); });
      } else {
        arm_wait(epoch);
      }
    };
    if (!drain(epoch, nullptr, nullptr)) return release();
    ssize_t n = ::recv(fd, read_buf_.data(), read_buf_.size(), MSG_DONTWAIT);
    if (n > 0) {
      last_read_.store(Clock::now().time_since_epoch().count());
      if (redisReaderFeed(reader_, read_buf_.data(), static_cast<size_t>(n)) != REDIS_OK) {
        release();
        return attempt_failed(epoch, std::string("protocol error: ") + reader_->errstr);
      }
      if (!drain(epoch, nullptr, nullptr)) return release();
    }
    release();
    if (n == 0) return attempt_failed(epoch, "the server closed the connection");
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return attempt_failed(epoch, std::string("read: ") + std::strerror(errno));
    }
    // A full buffer: more may be waiting; read again after other handlers had a turn.
    next(n == static_cast<ssize_t>(read_buf_.size()));
  }

 public:
  // A blocking call. On an idle plain connection the calling thread sends the
  // command and reads its reply itself (poll + recv), which saves the two thread
  // wake-ups of handing the reply over from the io thread; otherwise it waits for
  // the io thread like any async caller.
  Result<Reply> run_blocking(const std::function<void(ReplyCallback)>& start) {
    if (on_io_thread()) return FailedPrecondition("a blocking redis call on the connection's own io thread");
    struct Slot {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<Result<Reply>> value;
    };
    auto slot = std::make_shared<Slot>();
    ReplyCallback cb = [slot](Result<Reply> r) {
      std::lock_guard lock(slot->mu);
      slot->value.emplace(std::move(r));
      slot->cv.notify_all();
    };
    int fd = -1;
    uint64_t epoch = 0;
    {
      std::lock_guard lock(mu_);
      if (caller_runs_ && state_ == ConnectionState::kConnected && reader_owner_ == ReaderOwner::kNone &&
          pending_.empty() && out_.empty() && !writing_ && direct_fd_ >= 0) {
        reader_owner_ = ReaderOwner::kCaller;
        fd = direct_fd_;
        epoch = epoch_;
      }
    }
    if (fd >= 0) {
      tls_driving = this;
      start(std::move(cb));
      drive(fd, epoch, *slot);
      tls_driving = nullptr;
      release_reader();
    } else {
      start(std::move(cb));
    }
    std::unique_lock lock(slot->mu);
    slot->cv.wait(lock, [&] { return slot->value.has_value(); });
    return std::move(*slot->value);
  }

 private:
  template <typename Slot>
  void drive(int fd, uint64_t epoch, Slot& slot) {
    auto filled = [&] {
      std::lock_guard lock(slot.mu);
      return slot.value.has_value();
    };
    auto deadline = Clock::now() + settings_.command_timeout;
    for (;;) {
      if (!drain(epoch, this, filled)) return;
      if (filled()) return;
      {
        std::lock_guard lock(mu_);
        if (epoch != epoch_ || pending_.empty() || pending_.front().driver != this) return;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return;  // the io thread's tick fails the command
      pollfd pfd{fd, POLLIN, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 100)));
      if (r < 0 && errno != EINTR) return post_fail(epoch, std::string("poll: ") + std::strerror(errno));
      if (r <= 0) continue;
      ssize_t n = ::recv(fd, read_buf_caller_.data(), read_buf_caller_.size(), MSG_DONTWAIT);
      if (n > 0) {
        last_read_.store(Clock::now().time_since_epoch().count());
        if (redisReaderFeed(reader_, read_buf_caller_.data(), static_cast<size_t>(n)) != REDIS_OK) {
          return post_fail(epoch, std::string("protocol error: ") + reader_->errstr);
        }
      } else if (n == 0) {
        return post_fail(epoch, "the server closed the connection");
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return post_fail(epoch, std::string("read: ") + std::strerror(errno));
      }
    }
  }

  // The blocking caller is done with the socket: hand reading back to the io thread
  // if anything else is waiting, and finish a close that happened meanwhile.
  void release_reader() {
    bool closed = false;
    {
      std::lock_guard lock(mu_);
      reader_owner_ = ReaderOwner::kNone;
      if (reader_reset_needed_) {
        redisReaderFree(reader_);
        reader_ = redisReaderCreate();
        reader_reset_needed_ = false;
        closed = true;
      }
      if (!pending_.empty()) ensure_reading_locked();
    }
    if (closed) asio::post(io_, [this] { deferred_.clear(); });
  }

 private:
  void flush(uint64_t epoch) {
    std::unique_lock lock(mu_);
    flush_posted_ = false;
    if (epoch != epoch_ || writing_ || out_.empty() || !stream_) return;
    write_buf_.swap(out_);
    out_.clear();
    writing_ = true;
    lock.unlock();
    stream_->async_write(asio::buffer(write_buf_), [this, epoch](error_code ec, size_t) {
      if (epoch != current_epoch()) return;
      if (ec) return attempt_failed(epoch, "write: " + ec.message());
      write_buf_.clear();
      {
        std::lock_guard lock(mu_);
        writing_ = false;
      }
      flush(epoch);
    });
  }

  // Every 25ms: fail commands past their deadline; close a connection that has not
  // produced a byte for twice the command timeout while commands wait.
  void tick() {
    if (stopping_) return;
    tick_timer_.expires_after(std::chrono::milliseconds(25));
    tick_timer_.async_wait([this](error_code ec) {
      if (ec || stopping_) return;
      auto now = Clock::now();
      std::vector<ReplyCallback> expired;
      bool dead = false;
      std::string idle_error;
      uint64_t epoch;
      {
        std::lock_guard lock(mu_);
        epoch = epoch_;
        for (auto& p : pending_) {
          if (p.deadline > now) break;
          if (!p.abandoned && p.cb) {
            p.abandoned = true;
            expired.push_back(std::move(p.cb));
          }
        }
        if (pending_.empty() && !read_armed_ && reader_owner_ == ReaderOwner::kNone && direct_fd_ >= 0 &&
            state_ == ConnectionState::kConnected) {
          char c;
          ssize_t n = ::recv(direct_fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            idle_error = n == 0 ? "the server closed the connection" : std::string("read: ") + std::strerror(errno);
          } else if (n > 0) {
            ensure_reading_locked();
          }
        }
        if (!pending_.empty() && state_ == ConnectionState::kConnected &&
            now - Clock::time_point(Clock::duration(last_read_.load())) > 2 * settings_.command_timeout && pending_.front().deadline <= now) {
          dead = true;
        }
      }
      for (auto& cb : expired) {
        metrics_->count(CommandErrorKind::kTimeout);
        cb(Result<Reply>(DeadlineExceeded("redis did not answer within " +
                                          std::to_string(settings_.command_timeout.count()) + "ms")));
      }
      if (!idle_error.empty()) attempt_failed(epoch, idle_error);
      else if (dead) attempt_failed(epoch, "no reply for " + std::to_string(2 * settings_.command_timeout.count()) + "ms");
      tick();
    });
  }

  RedisSettings settings_;
  EndpointSource source_;
  std::string target_host_;  // io thread: where this attempt connects (settings_ or the source)
  uint16_t target_port_;
  CoordMetrics* metrics_;
  bool report_state_;
  bool subscriber_;
  std::vector<std::string> patterns_;
  MessageHandler message_handler_;

  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  asio::ssl::context ssl_ctx_;
  std::string tls_setup_error_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer connect_timer_;
  asio::steady_timer reconnect_timer_;
  asio::steady_timer tick_timer_;
  std::thread thread_;
  std::atomic<bool> io_thread_known_{false};
  std::thread::id io_thread_id_;
  std::mt19937_64 rng_;

  // io thread only
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<Stream> retired_;
  std::shared_ptr<asio::ip::tcp::socket> pending_socket_;
  std::shared_ptr<std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>>> pending_tls_;
  redisReader* reader_ = nullptr;
  std::array<char, 64 * 1024> read_buf_{};
  std::array<char, 64 * 1024> read_buf_caller_{};  // used by the caller that owns the reader
  std::string write_buf_;
  int attempt_ = 0;
  uint64_t backoff_generation_ = 0;  // io thread: a backoff wait cut short by reconnect() does not start twice
  bool handshake_done_ = false;
  bool ever_connected_ = false;
  bool stopping_ = false;

  // guarded by mu_
  mutable std::mutex mu_;
  std::condition_variable state_cv_;
  ConnectionState state_ = ConnectionState::kDisconnected;
  std::string last_error_;
  uint64_t epoch_ = 0;
  std::string out_;
  std::deque<Pending> pending_;
  std::vector<std::vector<std::string>> subscriptions_;  // subscriber: sent after each connect
  bool writing_ = false;
  bool flush_posted_ = false;
  int direct_fd_ = -1;
  std::atomic<Clock::rep> last_read_{0};
  // Caller-driven reads (plain streams): see run_blocking().
  bool caller_runs_ = false;
  ReaderOwner reader_owner_ = ReaderOwner::kNone;
  bool read_armed_ = false;      // the io thread reads (or will) until pending_ drains
  bool wait_outstanding_ = false;  // io thread: a readiness wait is queued
  bool reader_reset_needed_ = false;
  std::vector<std::unique_ptr<Stream>> deferred_;  // io thread; closed after the caller let go
};

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::~Connection() = default;

std::unique_ptr<Connection> Connection::create(RedisSettings settings, CoordMetrics* metrics, bool report_state,
                                               EndpointSource source) {
  return std::unique_ptr<Connection>(
      new Connection(std::make_unique<Impl>(std::move(settings), metrics, report_state, false,
                                            std::vector<std::string>{}, MessageHandler{}, std::move(source))));
}

std::unique_ptr<Connection> Connection::create_subscriber(RedisSettings settings, std::vector<std::string> patterns,
                                                          MessageHandler handler, CoordMetrics* metrics,
                                                          EndpointSource source) {
  return std::unique_ptr<Connection>(new Connection(std::make_unique<Impl>(
      std::move(settings), metrics, false, true, std::move(patterns), std::move(handler), std::move(source))));
}

void Connection::reconnect(const std::string& why) { impl_->reconnect(why); }
void Connection::subscribe(std::vector<std::string> command) { impl_->subscribe(std::move(command)); }

Status Connection::wait_connected(std::chrono::milliseconds timeout) { return impl_->wait_connected(timeout); }
bool Connection::connected() const { return impl_->state() == ConnectionState::kConnected; }
ConnectionState Connection::state() const { return impl_->state(); }
std::string Connection::last_error() const { return impl_->last_error(); }
const RedisSettings& Connection::settings() const { return impl_->settings(); }
bool Connection::on_io_thread() const { return impl_->on_io_thread(); }

void Connection::async_command(const std::vector<std::string_view>& args, ReplyCallback cb) {
  impl_->submit(args, std::move(cb));
}

void Connection::async_eval(const Script& script, const std::vector<std::string_view>& keys,
                            const std::vector<std::string_view>& args, ReplyCallback cb) {
  std::string nkeys = std::to_string(keys.size());
  std::vector<std::string_view> cmd;
  cmd.reserve(3 + keys.size() + args.size());
  cmd.push_back("EVALSHA");
  cmd.push_back(script.sha1());
  cmd.push_back(nkeys);
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  // On NOSCRIPT, the same command with EVAL and the source; owned copies because
  // the retry runs after the caller's views are gone.
  auto retry = [this, source = &script.source(), owned = std::vector<std::string>(cmd.begin(), cmd.end()),
                cb = std::move(cb)](Result<Reply> r) mutable {
    if (r.ok() && r->is_error() && r->str.rfind("NOSCRIPT", 0) == 0) {
      std::vector<std::string_view> again(owned.begin(), owned.end());
      again[0] = "EVAL";
      again[1] = *source;
      impl_->submit(again, std::move(cb));
      return;
    }
    cb(std::move(r));
  };
  impl_->submit(cmd, std::move(retry));
}


Result<Reply> Connection::command(const std::vector<std::string_view>& args) {
  return impl_->run_blocking([&](ReplyCallback cb) { async_command(args, std::move(cb)); });
}

Result<Reply> Connection::eval(const Script& script, const std::vector<std::string_view>& keys,
                               const std::vector<std::string_view>& args) {
  return impl_->run_blocking([&](ReplyCallback cb) { async_eval(script, keys, args, std::move(cb)); });
}

}  // namespace memgate::coord
