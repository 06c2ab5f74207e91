#include "memgate/http/io_thread.h"

#include <sys/socket.h>

#include <algorithm>
#include <ctime>

#include "memgate/http/session.h"

namespace memgate::http::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::string format_endpoint(const tcp::endpoint& ep) {
  std::string addr = ep.address().to_string();
  std::string out = ep.address().is_v6() ? "[" + addr + "]:" : addr + ":";
  out += std::to_string(ep.port());
  return out;
}

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
      heartbeat_timer_(*ctx_),
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
  if (options_.heartbeat && options_.heartbeat_period.count() > 0) arm_heartbeat();
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

void IoThread::arm_heartbeat() {
  heartbeat_timer_.expires_after(options_.heartbeat_period);
  heartbeat_timer_.async_wait([this](error_code ec) {
    if (ec || forced_) return;
    options_.heartbeat();
    arm_heartbeat();
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
  heartbeat_timer_.cancel();
  for (Session* s = head_; s != nullptr; s = s->next_) s->close();
}

}  // namespace memgate::http::detail
