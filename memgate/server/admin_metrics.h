// AdminMetrics: what /metrics serves for one process.
//
// Holds the registry and the collectors that read their figures at scrape time:
// process_* (metrics/process_collector), the allocator and cgroup gauges
// (metrics/memory_collector), and the HTTP request counters that the public
// listener keeps per IO thread (http::Server::stats()), exposed as
//   http_requests_total{route,method,status}
//   http_request_duration_seconds{route,method,status} (histogram)
//   http_connections_*  (accepted, open, timeouts, bad requests)
// Thread-safe: serialize() may run on any thread.
#pragma once

#include <memory>
#include <string>

#include "memgate/http/server.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/metrics/metrics.h"

namespace memgate::server {

class AdminMetrics {
 public:
  // The probe and the server must outlive this object.
  AdminMetrics(memory::MemoryProbe& probe, const http::Server& public_server);
  ~AdminMetrics();

  metrics::Metrics& metrics() { return metrics_; }
  // The Prometheus text exposition of everything registered.
  std::string serialize() const { return metrics_.serialize(); }

 private:
  metrics::Metrics metrics_;
};

}  // namespace memgate::server
