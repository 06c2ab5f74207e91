#include "memgate/startup/decision.h"

#include <algorithm>

namespace memgate::startup {

std::string Headroom::describe() const {
  std::string out = format_bytes(bytes) + " (heap side " + format_bytes(heap_side);
  if (container_side) out += ", container side " + format_bytes(*container_side);
  out += ", less a margin of " + format_bytes(margin) + ")";
  return out;
}

Headroom compute_headroom(const memory::MemorySample& s, uint64_t memory_limit, const SizeSpec& margin) {
  Headroom h;
  uint64_t heap = s.allocator.available ? s.allocator.allocated : s.process.rss;
  h.heap_side = memory_limit > heap ? memory_limit - heap : 0;
  uint64_t smallest_limit = memory_limit;
  if (s.cgroup.limit && *s.cgroup.limit > 0) {
    uint64_t used = s.cgroup.usage.value_or(s.process.rss);
    // The kernel reclaims inactive page cache before it kills: count the working set.
    uint64_t cache = std::min(used, s.cgroup.inactive_file.value_or(0));
    used -= cache;
    // The process's own RSS is charged to the container too, even when the
    // container's counter lags: never count less than it.
    used = std::max(used, s.process.rss);
    h.container_side = *s.cgroup.limit > used ? *s.cgroup.limit - used : 0;
    smallest_limit = std::min(smallest_limit, *s.cgroup.limit);
  }
  h.margin = margin.resolve(smallest_limit);
  uint64_t room = h.container_side ? std::min(h.heap_side, *h.container_side) : h.heap_side;
  h.bytes = room > h.margin ? room - h.margin : 0;
  return h;
}

Prediction predict(const PeakEstimate& e, const FleetView& f) {
  Prediction p;
  p.min_build_budget = e.min_build_budget;
  uint64_t fleet_build = std::max(f.measured_build, f.published ? f.artifact.build_peak : 0);
  auto source = [](uint64_t estimate, uint64_t fleet, int samples, const char* what) -> std::string {
    if (fleet == 0 && estimate == 0) return "none";
    if (fleet > estimate) return "fleet (" + std::to_string(std::max(1, samples)) + " " + what + ")";
    return "estimate";
  };
  p.build = std::max(e.build, fleet_build);
  p.build_source = source(e.build, fleet_build, f.build_samples, "builds");
  p.load = std::max(e.load, f.measured_load);
  p.load_source = source(e.load, f.measured_load, f.load_samples, "loads");
  return p;
}

std::string_view decision_name(Decision d) {
  switch (d) {
    case Decision::kLoad: return "load";
    case Decision::kBuild: return "build";
    case Decision::kBuildWithinBudget: return "build within budget";
    case Decision::kWaitForPeer: return "wait for a peer";
    case Decision::kSkip: return "skip (memory)";
  }
  return "unknown";
}

Verdict decide(const Prediction& p, const Headroom& h, bool published, bool peers, bool peer_wait_over) {
  Verdict v;
  const std::string room = ", headroom " + format_bytes(h.bytes);
  if (p.load > h.bytes) {
    v.decision = Decision::kSkip;
    v.reason = "load needs ~" + format_bytes(p.load) + room;
    return v;
  }
  if (published) {
    v.decision = Decision::kLoad;
    return v;
  }
  if (p.build <= h.bytes) {
    v.decision = Decision::kBuild;
    return v;
  }
  std::string needs = "build needs ~" + format_bytes(p.build) + room;
  if (peers && !peer_wait_over) {
    v.decision = Decision::kWaitForPeer;
    v.reason = needs;
    return v;
  }
  if (p.min_build_budget > 0 && p.min_build_budget <= h.bytes) {
    v.decision = Decision::kBuildWithinBudget;
    v.budget = h.bytes;
    v.reason = needs + ": building within a budget of " + format_bytes(h.bytes);
    return v;
  }
  v.decision = Decision::kSkip;
  v.reason = needs + (p.min_build_budget > 0 ? " (within a budget: at least " + format_bytes(p.min_build_budget) + ")"
                                             : " (it cannot build within a budget)");
  return v;
}

}  // namespace memgate::startup
