// FleetRunner: how the loader shares a module's heavy build across the fleet.
//
// The loader only needs "build here, or load what another instance built"; the
// coordination layer (coord/fleet_once over Redis, or its local fallback) does
// the locking. Keeping this as an interface lets startup/ stay free of Redis and
// lets its tests run without one (LocalFleetRunner builds every time).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "memgate/base/status.h"
#include "memgate/startup/module.h"

namespace memgate::startup {

enum class FleetOutcome {
  kBuilt,               // this instance held the lock and built
  kLoaded,              // the done flag and artifact were there: loaded
  kWaited,              // another instance was building: waited for it, then loaded
  kTookOver,            // the builder's lease expired: this instance built instead
  kRebuiltBadArtifact,  // the artifact was missing a chunk or failed its checksum: rebuilt
  kLocal,               // no fleet coordination: built here
};
std::string_view fleet_outcome_name(FleetOutcome outcome);

struct FleetCallbacks {
  std::function<Result<std::string>()> build;            // produce the artifact
  std::function<Status(std::string_view artifact)> load;  // become ready from it
  std::function<void(std::string_view state)> on_state;  // "waiting_for_lock", "building", "loading_artifact"
};

class FleetRunner {
 public:
  virtual ~FleetRunner() = default;
  // Runs build-or-load for one module. Errors: a failed build, a failed load of a
  // fresh build, or coordination that could not be reached within the wait bound.
  virtual Result<FleetOutcome> run(const FleetSpec& spec, const FleetCallbacks& callbacks) = 0;
};

// Builds, then loads, every time: what a single instance without coordination does.
class LocalFleetRunner final : public FleetRunner {
 public:
  Result<FleetOutcome> run(const FleetSpec& spec, const FleetCallbacks& callbacks) override;
};

// An artifact travels with the id of the instance that built it, so every
// instance can say who did the work. wrap() adds it; unwrap() splits it off
// (an artifact without the envelope is returned whole with an empty builder).
std::string wrap_artifact(std::string_view builder, std::string_view bytes);
struct Unwrapped {
  std::string_view builder;
  std::string_view bytes;
};
Unwrapped unwrap_artifact(std::string_view artifact);

}  // namespace memgate::startup
