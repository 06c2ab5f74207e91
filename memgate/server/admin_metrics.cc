#include "memgate/server/admin_metrics.h"

#include "memgate/base/worker_pool.h"

#include <prometheus/collectable.h>

#include <spdlog/spdlog.h>

#include <array>
#include <functional>
#include <span>

#include "memgate/coord/coordinator.h"
#include "memgate/guard/memory_guard.h"
#include "memgate/memory/route_accounting.h"
#include "memgate/http/stats.h"
#include "memgate/jobs/scheduler.h"
#include "memgate/startup/loader.h"
#include "memgate/metrics/families.h"
#include "memgate/metrics/memory_collector.h"
#include "memgate/metrics/process_collector.h"

namespace memgate::server {
namespace {

// A Collectable that builds its families from plain figures at scrape time.
class CallbackCollector final : public prometheus::Collectable {
 public:
  explicit CallbackCollector(std::function<std::vector<prometheus::MetricFamily>()> f) : f_(std::move(f)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return f_(); }

 private:
  std::function<std::vector<prometheus::MetricFamily>()> f_;
};

// Cumulative bucket counts ("<= bound", as http and coord keep them) to the
// per-bucket counts plus the overflow bucket that metrics::add_histogram takes.
template <size_t N>
std::array<uint64_t, N + 1> per_bucket_counts(const std::array<uint64_t, N>& cumulative, uint64_t total) {
  std::array<uint64_t, N + 1> out{};
  uint64_t below = 0;
  for (size_t i = 0; i < N; ++i) {
    out[i] = cumulative[i] - below;
    below = cumulative[i];
  }
  out[N] = total - below;
  return out;
}

std::vector<prometheus::MetricFamily> http_families(const http::Server& server) {
  auto requests = metrics::counter_family("memgate_http_requests_total", "HTTP requests answered, by route pattern, method and status");
  auto latency = metrics::histogram_family(
      "memgate_http_request_duration_seconds",
      "Time from a complete request to its response handed to the kernel, by route pattern, method and status");
  for (const http::RouteStats& row : server.stats()) {
    metrics::Labels labels{{"route", row.route}, {"method", row.method}, {"status", std::to_string(row.status)}};
    metrics::add_counter(requests, static_cast<double>(row.count), labels);
    // http keeps cumulative buckets; the family helper takes per-bucket counts.
    auto per_bucket = per_bucket_counts(row.bucket_counts, row.count);
    Status st = metrics::add_histogram(latency, std::span<const double>(http::kLatencyBucketBounds),
                                       std::span<const uint64_t>(per_bucket), row.latency_sum_seconds, labels);
    if (!st.ok()) spdlog::warn("latency histogram for {} not exported: {}", row.route, st.to_string());
  }
  http::ConnectionStats c = server.connection_stats();
  auto accepted = metrics::counter_family("memgate_http_connections_accepted_total", "Connections accepted");
  metrics::add_counter(accepted, static_cast<double>(c.accepted));
  auto open = metrics::gauge_family("memgate_http_connections_open", "Connections open now");
  metrics::add_gauge(open, static_cast<double>(c.open));
  auto closes = metrics::counter_family("memgate_http_connections_closed_total",
                                        "Connections the server closed, by reason");
  metrics::add_counter(closes, static_cast<double>(c.read_timeouts), {{"reason", "read_timeout"}});
  metrics::add_counter(closes, static_cast<double>(c.idle_closes), {{"reason", "idle"}});
  metrics::add_counter(closes, static_cast<double>(c.bad_requests), {{"reason", "bad_request"}});
  metrics::add_counter(closes, static_cast<double>(c.refused), {{"reason", "refused_at_cap"}});
  metrics::add_counter(closes, static_cast<double>(c.evicted), {{"reason", "evicted_idle_at_cap"}});
  metrics::add_counter(closes, static_cast<double>(c.stream_drops), {{"reason", "stream_dropped"}});
  auto aborts = metrics::counter_family("memgate_http_client_aborts_total",
                                        "Requests whose client went away before the response was complete "
                                        "(counted as status 499 when no response had begun)");
  metrics::add_counter(aborts, static_cast<double>(c.client_aborts));
  std::vector<prometheus::MetricFamily> out;
  out.push_back(std::move(requests));
  out.push_back(std::move(latency));
  out.push_back(std::move(accepted));
  out.push_back(std::move(open));
  out.push_back(std::move(closes));
  out.push_back(std::move(aborts));
  return out;
}

}  // namespace

AdminMetrics::AdminMetrics(memory::MemoryProbe& probe, const http::Server& public_server) : server_(&public_server) {
  metrics_.own_collectable(metrics::make_process_collector());
  metrics_.own_collectable(metrics::make_memory_collector(probe));
  metrics_.own_collectable(std::make_shared<CallbackCollector>([&public_server] { return http_families(public_server); }));
}

AdminMetrics::~AdminMetrics() = default;

namespace {

void add_coord_histogram(prometheus::MetricFamily& family, const coord::HistogramSnapshot& h) {
  auto per_bucket = per_bucket_counts(h.cumulative, h.count);
  (void)metrics::add_histogram(family, std::span<const double>(coord::kHistogramBounds),
                               std::span<const uint64_t>(per_bucket), h.sum_seconds);
}

}  // namespace

void AdminMetrics::add_coordination(coord::Coordinator& coordinator, bool redis_configured) {
  coord::CoordMetrics* m = &coordinator.metrics();
  metrics_.own_collectable(std::make_shared<CallbackCollector>([m, redis_configured] {
    std::vector<prometheus::MetricFamily> out;
    auto configured = metrics::gauge_family("memgate_coord_redis_configured", "1 when REDIS_URL is set (Redis coordination wanted)");
    metrics::add_gauge(configured, redis_configured ? 1 : 0);
    out.push_back(std::move(configured));
    auto backend = metrics::gauge_family("memgate_coord_backend", "Coordination backend in use (1 for the active one)");
    int b = m->backend.load();
    metrics::add_gauge(backend, b == 0 ? 1 : 0, {{"backend", "local"}});
    metrics::add_gauge(backend, b == 1 ? 1 : 0, {{"backend", "redis"}});
    out.push_back(std::move(backend));
    auto state = metrics::gauge_family("memgate_coord_redis_connection_state",
                                       "Redis connection: 0 disconnected, 1 connecting, 2 connected");
    metrics::add_gauge(state, m->connection_state.load());
    out.push_back(std::move(state));
    // A counter family of one series.
    auto one_counter = [&out](std::string name, std::string help, uint64_t value) {
      auto family = metrics::counter_family(std::move(name), std::move(help));
      metrics::add_counter(family, static_cast<double>(value));
      out.push_back(std::move(family));
    };
    one_counter("memgate_coord_redis_reconnects_total", "Redis connections made after the first", m->reconnects.load());
    auto wait = metrics::histogram_family("memgate_coord_lock_acquire_wait_seconds",
                                          "Time from acquire() to a lease or giving up");
    add_coord_histogram(wait, m->acquire_wait.snapshot());
    out.push_back(std::move(wait));
    auto hold = metrics::histogram_family("memgate_coord_lock_hold_seconds", "Time a lease was held");
    add_coord_histogram(hold, m->hold_time.snapshot());
    out.push_back(std::move(hold));
    auto lag =
        metrics::histogram_family("memgate_coord_lock_extension_lag_seconds", "How late a watchdog extension ran");
    add_coord_histogram(lag, m->extension_lag.snapshot());
    out.push_back(std::move(lag));
    one_counter("memgate_coord_lock_lost_total", "Leases lost while their holder worked", m->lost_leases.load());
    auto fleet = metrics::counter_family("memgate_coord_fleet_once_total", "How fleet_once calls ended, by outcome");
    for (size_t i = 0; i < coord::kFleetOutcomeCount; ++i) {
      auto o = static_cast<coord::FleetOutcome>(i);
      if (o == coord::FleetOutcome::kLocal) continue;  // the loader's, never fleet_once's
      metrics::add_counter(fleet, static_cast<double>(m->outcomes(o)),
                           {{"outcome", std::string(coord::fleet_outcome_name(o))}});
    }
    out.push_back(std::move(fleet));
    auto errors = metrics::counter_family("memgate_coord_redis_command_errors_total", "Redis command errors, by kind");
    for (size_t i = 0; i < coord::kCommandErrorKindCount; ++i) {
      auto k = static_cast<coord::CommandErrorKind>(i);
      metrics::add_counter(errors, static_cast<double>(m->errors(k)),
                           {{"kind", std::string(coord::command_error_kind_name(k))}});
    }
    out.push_back(std::move(errors));
    one_counter("memgate_coord_redis_failover_retries_total", "Redis operations sent again after a failover (Sentinel)",
                m->failover_retries.load());
    one_counter("memgate_coord_redis_sentinel_failovers_total",
                "Times the master Sentinel names moved to another address", m->sentinel_failovers.load());
    one_counter("memgate_coord_redis_sentinel_resolution_errors_total",
                "Sentinel resolutions that found no confirmed master", m->sentinel_resolution_errors.load());
    one_counter("memgate_coord_redis_unreplicated_writes_total",
                "Locks and publishes fewer replicas acknowledged than REDIS_WAIT_REPLICAS",
                m->unreplicated_writes.load());
    // Redis Cluster: redirects followed, slot maps installed, retries, and the
    // map itself (each master and how many slots it holds).
    auto redirects = metrics::counter_family("memgate_coord_cluster_redirects_total",
                                             "Redis Cluster redirects followed, by kind (moved, ask)");
    metrics::add_counter(redirects, static_cast<double>(m->cluster_redirects_moved.load()), {{"kind", "moved"}});
    metrics::add_counter(redirects, static_cast<double>(m->cluster_redirects_ask.load()), {{"kind", "ask"}});
    out.push_back(std::move(redirects));
    one_counter("memgate_coord_cluster_slot_map_refreshes_total", "Redis Cluster slot maps read and installed",
                m->cluster_slot_map_refreshes.load());
    auto cluster_retries = metrics::counter_family(
        "memgate_coord_cluster_retries_total", "Redis Cluster commands sent again, by reason (tryagain, clusterdown)");
    metrics::add_counter(cluster_retries, static_cast<double>(m->cluster_retries_tryagain.load()),
                         {{"reason", "tryagain"}});
    metrics::add_counter(cluster_retries, static_cast<double>(m->cluster_retries_clusterdown.load()),
                         {{"reason", "clusterdown"}});
    out.push_back(std::move(cluster_retries));
    if (auto nodes = m->cluster_nodes(); !nodes.empty()) {
      auto slots = metrics::gauge_family("memgate_coord_cluster_node_slots",
                                         "Slots each Redis Cluster master holds in the slot map in use");
      for (auto& n : nodes) metrics::add_gauge(slots, static_cast<double>(n.slots), {{"address", n.address}});
      out.push_back(std::move(slots));
    }
    // The master in use (Sentinel): one series, labelled with its address.
    if (std::string master = m->master_address(); !master.empty()) {
      auto in_use = metrics::gauge_family("memgate_coord_redis_master", "The Redis master in use (1), by address");
      metrics::add_gauge(in_use, 1, {{"address", master}});
      out.push_back(std::move(in_use));
    }
    return out;
  }));
}

void AdminMetrics::add_loader(const startup::StagedLoader& loader) {
  metrics_.own_collectable(std::make_shared<CallbackCollector>([&loader] {
    std::vector<prometheus::MetricFamily> out;
    auto state = metrics::gauge_family("memgate_module_state", "1 for each module's current start-up state");
    auto duration = metrics::gauge_family("memgate_module_duration_seconds", "Time a module took to become ready");
    for (const startup::ModuleReport& m : loader.modules()) {
      metrics::add_gauge(state, 1, {{"module", m.name}, {"state", std::string(startup::module_state_name(m.state))}});
      if (m.finished_ms >= 0)
        metrics::add_gauge(duration, static_cast<double>(m.finished_ms - m.started_ms) / 1000.0, {{"module", m.name}});
    }
    out.push_back(std::move(state));
    out.push_back(std::move(duration));
    // Memory decisions: what each step was predicted and measured to cost, the
    // headroom it was decided against, and how often nothing fitted.
    auto predicted = metrics::gauge_family("memgate_module_predicted_peak_bytes",
                                           "Predicted RSS a module's build or load adds at its peak");
    auto measured = metrics::gauge_family("memgate_module_measured_peak_bytes",
                                          "Measured RSS a module's build or load added at its peak, on this instance");
    auto headroom = metrics::gauge_family("memgate_module_headroom_bytes",
                                          "This instance's headroom when the module's step was last decided");
    auto refusals = metrics::counter_family("memgate_module_memory_refusals_total",
                                            "Attempts of a module that ended because neither a load nor a build fitted");
    auto refreshes = metrics::counter_family("memgate_module_refreshes_total",
                                             "New artifacts a module loaded after start-up (its inputs changed)");
    for (const startup::ModuleReport& m : loader.modules()) {
      if (m.fingerprint.empty()) continue;
      metrics::add_gauge(predicted, static_cast<double>(m.predicted_build), {{"module", m.name}, {"step", "build"}});
      metrics::add_gauge(predicted, static_cast<double>(m.predicted_load), {{"module", m.name}, {"step", "load"}});
      if (m.build_peak)
        metrics::add_gauge(measured, static_cast<double>(m.build_peak), {{"module", m.name}, {"step", "build"}});
      if (m.load_peak)
        metrics::add_gauge(measured, static_cast<double>(m.load_peak), {{"module", m.name}, {"step", "load"}});
      metrics::add_gauge(headroom, static_cast<double>(m.headroom), {{"module", m.name}});
      metrics::add_counter(refusals, static_cast<double>(m.memory_refusals), {{"module", m.name}});
      metrics::add_counter(refreshes, static_cast<double>(m.refreshes), {{"module", m.name}});
    }
    out.push_back(std::move(predicted));
    out.push_back(std::move(measured));
    out.push_back(std::move(headroom));
    out.push_back(std::move(refusals));
    out.push_back(std::move(refreshes));
    auto stage_time = metrics::gauge_family("memgate_stage_duration_seconds", "Time a start-up stage took");
    auto stage_peak = metrics::gauge_family("memgate_stage_peak_rss_bytes", "Peak RSS during a start-up stage");
    auto stage_heap = metrics::gauge_family("memgate_stage_heap_after_bytes", "Live heap after a stage and its purge");
    for (const startup::StageReport& st : loader.stages()) {
      metrics::Labels l{{"stage", std::to_string(st.stage)}};
      metrics::add_gauge(stage_time, static_cast<double>(st.duration_ms) / 1000.0, l);
      metrics::add_gauge(stage_peak, static_cast<double>(st.peak_rss), l);
      metrics::add_gauge(stage_heap, static_cast<double>(st.heap_after), l);
    }
    out.push_back(std::move(stage_time));
    out.push_back(std::move(stage_peak));
    out.push_back(std::move(stage_heap));
    auto ready = metrics::gauge_family("memgate_startup_ready", "1 when every enabled module is ready or finally skipped");
    metrics::add_gauge(ready, loader.ready() ? 1 : 0);
    out.push_back(std::move(ready));
    return out;
  }));
}

void AdminMetrics::add_workers(const WorkerPool& workers) {
  metrics_.own_collectable(std::make_shared<CallbackCollector>([&workers] {
    WorkerPoolStats st = workers.stats();
    std::vector<prometheus::MetricFamily> out;
    auto threads = metrics::gauge_family("memgate_worker_threads", "Threads of the worker pool");
    metrics::add_gauge(threads, static_cast<double>(st.threads));
    auto limit = metrics::gauge_family("memgate_worker_queue_limit", "Bound of the worker pool's request lane");
    metrics::add_gauge(limit, static_cast<double>(st.queue_limit));
    auto queued = metrics::gauge_family("memgate_worker_queued", "Tasks waiting for a worker, by lane");
    metrics::add_gauge(queued, static_cast<double>(st.queued_requests), {{"lane", "request"}});
    metrics::add_gauge(queued, static_cast<double>(st.queued - std::min(st.queued, st.queued_requests)),
                       {{"lane", "other"}});
    auto refused = metrics::counter_family("memgate_worker_refused_total",
                                           "Request tasks refused because the request lane was full (answered 503)");
    metrics::add_counter(refused, static_cast<double>(st.refused));
    auto dropped = metrics::counter_family("memgate_worker_dropped_total",
                                           "Accepted tasks never run: their client left, or the pool stopped");
    metrics::add_counter(dropped, static_cast<double>(st.dropped));
    out.push_back(std::move(threads));
    out.push_back(std::move(limit));
    out.push_back(std::move(queued));
    out.push_back(std::move(refused));
    out.push_back(std::move(dropped));
    return out;
  }));
}

void AdminMetrics::add_scheduler(const jobs::Scheduler& scheduler) {
  metrics_.own_collectable(std::make_shared<CallbackCollector>([&scheduler] {
    std::vector<prometheus::MetricFamily> out;
    auto running = metrics::gauge_family("memgate_scheduler_running", "1 once the scheduler passed its heap gate");
    metrics::add_gauge(running, scheduler.running() ? 1 : 0);
    auto runs = metrics::counter_family("memgate_job_runs_total", "Job runs, by job");
    auto failures = metrics::counter_family("memgate_job_failures_total", "Job runs that failed, by job");
    auto skips = metrics::counter_family("memgate_job_skips_total", "Job periods not run here, by job and reason");
    auto duration = metrics::counter_family("memgate_job_duration_seconds_total", "Time spent in job runs, by job");
    for (const jobs::JobReport& j : scheduler.report()) {
      metrics::Labels l{{"job", j.name}};
      metrics::add_counter(runs, static_cast<double>(j.runs), l);
      metrics::add_counter(failures, static_cast<double>(j.failures), l);
      metrics::add_counter(duration, j.total_duration_seconds, l);
      metrics::add_counter(skips, static_cast<double>(j.skipped_memory), {{"job", j.name}, {"reason", "memory"}});
      metrics::add_counter(skips, static_cast<double>(j.skipped_claimed), {{"job", j.name}, {"reason", "claimed_elsewhere"}});
      metrics::add_counter(skips, static_cast<double>(j.skipped_overlap), {{"job", j.name}, {"reason", "overlap"}});
      metrics::add_counter(skips, static_cast<double>(j.claim_errors), {{"job", j.name}, {"reason", "claim_error"}});
    }
    out.push_back(std::move(running));
    out.push_back(std::move(runs));
    out.push_back(std::move(failures));
    out.push_back(std::move(skips));
    out.push_back(std::move(duration));
    return out;
  }));
}

}  // namespace memgate::server

