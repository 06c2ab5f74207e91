#include "memgate/server/coord_adapters.h"

namespace memgate::server {

Result<startup::FleetOutcome> CoordFleetRunner::run(const startup::FleetKey& key, const startup::FleetCallbacks& cb) {
  coord::FleetOnceOptions options;
  options.artifact_version = key.spec.version;
  options.wait_bound = wait_bound_;
  auto info_of = [](const coord::ArtifactMeta& meta) {
    startup::ArtifactInfo info;
    info.builder = meta.builder;
    info.size = meta.size;
    info.build_peak = meta.build_peak;
    return info;
  };
  coord::FleetStep step;
  step.peer_wait = cb.peer_wait;
  step.on_state = cb.on_state;
  step.stop = cb.stop;
  if (cb.may_build) step.may_build = cb.may_build;
  if (cb.may_load)
    step.may_load = [&](const coord::ArtifactMeta& meta) { return cb.may_load(info_of(meta)); };
  // A lost lease is caught by the fenced publish; the build itself is not
  // interrupted (modules stop early only at shutdown).
  step.build = [&](const coord::CancelSignal&, coord::PublishInfo* info) -> Result<ChunkedBytes> {
    uint64_t peak = 0;
    Result<ChunkedBytes> artifact = cb.build(&peak);
    info->inputs = key.inputs;
    info->build_peak = peak;
    return artifact;
  };
  step.load = [&](ByteSource& bytes, const coord::ArtifactMeta& meta, bool fresh) -> Status {
    return cb.load(bytes, info_of(meta), fresh);
  };
  Result<coord::FleetOutcome> r =
      coordinator_.fleet_once(key.name(), key.spec.lock_ttl, key.spec.done_ttl, step, options);
  if (!r.ok()) return r.status();
  if (*r == FleetOutcome::kFailed) return Internal("fleet_once reported a failure without an error");
  return *r;
}

startup::FleetView CoordFleetRunner::view(const startup::FleetKey& key) {
  startup::FleetView v;
  auto meta = coordinator_.read_meta(key.name(), key.spec.version);
  if (!meta.ok()) {
    v.reachable = false;
    return v;
  }
  if (meta->state == coord::ArtifactState::kOk) {
    v.published = true;
    v.artifact.builder = meta->meta.builder;
    v.artifact.size = meta->meta.size;
    v.artifact.build_peak = meta->meta.build_peak;
  }
  coord::FleetPeaks peaks = coordinator_.fleet_peaks(key.name());
  v.measured_build = peaks.build;
  v.measured_load = peaks.load;
  v.build_samples = peaks.build_samples;
  v.load_samples = peaks.load_samples;
  v.build_took = peaks.build_took;
  v.load_took = peaks.load_took;
  return v;
}

void CoordFleetRunner::record_peak(const startup::FleetKey& key, bool build, uint64_t bytes,
                                   std::optional<std::chrono::milliseconds> took) {
  if (bytes == 0 && !took) return;
  coordinator_.record_peak(key.name(), build, bytes, key.spec.done_ttl, took);
}

bool CoordFleetRunner::has_peers() const { return coordinator_.backend() == "redis"; }

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
