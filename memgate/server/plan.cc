// `memgate plan` and `memgate plan --probes`: what start-up would do with this
// configuration, and the Kubernetes probes that follow from it, without
// starting anything. Both build the loader as App::start does (app_options.h)
// and read the fleet (published artifacts, measured peaks and times) when
// Redis answers within a second; neither opens a listener or runs a module.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "memgate/base/clock.h"
#include "memgate/base/units.h"
#include "memgate/base/worker_pool.h"
#include "memgate/coord/coordinator.h"
#include "memgate/http/router.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/server/app.h"
#include "memgate/server/app_options.h"
#include "memgate/server/coord_adapters.h"
#include "memgate/server/modules.h"
#include "memgate/startup/loader.h"

namespace memgate::server {

namespace {

// The loader App::start would build, for looking only: it never runs a
// module. It reads the fleet (published artifacts, measured peaks and times)
// when coordination answers within a second, and never waits in the
// background for it. Owns everything the loader points at, declared in the
// order they must outlive one another.
class LookingLoader {
 public:
  static Result<std::unique_ptr<LookingLoader>> create(const Config& config, const EnvLookup& env,
                                                       bool with_memory_limit) {
    auto modules = builtin_modules(config, env);
    if (!modules.ok()) return modules.status();
    auto out = std::unique_ptr<LookingLoader>(new LookingLoader());
    out->modules_ = *modules;
    coord::CoordinatorOptions co = coordinator_options(config);
    co.background_switch = false;
    co.connect_timeout = std::min(co.connect_timeout, std::chrono::milliseconds(1000));
    if (auto created = coord::Coordinator::create(co); created.ok()) {
      out->coordinator_ = std::move(*created);
      out->fleet_ = std::make_unique<CoordFleetRunner>(*out->coordinator_, config.fleet_wait_bound);
    }
    startup::FleetRunner& runner = out->fleet_ ? static_cast<startup::FleetRunner&>(*out->fleet_) : out->local_;
    startup::LoaderOptions lo = base_loader_options(config, env);
    if (with_memory_limit) lo.memory_limit = heap_limit(config, out->probe_.sample().cgroup.limit.value_or(0));
    out->loader_ = std::make_unique<startup::StagedLoader>(out->modules_, lo, config, out->router_, out->workers_,
                                                           out->probe_, SteadyClock::instance(), runner);
    return out;
  }
  startup::StagedLoader& loader() { return *loader_; }
  const startup::ModuleList& modules() const { return modules_; }
  // Null when coordination did not answer.
  const coord::Coordinator* coordinator() const { return coordinator_.get(); }

