// The wiring of a memgate process. Everything here is glue: each part lives in
// its own folder and knows nothing of the others; App builds them in order,
// registers the core routes, and tears them down in reverse.
//
// Two listeners: the public one serves the API and the three probes (/healthz,
// /readyz, /startupz); the admin one serves what must not be public (metrics,
// memory details, later heap profiles). The admin listener binds loopback by
// default and, when ADMIN_TOKEN is set, requires it as a bearer token.
#include "memgate/server/app.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <csignal>
#include <thread>

#include "memgate/base/units.h"
#include "memgate/http/server.h"
#include "memgate/memory/allocator.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/server/admin_metrics.h"
#include "memgate/server/memory_json.h"

namespace memgate::server {

namespace json = boost::json;
using http::Method;
using http::Request;
using http::Response;

struct App::Impl {
  explicit Impl(Config c) : config(std::move(c)), workers(static_cast<size_t>(config.worker_threads)) {}

  Config config;
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
  memory::SystemMemoryProbe probe;
  boost::asio::thread_pool workers;
  std::unique_ptr<http::Server> public_server;
  std::unique_ptr<http::Server> admin_server;
  std::unique_ptr<AdminMetrics> metrics;
  bool started = false;
  bool stopped = false;

  http::ServerOptions listener_options(const std::string& host, uint16_t port, int threads) const {
    http::ServerOptions o;
    o.host = host;
    o.port = port;
    o.io_threads = threads;
    o.header_limit = config.http_header_limit;
    o.body_limit = config.http_body_limit;
    o.read_timeout = config.http_read_timeout;
    o.idle_timeout = config.http_idle_timeout;
    o.request_stats = config.request_metrics;
    return o;
  }

  // Admin routes require the token when one is configured.
  bool authorized(const Request& req) const {
    if (config.admin_token.empty()) return true;
    return req.header("authorization") == "Bearer " + config.admin_token;
  }
  template <typename F>
  http::SyncHandler admin(F f) {
    return [this, f = std::move(f)](const Request& req) -> Response {
      if (!authorized(req))
        return Response::error(401, "unauthorized", "this admin route needs Authorization: Bearer <ADMIN_TOKEN>")
            .header("WWW-Authenticate", "Bearer");
      return f(req);
    };
  }

  void register_public_routes(http::Router& r) {
    // Prepared once: the probe answers with the same bytes every time.
    const Response healthz = Response::json(200, R"({"status":"ok"})");
    (void)r.add(Method::kGet, "/healthz", [healthz](const Request&) { return healthz; });
    (void)r.add(Method::kGet, "/readyz", [](const Request&) {
      // No module exists yet, so nothing can be missing.
      return Response::json(200, json::serialize(json::object{{"ready", true}, {"missing", json::array{}}}));
    });
    (void)r.add(Method::kGet, "/startupz", [this](const Request&) {
      json::object doc{{"instance", config.instance_id},
                       {"started_at_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                             started_at.time_since_epoch())
                                             .count()},
                       {"finished", true},
                       {"stages", json::array{}},
                       {"modules", json::array{}}};
      return Response::json(200, json::serialize(doc));
    });
    if (config.test_routes) register_test_routes(r);
  }

  // Routes that exist only for the integration tests (MEMGATE_TEST_ROUTES=1).
  void register_test_routes(http::Router& r) {
    (void)r.add(Method::kGet, "/test/sleep", [this](const Request& req, http::Responder responder) {
      int ms = 100;
      auto param = req.query_param("ms");
      if (!param.empty()) {
        auto v = parse_int(param, 0, 60'000);
        if (!v) {
          std::move(responder).send(Response::error(400, "ms must be a whole number from 0 to 60000"));
          return;
        }
        ms = static_cast<int>(*v);
      }
      spdlog::info("test sleep started ({} ms)", ms);
      boost::asio::post(workers, [ms, responder = std::move(responder)]() mutable {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));  // the point of this route
        std::move(responder).send(Response::json(200, R"({"slept_ms":)" + std::to_string(ms) + "}"));
      });
    });
  }

