// StagedLoader: brings heavy modules up after the listener, stage by stage.
//
// For each stage in ascending order, the modules of that stage run in batches of
// `batch_size` on the worker pool. For each module:
//   flag off                         -> skipped(flag), final
//   memory gate says no              -> gated; retried after the last stage, every
//                                       gate_retry_interval, up to gate_retries
//                                       times, then skipped(memory), final
//   otherwise                        -> the fleet step for the module's input
//                                       fingerprint, through the FleetRunner, with
//                                       the memory decisions of decision.h asked
//                                       before every load and build
//                                       (waiting_for_lock / waiting_for_peer /
//                                       building / loading_artifact)
//                                       -> ready; gated when nothing fits (the
//                                       reason has both numbers); or failed
// Inside a stage (or across all of them, STARTUP_MODE=budgeted) modules run
// together while what the process holds plus the sum of their predicted peaks
// fits STARTUP_MEMORY_BUDGET.
// Each build's and load's peak is measured and given to the FleetRunner, which
// publishes it for the fleet's next predictions.
// After each stage the allocator is purged and the stage's heap, RSS and peak RSS
// are recorded; then the loader waits the inter-stage delay. The stage peak comes
// from VmHWM reset through /proc/self/clear_refs where the kernel allows; where it
// does not, the increase of the high-water mark is recorded and the stage says so.
//
// A module's routes exist from construction as pending routes (503 + Retry-After
// and the module's state in the body); load() replaces them with real handlers. A
// disabled module's routes answer 404 naming the flag.
//
// Thread-safety: start() and stop() from the owning thread; every other method
// from any thread. The loader runs on a thread of its own and waits with the
// injected Clock, so a test drives its delays with a FakeClock.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "memgate/base/clock.h"
#include "memgate/base/config.h"
#include "memgate/base/worker_pool.h"
#include "memgate/http/router.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/startup/decision.h"
#include "memgate/startup/fleet.h"
#include "memgate/startup/module.h"

