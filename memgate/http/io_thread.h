// IoThread: one IO thread of the Server: its io_context, its SO_REUSEPORT
// listener, the connections it accepted, its counters and its sweep.
//
// Internal to http/. Everything here runs on the thread itself (posted there
// by the Server) except live(), wait_exit(), hard_stop() and join(), which the
// Server calls from its own thread, and stats(), read from any thread.
//
// Accepting. Each accepted socket becomes a Session on this thread for its
// whole life. With a connection cap (ServerOptions::max_connections shared out
// among the threads), a new connection at the cap first closes the oldest idle
// keep-alive connection (make_room); with none idle it gets a fixed 503 with
// Retry-After and is closed before anything is allocated for it. Accept errors
// (EMFILE and friends) back off 20 ms instead of spinning.
//
// Time. One sweep timer per thread (every 1/8 of the shorter of read_timeout
// and idle_timeout, clamped to 5..250 ms) refreshes the Date header and asks
// each session to act on its deadline: no timer per operation.
//
// Heartbeat. With ServerOptions::heartbeat set, a timer of its own calls it
// every heartbeat_period on this thread (the Server gives it to the first
// thread only), until force_stop().
//
// Stop. begin_stop() closes the listener and tells sessions to close after
// their response (idle ones at once); force_stop() closes everything; on_drained
// fires when a stopping thread has no connection left.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "memgate/base/status.h"
#include "memgate/http/router.h"
#include "memgate/http/server.h"
#include "memgate/http/thread_stats.h"

namespace memgate::http::detail {

class Session;

// "1.2.3.4:80" or "[::1]:80".
std::string format_endpoint(const boost::asio::ip::tcp::endpoint& ep);

class IoThread {
 public:
  IoThread(const ServerOptions& options, std::shared_ptr<Router> router, RequestObserver* observer,
           uint64_t id_seed, std::shared_ptr<ServerControls> controls);
  // Joins the thread and deletes the sessions left.
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  // Opens, binds and listens (SO_REUSEPORT). FailedPrecondition when the port
  // is taken, Internal for other socket errors. Before run_in_thread().
  Status listen(const boost::asio::ip::tcp::endpoint& endpoint);
  // Starts accepting and the sweep, and runs the io_context on a new thread.
  void run_in_thread();
  void begin_stop();  // posted: stop accepting, close idle connections
  void force_stop();  // posted: close everything, let run() return
  // True once run() has returned, within `timeout`.
  bool wait_exit(std::chrono::milliseconds timeout);
  void hard_stop() { ctx_->stop(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // Sessions not yet removed (closing ones included). Any thread.
  size_t live() const { return live_.load(std::memory_order_acquire); }

  // --- for sessions, on this thread ---
  boost::asio::io_context& ctx() { return *ctx_; }
  const std::shared_ptr<boost::asio::io_context>& shared_ctx() const { return ctx_; }
  const ServerOptions& options() const { return options_; }
  // "Server: <name>\r\nDate: <http-date>\r\n", refreshed once a second.
  std::string_view common_headers() const { return common_headers_; }
  bool stopping() const { return stopping_; }
  ThreadStats& stats() { return stats_; }
  const ThreadStats& stats() const { return stats_; }
  RequestObserver* observer() const { return observer_; }
  ServerControls& controls() { return *controls_; }
  // The router's current table; re-snapshotted only when the router changed.
  const RouteTable& routes() {
    uint64_t v = router_->version();
    if (v != table_version_) table_ = router_->snapshot(&table_version_);
    return *table_;
  }
  uint64_t next_serial() { return ++serial_; }
  uint64_t id_seed() const { return id_seed_; }
  // Unlinks and deletes a session with no operation outstanding.
  void remove(Session* s);

  // Set by the server to hear when a stopping thread has no connections left.
  std::function<void()> on_drained;

 private:
  void accept();
  // Closes the oldest idle connection when at the cap; false when none can go.
  bool make_room();
  void sweep();
  void refresh_date();
  void arm_sweep();
  void arm_heartbeat();

  ServerOptions options_;
  std::shared_ptr<Router> router_;
  RequestObserver* observer_;
  std::shared_ptr<ServerControls> controls_;
  std::shared_ptr<boost::asio::io_context> ctx_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer sweep_timer_;
  boost::asio::steady_timer accept_retry_;
  boost::asio::steady_timer heartbeat_timer_;
  std::chrono::milliseconds sweep_period_;
  std::thread thread_;
  std::mutex exit_mu_;
  std::condition_variable exit_cv_;
  bool exited_ = false;

  std::shared_ptr<const RouteTable> table_;
  uint64_t table_version_ = 0;
  Session* head_ = nullptr;  // intrusive list of sessions, newest first
  std::atomic<size_t> live_{0};
  size_t cap_ = 0;  // this thread's share of ServerOptions::max_connections; 0: none
  bool stopping_ = false;
  bool forced_ = false;
  std::string common_headers_;
  time_t date_second_ = -1;
  uint64_t serial_ = 0;
  uint64_t id_seed_;
  ThreadStats stats_;
};

}  // namespace memgate::http::detail
