// AdminMetrics: what /metrics serves for one process.
//
// Holds the registry and the collectors that read their figures at scrape time:
// process_* (metrics/process_collector), the allocator and cgroup gauges
// (metrics/memory_collector), and the HTTP request counters that the public
// listener keeps per IO thread (http::Server::stats()), exposed as
//   memgate_http_requests_total{route,method,status}
//   memgate_http_request_duration_seconds{route,method,status} (histogram)
//   memgate_http_connections_*  (accepted, open, timeouts, bad requests)
//   memgate_http_client_aborts_total (clients that left before their answer)
// and, through the add_*() below, the families of the runtime's other parts.
// Modules register their own (the coach's memgate_coach_*) in metrics(), which
// the loader hands them as ModuleContext::metrics.
// Thread-safe: serialize() may run on any thread.
#pragma once

#include <memory>
#include <string>

#include "memgate/http/server.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/metrics/metrics.h"

namespace memgate::coord {
class Coordinator;
}
namespace memgate::startup {
class StagedLoader;
}
namespace memgate::jobs {
class Scheduler;
}
namespace memgate::guard {
class MemoryGuard;
}
namespace memgate::memory {
class RouteAccounting;
}

namespace memgate {
class WorkerPool;
}

namespace memgate::server {

class AdminMetrics {
 public:
  // The probe and the server must outlive this object.
  AdminMetrics(memory::MemoryProbe& probe, const http::Server& public_server);
  ~AdminMetrics();

  metrics::Metrics& metrics() { return metrics_; }

  // Each adds the families of one more part; the part must outlive this object.
  //   memgate_coord_backend{backend}, memgate_coord_redis_connection_state, memgate_coord_redis_reconnects_total,
  //   memgate_coord_lock_acquire_wait_seconds, memgate_coord_lock_hold_seconds, memgate_coord_lock_extension_lag_seconds,
  //   memgate_coord_lock_lost_total, memgate_coord_fleet_once_total{outcome}, memgate_coord_redis_command_errors_total{kind},
  //   memgate_coord_redis_configured (1 when REDIS_URL is set: with memgate_coord_backend{backend="local"} it means
  //   the fleet is not coordinated although it should be)
  void add_coordination(coord::Coordinator& coordinator, bool redis_configured);
  //   memgate_module_state{module,state} (1 for the current state), memgate_module_duration_seconds{module},
  //   memgate_stage_duration_seconds{stage}, memgate_stage_peak_rss_bytes{stage}, memgate_startup_ready
  void add_loader(const startup::StagedLoader& loader);
  //   memgate_worker_threads, memgate_worker_queue_limit, memgate_worker_queued{lane},
  //   memgate_worker_refused_total, memgate_worker_dropped_total
  void add_workers(const WorkerPool& workers);
  //   memgate_job_runs_total{job}, memgate_job_failures_total{job},
  //   memgate_job_skips_total{job,reason}, memgate_job_duration_seconds_total{job}, memgate_scheduler_running
  void add_scheduler(const jobs::Scheduler& scheduler);
  //   memgate_guard_action_in_force{action}, memgate_guard_action_changes_total{action},
  //   memgate_guard_trigger_active{trigger}, memgate_guard_trigger_fired_total{trigger},
  //   memgate_guard_trigger_value_bytes{trigger}, memgate_guard_samples_total, memgate_guard_purges_total,
  //   memgate_guard_purge_released_bytes_total, memgate_guard_alerts_total, memgate_guard_heap_profiles_total,
  //   memgate_http_shed_requests_total
  void add_guard(const guard::MemoryGuard& guard);
  //   memgate_http_request_allocated_bytes{route} (histogram), memgate_http_request_held_bytes_total{route}
  void add_accounting(const memory::RouteAccounting& accounting, const http::Router& router);
  // The Prometheus text exposition of everything registered.
  std::string serialize() const { return metrics_.serialize(); }

 private:
  metrics::Metrics metrics_;
  const http::Server* server_;
};

}  // namespace memgate::server