namespace memgate::startup {

enum class ModuleState {
  kPending,          // not reached yet
  kGated,            // the memory gate said no; will be retried
  kWaitingForLock,   // another instance is building its artifact
  kWaitingForPeer,   // a build does not fit here: waiting for another instance's artifact
  kBuilding,
  kLoadingArtifact,
  kReady,
  kSkippedFlag,      // final
  kSkippedMemory,    // final: the gate said no every time
  kFailed,
};
std::string_view module_state_name(ModuleState state);  // "skipped(memory)", ...
// Ready, or skipped for a reason that will not change.
bool is_settled(ModuleState state);

// A module's state from `at_ms` (since the loader started) until the next mark:
// the bars of a start-up waterfall.
struct PhaseMark {
  ModuleState state = ModuleState::kPending;
  int64_t at_ms = 0;
};
inline constexpr size_t kMaxPhaseMarks = 32;  // past it the last mark is replaced

struct ModuleReport {
  std::string name;
  int stage = 0;
  ModuleState state = ModuleState::kPending;
  std::string reason;          // why skipped or failed
  std::string outcome;         // fleet outcome: built, loaded, waited, ...
  std::string built_by;        // the instance that built the artifact
  int gate_attempts = 0;
  int64_t started_ms = -1;     // since the loader started; -1 not yet
  int64_t finished_ms = -1;
  int64_t heap_delta = 0;      // allocator bytes, after - before (this module's work)
  int64_t rss_delta = 0;
  uint64_t artifact_bytes = 0;
  // Memory decisions (the latest attempt).
  std::string fingerprint;     // of the artifact's inputs (the fleet key suffix)
  std::string inputs;          // what the module said its inputs are, shortened
  uint64_t predicted_build = 0;
  uint64_t predicted_load = 0;
  std::string build_source;    // "estimate", "fleet (2 builds)", "none"
  std::string load_source;
  uint64_t headroom = 0;       // when the step was decided
  std::string decision;        // "build", "load", "build within budget", "wait for a peer", "skip (memory)"
  std::string decision_path;   // every decision of the last step in order: "wait for a peer, load"
  uint64_t build_budget = 0;   // the budget a budgeted build got
  uint64_t build_peak = 0;     // measured here (0: not built here)
  uint64_t load_peak = 0;      // measured here
  int memory_refusals = 0;     // attempts that ended because nothing fitted
  int refreshes = 0;           // new artifacts loaded through the channel after start-up
  // Every state change since start(), oldest first (at most kMaxPhaseMarks:
  // the first ones and the latest).
  std::vector<PhaseMark> phases;
};

// One fleet-shared artifact a module of this instance uses, as the fleet sees it.
struct ArtifactReport {
  std::string module;
  std::string name;         // FleetKey::name(): "init:mcp-kb@<fingerprint>"
  std::string fingerprint;
  std::string inputs;
  bool serving = false;     // the module serves this artifact now
  FleetView view;           // published?, builder, size, the fleet's measured peaks
};

struct StageReport {
  int stage = 0;
  std::vector<std::string> modules;
  int64_t started_ms = -1;
  int64_t duration_ms = 0;
  uint64_t heap_after = 0;     // after the purge
  uint64_t rss_after = 0;
  uint64_t peak_rss = 0;       // the stage's own peak (see peak_method)
  std::string peak_method;     // "clear_refs" or "hwm_delta"
  int64_t purge_released = 0;  // RSS bytes the purge gave back
};

// What the plan is doing now, as one line for people ("stage 1/2: kb building,
// 45%"), for a supervisor's status display (systemd's STATUS=).
struct ProgressNote {
  std::string text;
  // The step now running may take long (a build, a load, a fleet wait): a
  // supervisor with a start-up timeout should extend it (EXTEND_TIMEOUT_USEC).
  bool long_step = false;
  // How long that step may wait when the loader knows (a fleet wait: up to
  // FLEET_PEER_WAIT); 0 when it does not (a build's length is the module's).
  std::chrono::milliseconds expected{0};
  bool finished = false;  // the plan is over (the text sums it up)
};

struct LoaderOptions {
  std::chrono::milliseconds stage_delay{1'000};
  int batch_size = 1;
  int gate_retries = 10;
  std::chrono::milliseconds gate_retry_interval{30'000};
  uint64_t memory_limit = 4096ull << 20;  // base for shares when no cgroup limit
  std::string instance_id;
  // Reads a module's flag variable (so tests and the config share one source).
  EnvLookup env;
  // When set and true, optional initialisation is refused (the memory guard).
  std::function<bool()> refuse_optional_init;
  // Try to reset VmHWM per stage through /proc/self/clear_refs.
  bool reset_peak = true;
  // Every enabled module at once in one batch, ignoring stages (STARTUP_MODE=eager):
  // the naive start the staged plan is measured against.
  bool eager = false;
  // Stage order without stage delays, modules together while their predicted
  // peaks fit `startup_budget` (STARTUP_MODE=budgeted).
  bool budgeted = false;
  // STARTUP_MEMORY_BUDGET: what the modules running at once may add together.
  SizeSpec startup_budget = SizeSpec::Share(0.5);
  // MEMORY_MARGIN: kept free below both limits when deciding (decision.h).
  SizeSpec memory_margin = SizeSpec::Share(0.05);
  // FLEET_PEER_WAIT: how long an instance that cannot build waits for a peer.
  std::chrono::milliseconds peer_wait{30'000};
  // Told at each stage, each module state change, each progress report of a
  // module's build, and when the plan finishes. Called from the loader's and
  // the workers' threads, one call at a time per module: must be thread-safe
  // and cheap (no I/O that can block).
  std::function<void(const ProgressNote&)> on_progress;
};

class StagedLoader {
 public:
  // Registers every enabled module's routes as pending on `router` at once.
  // Everything passed by reference must outlive the loader.
  StagedLoader(ModuleList modules, LoaderOptions options, const Config& config, http::Router& router,
               WorkerPool& workers, memory::MemoryProbe& probe, Clock& clock, FleetRunner& fleet);
  ~StagedLoader();  // stop()s

  // The metrics modules register their families in (ModuleContext::metrics);
  // call before start(). Unset, modules see null and serve no metrics of their own.
  void set_metrics(metrics::Metrics* metrics) { metrics_ = metrics; }
  // Starts the plan on the loader's thread. Call once.
  void start();
  // Asks the plan to stop (a running build is told through its stop token), waits
  // for the loader thread, then stops every module that was loaded.
  void stop();
  // Blocks until the plan is finished (every module settled, failed or out of
  // retries) or `timeout` passes; true when finished.
  bool wait_finished(std::chrono::milliseconds timeout);
  bool finished() const;

  std::vector<ModuleReport> modules() const;
  std::vector<StageReport> stages() const;
  // /readyz: ready, and the enabled modules that are not (name: state).
  bool ready(std::vector<std::string>* missing = nullptr) const;
  // /startupz body.
  boost::json::object startupz() const;
  // The fleet's view of the artifact each fleet-shared module last stepped for
  // (modules that never reached their fleet step are left out). Reads the
  // coordination backend once per module: blocking, call from a worker.
  std::vector<ArtifactReport> fleet_artifacts();
  // Per enabled module, the artifact its current inputs name and the fleet's
  // view of it (measured peaks and durations), whether or not it ran here;
  // module builds locally: the local runner's empty view. Reads the fleet.
  std::vector<ArtifactReport> expected_artifacts();
  // The plan as the current configuration would run it, as a table for people:
  // per module its input fingerprint, predicted peaks (and their source), this
  // instance's headroom and the decision it would take now. Reads the fleet.
  std::string plan_text();
  // Warnings about the settings against this machine (an absolute gate above
  // the container limit), one line each, naming the variable.
  std::vector<std::string> setting_warnings();
  // The result as a table for people (logged when the plan finishes).
  std::string summary_table() const;

 private:
  struct Entry;
  class Channel;
  class PeakMeter;
  void run(std::stop_token stop);
  void run_module(Entry& e, std::stop_token stop);
  // The fleet step for the module's inputs now. `refresh`: the module serves an
  // older artifact and keeps its state; false when the inputs did not change.
  Result<bool> fleet_step(Entry& e, std::stop_token stop, bool refresh);
  FleetRunner& runner_for(Entry& e);
  FleetKey key_for(Entry& e, const std::string& inputs);
  uint64_t admission_peak(Entry& e);
  uint64_t limit_now();
  void fold_hwm(uint64_t hwm);
  bool gate_allows(Entry& e, std::string* why);
  void set_state(Entry& e, ModuleState s, std::string reason = {});
  void publish_pending(Entry& e);
  // Tells options_.on_progress what `e` is doing ("stage 1/2: kb building, 45%").
  void note_progress(Entry& e, ModuleState s, int percent = -1);
  int64_t since_start_ms() const;

  LoaderOptions options_;
  const Config& config_;
  http::Router& router_;
  WorkerPool& workers_;
  memory::MemoryProbe& probe_;
  Clock& clock_;
  FleetRunner& fleet_;
  LocalFleetRunner local_fleet_;
  metrics::Metrics* metrics_ = nullptr;
  TimePoint started_at_{};

  mutable std::mutex mu_;
  std::condition_variable finished_cv_;
  std::vector<std::unique_ptr<Entry>> entries_;  // the list is fixed at construction
  std::vector<StageReport> stages_;              // guarded by mu_
  std::vector<int> stage_numbers_;               // the plan's stages in order; guarded by mu_
  bool finished_ = false;                        // guarded by mu_
  bool stopped_ = false;
  // Peak measuring: meters running now, and the highest VmHWM seen this stage
  // before any reset (so per-step resets do not hide the stage's peak).
  std::mutex meter_mu_;
  int meters_active_ = 0;        // guarded by meter_mu_
  uint64_t meter_starts_ = 0;    // guarded by meter_mu_
  uint64_t stage_hwm_ = 0;       // guarded by meter_mu_
  bool can_reset_hwm_ = true;    // guarded by meter_mu_
  std::jthread thread_;
};

// The memory a gate compares against: the container's limit when there is one,
// else `fallback` (MEMORY_LIMIT).
uint64_t limit_base(const memory::MemorySample& sample, uint64_t fallback);

// Resets the process's peak RSS (VmHWM) through /proc/self/clear_refs; false when
// the kernel refuses.
bool reset_peak_rss();

}  // namespace memgate::startup