 private:
  LookingLoader() = default;
  startup::ModuleList modules_;
  http::Router router_;
  WorkerPool workers_{1};
  memory::SystemMemoryProbe probe_;
  startup::LocalFleetRunner local_;
  std::unique_ptr<coord::Coordinator> coordinator_;
  std::unique_ptr<CoordFleetRunner> fleet_;
  std::unique_ptr<startup::StagedLoader> loader_;
};

}  // namespace

Result<std::string> App::plan(const Config& config, const EnvLookup& env) {
  auto looking = LookingLoader::create(config, env, /*with_memory_limit=*/true);
  if (!looking.ok()) return looking.status();
  const coord::Coordinator* coordinator = (*looking)->coordinator();
  std::string text = "memgate start-up plan (coordination: " +
                     std::string(config.redis_url.empty() ? "local" : redact_url(config.redis_url)) +
                     (coordinator ? std::string(", using ") + std::string(coordinator->backend()) : "") + ")\n";
  text += (*looking)->loader().plan_text();
  text += "scheduler: " + std::string(config.enable_scheduled_jobs ? "on" : "off (ENABLE_SCHEDULED_JOBS=false)") +
          ", starts under " + config.scheduler_heap_gate.to_string() + " of heap\n";
  return text;
}

// The startup probe's budget is the whole expected start-up, so a slow node
// never restarts a pod that is on its way: the core routes (kCoreStart), the
// delays between the enabled modules' stages, and per enabled module its
// longest step: a fleet-shared module may wait FLEET_PEER_WAIT for a peer's
// artifact, then builds and loads. When the fleet measured the module's build
// or load (the longest of the recent ones, read like `plan` reads the fleet),
// that part counts kMargin times it (at least 1 s): a start on a busier node
// or a grown input may be slower. A part without a measured time counts
// kUnmeasuredStep, and a module with neither counts one kUnmeasuredStep for
// "build or load". Start-up itself never needs the probe (/healthz answers
// before any module runs): the budget only keeps the kubelet from killing a
// CPU-starved start.
Result<std::string> App::probes(const Config& config, const EnvLookup& env) {
  using std::chrono::seconds;
  constexpr seconds kCoreStart{5};
  constexpr seconds kUnmeasuredStep{30};
  constexpr int kMargin = 2;
  constexpr int kPeriod = 2;
  // The fleet's measured durations, when coordination answers within a second
  // (as for `plan`); otherwise every step is unmeasured.
  auto looking = LookingLoader::create(config, env, /*with_memory_limit=*/false);
  if (!looking.ok()) return looking.status();
  startup::StagedLoader& loader = (*looking)->loader();
  const startup::ModuleList& modules = (*looking)->modules();
  std::vector<startup::ModuleReport> reports = loader.modules();
  std::map<std::string, startup::FleetView> views;
  for (startup::ArtifactReport& a : loader.expected_artifacts()) views[a.module] = a.view;
  auto secs = [](auto d) { return std::chrono::duration_cast<seconds>(d + std::chrono::milliseconds(999)).count(); };
  auto part = [&](const char* what, const std::optional<std::chrono::milliseconds>& took, seconds* sum) {
    if (!took) {
      *sum += kUnmeasuredStep;
      return std::string(what) + " " + std::to_string(kUnmeasuredStep.count()) + "s, no measured time";
    }
    seconds s = std::max(seconds(1), seconds(secs(*took * kMargin)));
    *sum += s;
    return std::string(what) + " " + std::to_string(s.count()) + "s measured (" + std::to_string(kMargin) + "x " +
           format_duration(*took) + ")";
  };
  seconds total = kCoreStart;
  std::string why = "core routes " + std::to_string(kCoreStart.count()) + "s";
  std::set<int> stages;
  for (size_t i = 0; i < reports.size() && i < modules.size(); ++i) {
    if (reports[i].state == startup::ModuleState::kSkippedFlag) continue;
    stages.insert(reports[i].stage);
    bool shared = modules[i]->fleet().has_value();
    seconds step = shared ? seconds(secs(config.fleet_peer_wait)) : seconds(0);
    std::string parts;
    const startup::FleetView& view = views[reports[i].name];
    if (!view.build_took && !view.load_took) {
      parts = part("build or load", std::nullopt, &step);
    } else {
      parts = part("build", view.build_took, &step);
      parts += " + " + part("load", view.load_took, &step);
    }
    total += step;
    why += " + " + reports[i].name + " " + std::to_string(step.count()) + "s (" +
           (shared ? "FLEET_PEER_WAIT " + format_duration(config.fleet_peer_wait) + " + " : std::string()) + parts +
           ")";
  }
  if (stages.size() > 1 && !config.startup_eager && !config.startup_budgeted) {
    seconds delays = seconds(secs(config.stage_delay * static_cast<int>(stages.size() - 1)));
    total += delays;
    why += " + stage delays " + std::to_string(delays.count()) + "s (" + std::to_string(stages.size() - 1) +
           " x STAGE_DELAY " + format_duration(config.stage_delay) + ")";
  }
  int failures = static_cast<int>((total.count() + kPeriod - 1) / kPeriod);
  std::string port = std::to_string(config.port);
  std::string out = "# memgate plan --probes: startup budget " + std::to_string(total.count()) + "s = " + why + "\n";
  out += "# container port " + port + " is PORT (the public listener); /metrics is on ADMIN_PORT " +
         std::to_string(config.admin_port) + "\n";
  out += "startupProbe:\n  httpGet: {path: /healthz, port: " + port + "}\n  periodSeconds: " +
         std::to_string(kPeriod) + "\n  timeoutSeconds: 1\n  failureThreshold: " + std::to_string(failures) + "\n";
  out += "readinessProbe:\n  httpGet: {path: /readyz, port: " + port +
         "}\n  periodSeconds: 5\n  timeoutSeconds: 2\n  failureThreshold: 1\n";
  out += "livenessProbe:\n  httpGet: {path: /healthz, port: " + port +
         "}\n  periodSeconds: 10\n  timeoutSeconds: 2\n  failureThreshold: 3\n";
  return out;
}

}  // namespace memgate::server
