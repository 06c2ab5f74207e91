// Module: a heavy part of the backend that loads after the listener is up.
//
// A module declares, as plain data, what the staged loader needs to know before
// running it: its name and stage, the flag that enables it, its memory gate, how
// its heavy initialisation is shared across the fleet, what its artifact is built
// from (the input fingerprint) and what building and loading it cost (the peak
// estimate), the routes it will serve and the jobs it runs. Then it provides
// two steps:
//   build(ctx)          the heavy part, run on the worker pool, within
//                       ctx.memory_budget when one is set; returns the artifact,
//                       bytes another instance can load instead of building;
//   load(bytes, ctx)    turns an artifact (built here or fetched, streamed in
//                       pieces) into a ready module: keep what is needed,
//                       install the route handlers. Called again later with a
//                       newer artifact when the module asks for a refresh.
// and stop() for shutdown.
//
// This interface and what ModuleContext hands over are the whole contract: a
// module never reads or writes coordination keys, never wraps its artifact in
// an envelope of the runtime's, and finds the services it uses in the context.
//
// The loader calls build and load on worker threads, never both at once for one
// module, and never after stop(). A module's handlers may run on any IO thread:
// they must be thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/chunked_bytes.h"
#include "memgate/base/config.h"
#include "memgate/base/status.h"
#include "memgate/base/units.h"
#include "memgate/http/router.h"
#include "memgate/jobs/job.h"

namespace memgate {
class WorkerPool;
namespace metrics {
class Metrics;
}
}  // namespace memgate

