#include "memgate/server/coord_adapters.h"

namespace memgate::server {

Result<startup::FleetOutcome> CoordFleetRunner::run(const startup::FleetSpec& spec,
                                                    const startup::FleetCallbacks& cb) {
  coord::FleetOnceOptions options;
  options.artifact_version = spec.version;
  options.wait_bound = wait_bound_;
  // coord's build must leave this instance ready, so it loads what it built. A
  // lost lease is caught by the fenced publish; the build itself is not
  // interrupted (modules stop early only at shutdown).
  auto build = [&](const coord::CancelSignal&) -> Result<std::string> {
    Result<std::string> artifact = cb.build();
    if (!artifact.ok()) return artifact.status();
    if (Status s = cb.load(*artifact); !s.ok()) return s;
    return artifact;
  };
  auto load = [&](std::string_view artifact) -> Status { return cb.load(artifact); };
  Result<coord::FleetOutcome> r = coordinator_.fleet_once(spec.lock_key, spec.lock_ttl, spec.done_ttl, build, load,
                                                          options);
  if (!r.ok()) return r.status();
  switch (*r) {
    case coord::FleetOutcome::kBuilt: return startup::FleetOutcome::kBuilt;
    case coord::FleetOutcome::kLoaded: return startup::FleetOutcome::kLoaded;
    case coord::FleetOutcome::kWaited: return startup::FleetOutcome::kWaited;
    case coord::FleetOutcome::kTookOver: return startup::FleetOutcome::kTookOver;
    case coord::FleetOutcome::kRebuiltBadArtifact: return startup::FleetOutcome::kRebuiltBadArtifact;
    case coord::FleetOutcome::kFailed: break;
  }
  return Internal("fleet_once reported a failure without an error");
}

Result<bool> CoordJobClaimer::claim(const std::string& job, int64_t period_index, std::chrono::milliseconds ttl) {
  std::string key = "job:" + job + ":" + std::to_string(period_index);
  Result<coord::Lease> lease = coordinator_.acquire(key, ttl, std::chrono::milliseconds(0));
  if (lease.ok()) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    while (!held_.empty() && held_.front().first <= now) held_.pop_front();
    held_.emplace_back(now + ttl, *lease);
    return true;
  }
  if (lease.status().code() == Code::kDeadlineExceeded) return false;  // another instance has it
  return lease.status();
}

}  // namespace memgate::server
