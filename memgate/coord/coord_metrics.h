// CoordMetrics: what coordination counts, as plain atomics the metrics layer reads.
//
// coord/ does not depend on prometheus. Every Coordinator, Connection and backend
// records into one CoordMetrics (the process-wide coord_metrics() unless a test
// passes its own); the exporter reads it with snapshot() or the atomics directly.
// Suggested Prometheus names in brackets:
//
//   backend                      0 = local, 1 = redis    [memgate_coord_backend{backend="local"|"redis"} 0/1]
//   connection_state             0 = disconnected, 1 = connecting, 2 = connected
//                                                        [memgate_coord_redis_connection_state]
//   reconnects                   connections made after the first  [memgate_coord_redis_reconnects_total]
//   acquire_wait                 seconds from acquire() to a lease (or giving up)
//                                                        [memgate_coord_lock_acquire_wait_seconds]
//   hold_time                    seconds a lease was held, acquire to release
//                                                        [memgate_coord_lock_hold_seconds]
//   extension_lag                seconds a watchdog extension ran after it was due
//                                                        [memgate_coord_lock_extension_lag_seconds]
//   lost_leases                  watchdog found its lease gone or could not extend in time
//                                                        [memgate_coord_lock_lost_total]
//   fleet_once[outcome]          built, loaded, waited, took_over, rebuilt_bad_artifact, failed
//                                                        [memgate_coord_fleet_once_total{outcome}]
//   command_errors[kind]         timeout, disconnected, server, protocol
//                                                        [memgate_coord_redis_command_errors_total{kind}]
//   failover_retries             operations sent again after a failover (Sentinel)
//                                                        [memgate_coord_redis_failover_retries_total]
//   sentinel_failovers           the resolved master's address changed
//                                                        [memgate_coord_redis_sentinel_failovers_total]
//   sentinel_resolution_errors   a resolution found no master (every sentinel asked)
//                                                        [memgate_coord_redis_sentinel_resolution_errors_total]
//   unreplicated_writes          a lock or publish fewer replicas acknowledged than REDIS_WAIT_REPLICAS asks
//                                                        [memgate_coord_redis_unreplicated_writes_total]
//   master_address()             "host:port" of the master in use, "" before the first
//                                                        [memgate_coord_redis_master{address} 1]
//   cluster_redirects_moved/_ask MOVED and ASK replies followed (Redis Cluster)
//                                                        [memgate_coord_cluster_redirects_total{kind}]
//   cluster_slot_map_refreshes   slot maps installed     [memgate_coord_cluster_slot_map_refreshes_total]
//   cluster_retries_tryagain/_clusterdown  commands sent again after TRYAGAIN / CLUSTERDOWN
//                                                        [memgate_coord_cluster_retries_total{reason}]
//   cluster_nodes()              each master of the slot map and its slot count
//                                                        [memgate_coord_cluster_node_slots{address}]
//   sentinel_view()              with Sentinel: the master set's name, the sentinels in the
//                                order they are asked, the last resolution's error (cut to
//                                1 KiB; "" after a success)          [/debug/coord "sentinel"]
//
// Histograms have fixed bucket bounds (kHistogramBounds, in seconds, cumulative
// like Prometheus "le" buckets when read through snapshot()). All members are
// safe to update and read from any thread.
#pragma once

#include "memgate/base/fleet_outcome.h"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace memgate::coord {

inline constexpr std::array<double, 14> kHistogramBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct HistogramSnapshot {
  std::array<uint64_t, kHistogramBounds.size()> cumulative{};  // count of observations <= bound
  uint64_t count = 0;                                          // all observations (the +Inf bucket)
  double sum_seconds = 0;
};

class Histogram {
 public:
  void observe(std::chrono::nanoseconds d);
  HistogramSnapshot snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kHistogramBounds.size() + 1> buckets_{};  // last: above every bound
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
};

// The outcome type is shared with the loader (base/fleet_outcome.h).
using memgate::FleetOutcome;
using memgate::fleet_outcome_name;
using memgate::kFleetOutcomeCount;

enum class CommandErrorKind { kTimeout, kDisconnected, kServer, kProtocol };
inline constexpr size_t kCommandErrorKindCount = 4;
std::string_view command_error_kind_name(CommandErrorKind kind);  // "timeout", ...

enum class ConnectionState : int { kDisconnected = 0, kConnecting = 1, kConnected = 2 };

struct CoordMetrics {
  std::atomic<int> backend{0};           // 0 local, 1 redis
  std::atomic<int> connection_state{0};  // ConnectionState
  std::atomic<uint64_t> reconnects{0};
  Histogram acquire_wait;
  Histogram hold_time;
  Histogram extension_lag;
  std::atomic<uint64_t> lost_leases{0};
  std::array<std::atomic<uint64_t>, kFleetOutcomeCount> fleet_once{};
  std::array<std::atomic<uint64_t>, kCommandErrorKindCount> command_errors{};
  std::atomic<uint64_t> failover_retries{0};
  std::atomic<uint64_t> sentinel_failovers{0};
  std::atomic<uint64_t> sentinel_resolution_errors{0};
  std::atomic<uint64_t> unreplicated_writes{0};
  std::atomic<uint64_t> cluster_redirects_moved{0};
  std::atomic<uint64_t> cluster_redirects_ask{0};
  std::atomic<uint64_t> cluster_slot_map_refreshes{0};
  std::atomic<uint64_t> cluster_retries_tryagain{0};
  std::atomic<uint64_t> cluster_retries_clusterdown{0};

  struct ClusterNode {
    std::string address;
    uint32_t slots = 0;
  };
  std::vector<ClusterNode> cluster_nodes() const {
    std::lock_guard lock(master_mu_);
    return cluster_nodes_;
  }
  void set_cluster_nodes(std::vector<ClusterNode> nodes) {
    std::lock_guard lock(master_mu_);
    cluster_nodes_ = std::move(nodes);
  }

  struct SentinelView {
    std::string master_name;
    std::vector<std::string> sentinels;  // "host:port", in the order they are asked
    std::string last_error;
  };
  SentinelView sentinel_view() const {
    std::lock_guard lock(master_mu_);
    return sentinel_view_;
  }
  void set_sentinel_view(SentinelView view) {
    if (view.last_error.size() > 1024) view.last_error.resize(1024);
    std::lock_guard lock(master_mu_);
    sentinel_view_ = std::move(view);
  }

  std::string master_address() const {
    std::lock_guard lock(master_mu_);
    return master_address_;
  }
  void set_master_address(std::string address) {
    std::lock_guard lock(master_mu_);
    master_address_ = std::move(address);
  }

  void count(FleetOutcome o) { fleet_once[static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed); }
  void count(CommandErrorKind k) {
    command_errors[static_cast<size_t>(k)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t outcomes(FleetOutcome o) const { return fleet_once[static_cast<size_t>(o)].load(); }
  uint64_t errors(CommandErrorKind k) const { return command_errors[static_cast<size_t>(k)].load(); }

 private:
  mutable std::mutex master_mu_;
  std::string master_address_;
  std::vector<ClusterNode> cluster_nodes_;
  SentinelView sentinel_view_;
};

// The process-wide instance the exporter reads.
CoordMetrics& coord_metrics();

}  // namespace memgate::coord