namespace memgate::startup {

// The environment variable that turns a module on, and its default.
struct FlagSpec {
  std::string env;             // empty: the module is always on
  bool default_on = true;
};

// How the heavy initialisation is shared: the lock that makes one instance build,
// and the done flag (with the artifact) that lets the others and later restarts
// load instead. These are base names: the runtime suffixes each with the
// artifact's input fingerprint ("init:mcp-kb@<fp>", docs/design/coord.md), so
// a different input is a different artifact.
struct FleetSpec {
  std::string lock_key;                    // "init:mcp-kb"
  std::chrono::milliseconds lock_ttl{15'000};
  std::string done_key;                    // "init:mcp-kb:done"
  std::chrono::milliseconds done_ttl{300'000};
  std::string version = "1";               // bump when the artifact format changes
};

// What building and loading a module's artifact cost: bytes of RSS above the
// process's RSS before the step, at the step's peak. A module estimates them from
// its inputs before anything was measured; the runtime then uses the larger of
// the estimate and what the fleet measured for the same fingerprint.
struct PeakEstimate {
  uint64_t build = 0;  // an unbounded build; 0: unknown (treated as always fitting)
  uint64_t load = 0;   // a load of the artifact
  // The smallest memory budget build() can keep to (slower); 0: build() cannot
  // work within a budget, so an instance without `build` of headroom never builds.
  uint64_t min_build_budget = 0;
};

// Runtime services a module may use (handed over, never found in a global).
// The runtime owns it; every member may be null in unit tests.
class ArtifactChannel;

struct RouteDecl {
  http::Method method = http::Method::kGet;
  std::string pattern;  // "/api/kb/search", or a prefix "/api/kb/docs/*"
};

// A periodic job (run by the scheduler, once per period across the fleet).
using jobs::JobSpec;

// What build and load get from the runtime.
struct ModuleContext {
  const Config& config;
  http::Router& router;  // load() installs the real handlers here
  WorkerPool& workers;
  std::stop_token stop;  // requested at shutdown: a long build should give up
  // For build(): bytes of RSS the build may add above what the process holds
  // when it starts; 0: no budget (the prediction says an unbounded build fits).
  uint64_t memory_budget = 0;
  // How a module asks for a newer artifact when its inputs change (refresh,
  // watch); null when the module runs outside the loader.
  ArtifactChannel* artifacts = nullptr;
  // This instance's id (INSTANCE_ID).
  std::string instance_id;
  // Where a module registers the Prometheus families it serves (the admin
  // /metrics); null in unit tests without one. It outlives every module's load
  // and stop; a module registering a collectable keeps it alive itself (see
  // Metrics::add_collectable), so dropping it is how its families go away.
  metrics::Metrics* metrics = nullptr;
  // How far build() is, 0..100, for people (the loader's status line, systemd's
  // STATUS=); call it as often as is cheap, from any thread. Null outside the
  // loader.
  std::function<void(int percent)> progress{};
};

class Module {
 public:
  virtual ~Module() = default;

  virtual std::string name() const = 0;
  // Stages run in ascending order; modules of one stage in batches.
  virtual int stage() const { return 1; }
  virtual FlagSpec flag() const { return {}; }
  // Load only while the heap is under this (a size or a share of the limit),
  // and the setting it comes from (named in warnings, e.g. "KB_HEAP_GATE").
  virtual std::optional<SizeSpec> memory_gate() const { return std::nullopt; }
  virtual std::string memory_gate_setting() const { return {}; }
  // Share the build across the fleet; nullopt: every instance builds its own.
  virtual std::optional<FleetSpec> fleet() const { return std::nullopt; }
  // What the artifact is built from, as text that changes whenever the artifact
  // would (kb: corpus fingerprint, chunk size, index format). Called at start-up
  // and on each refresh, from the loader's threads; it may read files but must
  // be cheap next to a build. Empty: the artifact depends on the version only.
  virtual std::string input_fingerprint() const { return {}; }
  // The module's own prediction of its peaks, from its inputs.
  virtual PeakEstimate estimate_peaks() const { return {}; }
  // Routes that exist from boot, answered 503 (pending) until the module is ready.
  virtual std::vector<RouteDecl> routes() const { return {}; }
  virtual std::vector<JobSpec> jobs() { return {}; }
  // When the memory guard sheds load, this module's routes answer 503: 1 = among
  // the first (at the alert threshold), 2 = with every heavy route (the default).
  virtual int shed_priority() const { return 2; }

  // The heavy part. Returns the artifact, or an error (the module is then failed).
  virtual Result<ChunkedBytes> build(ModuleContext& ctx) = 0;
  // Becomes ready from an artifact, read from `bytes` to its end (whose last
  // next() is the runtime's verdict on the bytes: nothing may be served before
  // it said yes). An error for a fetched artifact means the loader builds
  // instead; for a freshly built one, the module fails. A module that is
  // already serving swaps to the new artifact only when this one succeeds.
  virtual Status load(ByteSource& bytes, ModuleContext& ctx) = 0;
  // Releases what the module holds. Called once, at shutdown.
  virtual void stop() {}
};

using ModuleList = std::vector<std::shared_ptr<Module>>;

// How a serving module asks for the artifact of its current inputs. Thread-safe;
// call it from the module's own threads (a job, a watcher), never from inside
// build() or load().
class ArtifactChannel {
 public:
  virtual ~ArtifactChannel() = default;
  // The input fingerprint of the artifact the module serves now ("" before the
  // first load).
  virtual std::string serving() const = 0;
  // Runs the fleet step again for the module's inputs now: when
  // input_fingerprint() equals serving(), nothing happens (false). Otherwise the
  // runtime loads the fleet's artifact for the new fingerprint, or builds it once
  // for the fleet and publishes it, under the same memory decisions as at
  // start-up, and calls load() with it (true). Blocks; concurrent calls for one
  // module run one after the other. kResourceExhausted when it does not fit now.
  virtual Result<bool> refresh(std::stop_token stop) = 0;
};

// Reads a small artifact whole (templates, tables), refusing more than
// `max_bytes`: for modules whose load needs every byte at once anyway.
inline Result<std::string> read_artifact(ByteSource& bytes, uint64_t max_bytes) { return read_all(bytes, max_bytes); }

}  // namespace memgate::startup
