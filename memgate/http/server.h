// Server: memgate's HTTP/1.1 listener (Boost.Beast underneath, not in this header).
//
// Each of io_threads threads runs its own io_context (concurrency hint 1) with
// its own SO_REUSEPORT listener on the same port, so connections are spread by the
// kernel and a connection lives on one thread for its whole life. Before the
// listeners bind, a probe socket binds the port without SO_REUSEPORT: if another
// process (or another Server) holds the port, start() fails with
// FailedPrecondition "address in use" instead of silently sharing it.
//
// Connections are keep-alive with TCP_NODELAY. Limits: a header larger than
// header_limit -> 431; a body larger than body_limit -> 413; a request not complete
// within read_timeout of its first byte -> 408; a malformed request -> 400. Each of
// those closes the connection after the response. An idle keep-alive connection
// is closed silently after idle_timeout. Timeouts are enforced by one sweep per
// thread (no timer per operation), so they fire up to a sweep period (about an
// eighth of the shorter timeout, 5..250 ms) late.
//
// Thread-safety: start(), stop() and join() are for the owning thread; router(),
// port(), stats() and connection_stats() are safe from any thread once started.
// The Server must outlive every Responder it handed out only in the sense that
// completing one afterwards is a harmless no-op.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/http/router.h"
#include "memgate/http/stats.h"

namespace memgate::http {

// Switches the memory guard flips while the server runs. Shared by every IO
// thread; read with one relaxed load per request.
struct ServerControls {
  std::atomic<int> shed_level{0};               // routes with 0 < shed_priority <= level answer 503
  std::atomic<bool> keepalive_disabled{false};  // every response closes its connection
  std::atomic<uint64_t> shed_requests{0};       // requests answered 503 by shedding
};

struct ServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 0;  // 0: pick a free port; port() tells which
  int io_threads = 1;
  size_t header_limit = 16 * 1024;
  size_t body_limit = 1024 * 1024;
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::string server_name = "memgate";
  bool request_stats = true;  // per-route counters and latency histograms
  // Open connections at most (0: no cap), shared out among the IO threads. At
  // the cap the oldest idle keep-alive connection is closed to make room; when
  // none is idle, the new connection gets a 503 and is closed.
  size_t max_connections = 0;
  // Called on the first IO thread every heartbeat_period while that thread
  // serves (not after stop() began forcing connections closed), so a missed
  // heartbeat means the IO loop stopped turning: what a watchdog wants to know
  // (systemd's WATCHDOG=1). 0 or no function: none. Must not block.
  std::chrono::milliseconds heartbeat_period{0};
  std::function<void()> heartbeat{};
};

namespace detail {
class IoThread;
}

class Server {
 public:
  // The router may be shared (routes registered before the server exists); a
  // new one is made when none is given.
  explicit Server(ServerOptions options, std::shared_ptr<Router> router = nullptr);
  // Stops (deadline 0) if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Router& router() { return *router_; }
  const std::shared_ptr<Router>& shared_router() const { return router_; }

  // Installs the per-request hook (nullptr: none). Call before start(); the
  // observer must outlive the server.
  void set_observer(RequestObserver* observer) { observer_ = observer; }

  // Binds, listens and starts the IO threads. Fails with InvalidArgument (bad
  // host or options), FailedPrecondition (port in use) or Internal (other socket
  // errors); on failure nothing is left running. Call once.
  Status start();

  // The bound port (the real one when options.port was 0); 0 before start().
  uint16_t port() const { return port_.load(std::memory_order_acquire); }

  // Stops accepting, closes idle keep-alive connections, lets requests in flight
  // (being read, handled or written, including open streams) finish until the
  // deadline, then closes whatever is left, stops the threads and returns.
  // Responses written during the stop carry "Connection: close". Idempotent.
  void stop(std::chrono::milliseconds deadline);

  // Blocks until the server has stopped (stop() called from another thread).
  void join();

  bool running() const { return running_.load(std::memory_order_acquire); }

  // Per (route pattern, method, status) counters summed over threads. Rows with
  // count 0 are omitted. Safe from any thread, cheap enough for every scrape.
  std::vector<RouteStats> stats() const;
  ConnectionStats connection_stats() const;

  // Requests to routes whose shed priority (Router::set_shed_priority) is at
  // most `level` get 503 with Retry-After and never reach their handler; 0 sheds
  // nothing, 1 the routes to shed first, 2 every heavy route. Any thread.
  void set_shed_level(int level) { controls_->shed_level.store(level, std::memory_order_relaxed); }
  void set_shedding(bool on) { set_shed_level(on ? 2 : 0); }
  // While on, every response carries "Connection: close". Any thread.
  void set_keepalive_disabled(bool on) { controls_->keepalive_disabled.store(on, std::memory_order_relaxed); }
  bool shedding() const { return controls_->shed_level.load(std::memory_order_relaxed) > 0; }
  int shed_level() const { return controls_->shed_level.load(std::memory_order_relaxed); }
  bool keepalive_disabled() const { return controls_->keepalive_disabled.load(std::memory_order_relaxed); }
  uint64_t shed_requests() const { return controls_->shed_requests.load(std::memory_order_relaxed); }

 private:
  ServerOptions options_;
  std::shared_ptr<Router> router_;
  RequestObserver* observer_ = nullptr;
  std::shared_ptr<ServerControls> controls_ = std::make_shared<ServerControls>();
  std::vector<std::unique_ptr<detail::IoThread>> threads_;
  std::atomic<uint16_t> port_{0};
  std::atomic<bool> running_{false};
  std::mutex stop_mu_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false;
  bool started_ = false;
};

// Blocks the calling thread until SIGINT or SIGTERM, then calls
// server.stop(deadline). Returns the signal number that arrived.
int stop_on_signal(Server& server, std::chrono::milliseconds deadline);

}  // namespace memgate::http
