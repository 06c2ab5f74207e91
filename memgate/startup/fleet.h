// FleetRunner: how the loader shares a module's heavy build across the fleet.
//
// The loader only needs "build here, or load what another instance built", with
// its own memory decisions asked at the right moments; the coordination layer
// (coord/fleet_once over Redis, or its local fallback) does the locking. Keeping
// this as an interface lets startup/ stay free of Redis and lets its tests run
// without one (LocalFleetRunner builds every time).
//
// Every artifact is addressed by a FleetKey: the module's base names plus the
// fingerprint of its inputs, so instances with different inputs never share one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "memgate/base/chunked_bytes.h"
#include "memgate/base/fleet_outcome.h"
#include "memgate/base/status.h"
#include "memgate/startup/module.h"

namespace memgate::startup {

// How an instance got its artifact: one type with coord (base/fleet_outcome.h).
using memgate::FleetOutcome;
using memgate::fleet_outcome_name;

// One artifact of one module: the spec's base names and TTLs, and its inputs.
struct FleetKey {
  FleetSpec spec;
  std::string fingerprint;  // digest of version + the module's input_fingerprint(), 16 hex digits
  std::string inputs;       // the module's input_fingerprint() text, shortened for people
  // "init:mcp-kb@<fingerprint>": the name every coordination key of it starts with.
  std::string name() const { return spec.lock_key + "@" + fingerprint; }
};
// The key for `spec` and a module's input fingerprint text.
FleetKey make_fleet_key(const FleetSpec& spec, std::string_view inputs);

// What is known of an artifact before it is touched.
struct ArtifactInfo {
  std::string builder;     // the instance that built it ("" unknown)
  uint64_t size = 0;       // bytes of the artifact
  uint64_t build_peak = 0; // what its build measured (0 unknown)
};

// What the fleet knows of one key: whether an artifact is published, and the
// largest of the peaks and durations recently measured by builds and loads of
// it (a duration is nullopt when none was recorded).
struct FleetView {
  bool reachable = true;   // false: the coordination backend did not answer
  bool published = false;
  ArtifactInfo artifact;
  uint64_t measured_build = 0;
  uint64_t measured_load = 0;
  int build_samples = 0;
  int load_samples = 0;
  std::optional<std::chrono::milliseconds> build_took{};
  std::optional<std::chrono::milliseconds> load_took{};
};

struct FleetCallbacks {
  // Produces the artifact; *measured_peak gets the build's measured peak.
  std::function<Result<ChunkedBytes>(uint64_t* measured_peak)> build;
  // Becomes ready from a stream. `fresh`: built here.
  std::function<Status(ByteSource& bytes, const ArtifactInfo& info, bool fresh)> load;
  // Before a published artifact is loaded: kResourceExhausted when it does not fit.
  std::function<Status(const ArtifactInfo& info)> may_load;
  // Before contending for the build: kUnavailable when a build does not fit
  // here but a peer's artifact may come (the runner waits up to peer_wait, then
  // ends with kResourceExhausted); any other error ends the step at once.
  std::function<Status()> may_build;
  std::chrono::milliseconds peer_wait{0};
  // "waiting_for_lock", "waiting_for_peer", "building", "loading_artifact".
  std::function<void(std::string_view state)> on_state;
  // Shutdown: the runner's waits wake and it ends with kCancelled.
  std::stop_token stop;
};

class FleetRunner {
 public:
  virtual ~FleetRunner() = default;
  // Runs build-or-load for one artifact. Errors: a failed build, a failed load
  // of a fresh build, kResourceExhausted from may_load or may_build (after the
  // peer wait), or coordination that could not be reached within the wait bound.
  virtual Result<FleetOutcome> run(const FleetKey& key, const FleetCallbacks& callbacks) = 0;
  // The fleet's view of `key` (no artifact, no measurements by default).
  virtual FleetView view(const FleetKey&) { return {}; }
  // Records a measured peak (0: none worth publishing) and how long the step
  // took for `key`, so other instances predict with them.
  virtual void record_peak(const FleetKey&, bool /*build*/, uint64_t /*bytes*/,
                           std::optional<std::chrono::milliseconds> /*took*/) {}
  // True when other instances may publish artifacts (waiting for one makes sense).
  virtual bool has_peers() const { return false; }
};

// Builds, then loads, every time: what a single instance without coordination does.
class LocalFleetRunner final : public FleetRunner {
 public:
  Result<FleetOutcome> run(const FleetKey& key, const FleetCallbacks& callbacks) override;
};

}  // namespace memgate::startup
