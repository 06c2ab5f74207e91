// Memory decisions for one module's fleet step: how much room this instance
// has, what the step is predicted to cost, and what to do about it.
//
//   headroom   = min(memory limit − heap, container limit − container working set) − margin
//   prediction = max(the module's estimate, the fleet's recent measurements for this fingerprint)
//   decide:
//     artifact published, load fits            → load it
//     artifact published, load does not fit    → skip (memory)
//     not published, load does not fit         → skip (memory): building it would not help
//     not published, unbounded build fits      → build (contend for the lock)
//     build does not fit, peers may publish    → wait for a peer's artifact (bounded)
//     ... wait over, a budgeted build fits     → build within the headroom as a budget
//     otherwise                                → skip (memory), both numbers in the reason
//
// Pure functions of their arguments; thread-safe. Tests drive them with
// hand-made samples (memory/fake_probe.h) and views.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "memgate/base/units.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/startup/fleet.h"
#include "memgate/startup/module.h"

namespace memgate::startup {

struct Headroom {
  uint64_t bytes = 0;                     // what a step may add; 0 when nothing is left
  uint64_t heap_side = 0;                 // memory limit − heap
  std::optional<uint64_t> container_side; // container limit − working set, when limited
  uint64_t margin = 0;
  std::string describe() const;           // "60 MiB (container: 100 MiB limit − 32 MiB used − 8 MiB margin)"
};

// `memory_limit`: MEMORY_LIMIT in bytes (the heap's limit). `margin` is a size,
// or a share of the smaller of the two limits.
Headroom compute_headroom(const memory::MemorySample& sample, uint64_t memory_limit, const SizeSpec& margin);

struct Prediction {
  uint64_t build = 0;            // an unbounded build; 0 unknown
  uint64_t load = 0;
  uint64_t min_build_budget = 0; // 0: cannot build within a budget
  std::string build_source;      // "estimate", "fleet (3 builds)", "none"
  std::string load_source;
};
Prediction predict(const PeakEstimate& estimate, const FleetView& fleet);

enum class Decision {
  kLoad,               // load the published artifact
  kBuild,              // contend for the lock, build without a budget
  kBuildWithinBudget,  // contend for the lock, build within the headroom
  kWaitForPeer,        // do not contend: wait for another instance's artifact
  kSkip,               // nothing fits: skipped(memory), retried under the gate policy
};
std::string_view decision_name(Decision d);  // "load", "build", "build within budget", ...

struct Verdict {
  Decision decision = Decision::kSkip;
  uint64_t budget = 0;   // kBuildWithinBudget: the build's memory budget
  std::string reason;    // kSkip and kWaitForPeer: "build needs ~150 MiB, headroom 60 MiB ..."
};

// `published`: an artifact for this fingerprint is in the fleet. `peers`: other
// instances may publish one. `peer_wait_over`: the bounded wait for them ran out.
Verdict decide(const Prediction& p, const Headroom& h, bool published, bool peers, bool peer_wait_over);

}  // namespace memgate::startup
