// Adapters from the runtime's needs to coord::Coordinator: the loader's
// FleetRunner (build once per fleet, load elsewhere) and the scheduler's
// JobClaimer (one instance per job period). Thread-safe as the Coordinator is.
#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <utility>

#include "memgate/coord/coordinator.h"
#include "memgate/jobs/scheduler.h"
#include "memgate/startup/fleet.h"

namespace memgate::server {

class CoordFleetRunner final : public startup::FleetRunner {
 public:
  // wait_bound: how long a waiter waits for another instance's build in all.
  CoordFleetRunner(coord::Coordinator& coordinator, std::chrono::milliseconds wait_bound)
      : coordinator_(coordinator), wait_bound_(wait_bound) {}
  Result<startup::FleetOutcome> run(const startup::FleetKey& key, const startup::FleetCallbacks& cb) override;
  // The published meta and the peaks at "<name>:peaks"; unreachable when Redis
  // does not answer.
  startup::FleetView view(const startup::FleetKey& key) override;
  void record_peak(const startup::FleetKey& key, bool build, uint64_t bytes,
                   std::optional<std::chrono::milliseconds> took) override;
  // On Redis other instances publish; on local coordination only this host's.
  bool has_peers() const override;

 private:
  coord::Coordinator& coordinator_;
  std::chrono::milliseconds wait_bound_;
};

// Claims "job:<name>:<period index>" for one period with SET NX semantics; the
// claim is never released, so it expires with its period and no other instance
// can run that period.
class CoordJobClaimer final : public jobs::JobClaimer {
 public:
  explicit CoordJobClaimer(coord::Coordinator& coordinator) : coordinator_(coordinator) {}
  Result<bool> claim(const std::string& job, int64_t period_index, std::chrono::milliseconds ttl) override;

 private:
  coord::Coordinator& coordinator_;
  // Claims are kept until their period is over: a local (flock) lease would
  // otherwise be dropped with its last copy, freeing the period for another
  // instance on this host.
  std::mutex mu_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, coord::Lease>> held_;
};

}  // namespace memgate::server