  void register_admin_routes(http::Router& r) {
    (void)r.add(Method::kGet, "/healthz", [](const Request&) { return Response::json(200, R"({"status":"ok"})"); });
    (void)r.add(Method::kGet, "/metrics", admin([this](const Request&) {
                  Response res;
                  res.status = 200;
                  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
                  res.body = metrics->serialize();
                  return res;
                }));
    (void)r.add(Method::kGet, "/debug/memory", admin([this](const Request&) {
                  memory::MemorySample s = probe.sample();
                  json::object doc = memory_sample_json(s);
                  uint64_t container = s.cgroup.limit.value_or(0);
                  uint64_t limit_base = container ? container : config.memory_limit.resolve(0);
                  doc["instance"] = config.instance_id;
                  doc["limits"] = json::object{
                      {"memory_limit", config.memory_limit.resolve(container ? container : 0)},
                      {"heap_alert_threshold", config.heap_alert_threshold.resolve(limit_base)},
                      {"scheduler_heap_gate", config.scheduler_heap_gate.resolve(limit_base)},
                      {"kb_heap_gate", config.kb_heap_gate.resolve(limit_base)},
                  };
                  return Response::json(200, json::serialize(doc));
                }));
  }

  Status start() {
    memory::set_background_purge(true);
    public_server = std::make_unique<http::Server>(listener_options(config.host, config.port, config.io_threads));
    admin_server = std::make_unique<http::Server>(listener_options(config.admin_host, config.admin_port, 1));
    metrics = std::make_unique<AdminMetrics>(probe, *public_server);
    register_public_routes(public_server->router());
    register_admin_routes(admin_server->router());

    if (Status s = public_server->start(); !s.ok())
      return Status(s.code(), "public listener " + config.host + ":" + std::to_string(config.port) + ": " + s.message());
    if (Status s = admin_server->start(); !s.ok()) {
      public_server->stop(std::chrono::milliseconds(0));
      return Status(s.code(), "admin listener " + config.admin_host + ":" + std::to_string(config.admin_port) + ": " +
                                  s.message());
    }
    started = true;
    spdlog::info("memgate {} listening on http://{}:{} (admin http://{}:{}), {} io thread(s), {} worker(s)",
                 config.instance_id, config.host, public_server->port(), config.admin_host, admin_server->port(),
                 config.io_threads, config.worker_threads);
    if (config.redis_url.empty())
      spdlog::warn("REDIS_URL is unset: coordination is local to this host (single instance)");
    spdlog::info("try: curl http://{}:{}/readyz ; curl http://{}:{}/metrics", config.host, public_server->port(),
                 config.admin_host, admin_server->port());
    return Status::Ok();
  }

  void stop() {
    if (!started || stopped) return;
    stopped = true;
    spdlog::info("stopping: finishing requests in flight (up to {})", format_duration(config.shutdown_timeout));
    auto begin = std::chrono::steady_clock::now();
    public_server->stop(config.shutdown_timeout);
    admin_server->stop(std::chrono::milliseconds(500));
    workers.join();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - begin);
    spdlog::info("stopped in {} ms", took.count());
  }
};

App::App(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}
App::~App() { impl_->stop(); }

Status App::start() { return impl_->start(); }
void App::stop() { impl_->stop(); }
uint16_t App::port() const { return impl_->public_server ? impl_->public_server->port() : 0; }
uint16_t App::admin_port() const { return impl_->admin_server ? impl_->admin_server->port() : 0; }

int App::run() {
  // Block the stop signals in every thread the servers start; the main thread
  // waits for them below.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (Status s = start(); !s.ok()) {
    spdlog::error("memgate cannot start: {}", s.to_string());
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("received {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  stop();
  return 0;
}

}  // namespace memgate::server
