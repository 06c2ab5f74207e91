// Module: a heavy part of the backend that loads after the listener is up.
//
// A module declares, as plain data, what the staged loader needs to know before
// running it: its name and stage, the flag that enables it, its memory gate, how
// its heavy initialisation is shared across the fleet, the routes it will serve
// and the jobs it runs. Then it provides two steps:
//   build(ctx)          the heavy part, run on the worker pool; returns the
//                       artifact, bytes another instance can load instead of
//                       building (may be empty when there is nothing to share);
//   load(artifact, ctx) turns an artifact (built here or fetched) into a ready
//                       module: keep what is needed, install the route handlers.
// and stop() for shutdown.
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

#include "memgate/base/config.h"
#include "memgate/base/status.h"
#include "memgate/base/units.h"
#include "memgate/http/router.h"
#include "memgate/jobs/job.h"

namespace memgate {
class WorkerPool;
namespace coord {
class Coordinator;
}
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
// load instead.
struct FleetSpec {
  std::string lock_key;                    // "init:mcp-kb"
  std::chrono::milliseconds lock_ttl{15'000};
  std::string done_key;                    // "init:mcp-kb:done"
  std::chrono::milliseconds done_ttl{300'000};
  std::string version = "1";               // bump when the artifact format changes
};

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
  // Fleet coordination (Redis or local), for modules that publish or watch
  // shared state beyond their start-up artifact; null in unit tests without one.
  coord::Coordinator* coordinator = nullptr;
  // This instance's id (INSTANCE_ID).
  std::string instance_id;
  // Where a module registers the Prometheus families it serves (the admin
  // /metrics); null in unit tests without one. It outlives every module's load
  // and stop; a module registering a collectable keeps it alive itself (see
  // Metrics::add_collectable), so dropping it is how its families go away.
  metrics::Metrics* metrics = nullptr;
};

class Module {
 public:
  virtual ~Module() = default;

  virtual std::string name() const = 0;
  // Stages run in ascending order; modules of one stage in batches.
  virtual int stage() const { return 1; }
  virtual FlagSpec flag() const { return {}; }
  // Load only while the heap is under this (a size or a share of the limit).
  virtual std::optional<SizeSpec> memory_gate() const { return std::nullopt; }
  // Share the build across the fleet; nullopt: every instance builds its own.
  virtual std::optional<FleetSpec> fleet() const { return std::nullopt; }
  // Routes that exist from boot, answered 503 (pending) until the module is ready.
  virtual std::vector<RouteDecl> routes() const { return {}; }
  virtual std::vector<JobSpec> jobs() { return {}; }
  // When the memory guard sheds load, this module's routes answer 503: 1 = among
  // the first (at the alert threshold), 2 = with every heavy route (the default).
  virtual int shed_priority() const { return 2; }

  // The heavy part. Returns the artifact, or an error (the module is then failed).
  virtual Result<std::string> build(ModuleContext& ctx) = 0;
  // Becomes ready from an artifact. An error for a fetched artifact means the
  // loader builds instead; for a freshly built one, the module fails.
  virtual Status load(std::string_view artifact, ModuleContext& ctx) = 0;
  // Releases what the module holds. Called once, at shutdown.
  virtual void stop() {}
};

using ModuleList = std::vector<std::shared_ptr<Module>>;

}  // namespace memgate::startup
