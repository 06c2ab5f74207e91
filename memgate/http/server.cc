// Server (server.h): validates its options, probes the port, starts one
// IoThread per io_threads (io_thread.h: listener, connections, sweep; each
// connection a Session, session.h), stops them within a deadline, and sums
// their counters.
#include "memgate/http/server.h"

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <random>
#include <tuple>

#include "memgate/http/io_thread.h"

namespace memgate::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

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
    ServerOptions thread_options = options_;
    if (i > 0) thread_options.heartbeat = nullptr;  // one heartbeat per server, on the first thread
    auto t = std::make_unique<detail::IoThread>(thread_options, router_, observer_, seed, controls_);
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
    s.stream_drops += ts.stream_drops.load(std::memory_order_relaxed);
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
