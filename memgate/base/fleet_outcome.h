// FleetOutcome: how an instance got a module's artifact, the one word for it
// that coordination (coord/fleet_once), the loader (startup/) and every report
// (/startupz, /metrics, the log) share. Plain data; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace memgate {

enum class FleetOutcome {
  kBuilt,               // this instance held the lock and built
  kLoaded,              // the done flag and artifact were there: loaded
  kWaited,              // another instance was building (or was waited for): waited, then loaded
  kTookOver,            // the builder's lease expired: this instance built instead
  kRebuiltBadArtifact,  // the artifact was missing a chunk or failed its checksum: rebuilt
  kLocal,               // no fleet coordination for the module: built here
  kFailed,              // none of the above (counted by coord; never returned as a success)
};
inline constexpr size_t kFleetOutcomeCount = 7;

// "built", "loaded", "waited", "took_over", "rebuilt_bad_artifact", "local", "failed".
constexpr std::string_view fleet_outcome_name(FleetOutcome outcome) {
  switch (outcome) {
    case FleetOutcome::kBuilt: return "built";
    case FleetOutcome::kLoaded: return "loaded";
    case FleetOutcome::kWaited: return "waited";
    case FleetOutcome::kTookOver: return "took_over";
    case FleetOutcome::kRebuiltBadArtifact: return "rebuilt_bad_artifact";
    case FleetOutcome::kLocal: return "local";
    case FleetOutcome::kFailed: return "failed";
  }
  return "unknown";
}

}  // namespace memgate