namespace memgate::server {

void AdminMetrics::add_guard(const guard::MemoryGuard& g) {
  const http::Server* server = server_;
  metrics_.own_collectable(std::make_shared<CallbackCollector>([&g, server] {
    std::vector<prometheus::MetricFamily> out;
    auto in_force = metrics::gauge_family("memgate_guard_action_in_force", "1 while a memory action is in force");
    auto changes = metrics::counter_family("memgate_guard_action_changes_total", "Times a memory action came into force");
    for (int i = 0; i < guard::kActionCount; ++i) {
      auto a = static_cast<guard::Action>(i);
      metrics::Labels l{{"action", std::string(guard::action_name(a))}};
      metrics::add_gauge(in_force, g.in_force(a) ? 1 : 0, l);
      metrics::add_counter(changes, static_cast<double>(g.action_changes(a)), l);
    }
    auto active = metrics::gauge_family("memgate_guard_trigger_active", "1 while a memory trigger is active");
    auto fired = metrics::counter_family("memgate_guard_trigger_fired_total", "Times a memory trigger fired");
    auto value = metrics::gauge_family("memgate_guard_trigger_value_bytes", "The figure a trigger watched at its last sample");
    auto threshold = metrics::gauge_family("memgate_guard_trigger_threshold_bytes", "A trigger's threshold in bytes");
    for (const guard::TriggerReport& t : g.triggers()) {
      metrics::Labels l{{"trigger", t.name}, {"resource", t.resource}};
      metrics::add_gauge(active, t.active ? 1 : 0, l);
      metrics::add_counter(fired, static_cast<double>(t.fired), l);
      metrics::add_gauge(value, static_cast<double>(t.value), l);
      metrics::add_gauge(threshold, static_cast<double>(t.on), l);
    }
    auto samples = metrics::counter_family("memgate_guard_samples_total", "Memory samples the guard took");
    metrics::add_counter(samples, static_cast<double>(g.samples()));
    auto purges = metrics::counter_family("memgate_guard_purges_total", "Purges the guard ran");
    metrics::add_counter(purges, static_cast<double>(g.purges()));
    auto released = metrics::counter_family("memgate_guard_purge_released_bytes_total", "RSS the guard's purges gave back");
    metrics::add_counter(released, static_cast<double>(std::max<int64_t>(0, g.purge_released_bytes())));
    auto alerts = metrics::counter_family("memgate_guard_alerts_total", "Memory alerts (snapshots written)");
    metrics::add_counter(alerts, static_cast<double>(g.alerts()));
    auto profiles = metrics::counter_family("memgate_guard_heap_profiles_total", "Heap profiles dumped by alerts");
    metrics::add_counter(profiles, static_cast<double>(g.profiles()));
    auto shed = metrics::counter_family("memgate_http_shed_requests_total", "Requests answered 503 because the server shed load");
    metrics::add_counter(shed, static_cast<double>(server->shed_requests()));
    for (auto* f : {&in_force, &changes, &active, &fired, &value, &threshold, &samples, &purges, &released, &alerts,
                    &profiles, &shed})
      out.push_back(std::move(*f));
    return out;
  }));
}

void AdminMetrics::add_accounting(const memory::RouteAccounting& accounting, const http::Router& router) {
  metrics_.own_collectable(std::make_shared<CallbackCollector>([&accounting, &router] {
    auto hist = metrics::histogram_family("memgate_http_request_allocated_bytes",
                                          "Bytes allocated by each request's work (its handler and the tasks it posted), by route");
    auto held = metrics::gauge_family("memgate_http_request_held_bytes",
                                      "Bytes requests allocated and did not free, summed, by route");
    for (const memory::RouteAllocation& a : accounting.snapshot()) {
      std::string pattern = router.pattern(a.route);
      metrics::Labels l{{"route", pattern.empty() ? std::string("unmatched") : pattern}};
      (void)metrics::add_histogram(hist, std::span<const double>(memory::kAllocationBucketBounds),
                                   std::span<const uint64_t>(a.buckets), static_cast<double>(a.allocated), l);
      metrics::add_gauge(held, static_cast<double>(a.held), l);
    }
    std::vector<prometheus::MetricFamily> out;
    out.push_back(std::move(hist));
    out.push_back(std::move(held));
    return out;
  }));
}

}  // namespace memgate::server
