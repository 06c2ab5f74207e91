// The staged loader. The design goal is a flat memory curve at boot: heavy
// modules never build all at once; each stage ends with a purge so the next one
// starts from what is really live, and every step is measured where people can
// see it (/startupz, the log table, the pending routes' bodies).
//
// Memory comes first. Before a module's fleet step the loader knows its input
// fingerprint (which artifact it needs), its predicted build and load peaks (the
// module's estimate or, when larger, what the fleet measured for that
// fingerprint) and this instance's headroom; decision.h turns those into load,
// build, build within a budget, wait for a peer, or skip, and that question is
// asked again at the moment of each load and build, on a fresh sample. Every
// build and load is measured (VmHWM, reset per step when no other step is being
// measured, else read as an upper bound) and the figures go to the fleet.
//
// One thread drives the plan and only waits; the modules' work runs on the worker
// pool so a batch of several modules builds in parallel. All waiting goes through
// the injected Clock, so the inter-stage delay and the gate retries are driven by
// hand in tests. State lives in Entry objects fixed at construction and guarded
// by one mutex; the route table is updated outside it.
#include "memgate/startup/loader.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>

namespace memgate::startup {

namespace json = boost::json;

struct StagedLoader::Entry {
  std::shared_ptr<Module> module;
  bool enabled = true;
  std::vector<RouteDecl> routes;
  std::optional<SizeSpec> gate;
  std::optional<FleetSpec> fleet;
  std::string flag_text;  // "ENABLE_KB_SERVICE=false"
  ModuleReport report;    // guarded by StagedLoader::mu_
  bool loaded = false;    // load() succeeded: stop() must be called
  std::mutex step_mu;     // one fleet step of this module at a time (start-up, refreshes)
  std::string serving;    // input fingerprint text of the artifact it serves; guarded by StagedLoader::mu_
  std::optional<FleetKey> key;  // of the last fleet step; guarded by StagedLoader::mu_
  std::string served_fingerprint;  // of the artifact it serves; guarded by StagedLoader::mu_
  std::unique_ptr<Channel> channel;
  // The estimate admission read, kept for the step that follows so the module
  // (a corpus scan, for the kb) is asked once; guarded by step_mu.
  std::optional<PeakEstimate> admitted;
};

class StagedLoader::Channel final : public ArtifactChannel {
 public:
  Channel(StagedLoader& loader, Entry& entry) : loader_(loader), entry_(entry) {}
  std::string serving() const override {
    std::lock_guard lock(loader_.mu_);
    return entry_.serving;
  }
  Result<bool> refresh(std::stop_token stop) override {
    std::lock_guard step(entry_.step_mu);
    if (!entry_.loaded) return FailedPrecondition("module " + entry_.report.name + " is not serving yet");
    return loader_.fleet_step(entry_, stop, true);
  }

 private:
  StagedLoader& loader_;
  Entry& entry_;
};

// Measures one step's peak: RSS above the RSS at its start, from VmHWM. When
// another step ran at any moment of this one, the reading is the whole
// process's and only an upper bound for this step: shared() says so, and such a
// reading is reported but not published as the step's cost.
class StagedLoader::PeakMeter {
 public:
  explicit PeakMeter(StagedLoader& l) : l_(l) {
    memory::MemorySample s = l_.probe_.sample();
    std::lock_guard lock(l_.meter_mu_);
    l_.stage_hwm_ = std::max(l_.stage_hwm_, s.process.peak_rss);
    // Resetting while another step is measured would hide that step's peak.
    if (l_.meters_active_ == 0 && l_.can_reset_hwm_ && l_.options_.reset_peak) {
      l_.can_reset_hwm_ = reset_peak_rss();
    }
    shared_ = l_.meters_active_ > 0;
    ++l_.meters_active_;
    starts_seen_ = ++l_.meter_starts_;
    rss_before_ = s.process.rss;
  }
  // The step's peak so far; ends the measurement on first call.
  uint64_t finish() {
    memory::MemorySample s = l_.probe_.sample();
    std::lock_guard lock(l_.meter_mu_);
    if (!done_) {
      done_ = true;
      --l_.meters_active_;
      if (l_.meter_starts_ != starts_seen_) shared_ = true;  // another step started meanwhile
    }
    l_.stage_hwm_ = std::max(l_.stage_hwm_, s.process.peak_rss);
    uint64_t top = std::max(s.process.peak_rss, s.process.rss);
    return top > rss_before_ ? top - rss_before_ : 0;
  }
  bool shared() const { return shared_; }
  ~PeakMeter() {
    if (!done_) (void)finish();
  }

 private:
  StagedLoader& l_;
  uint64_t rss_before_ = 0;
  uint64_t starts_seen_ = 0;
  bool shared_ = false;
  bool done_ = false;
};

std::string_view module_state_name(ModuleState state) {
  switch (state) {
    case ModuleState::kPending: return "pending";
    case ModuleState::kGated: return "gated";
    case ModuleState::kWaitingForLock: return "waiting_for_lock";
    case ModuleState::kWaitingForPeer: return "waiting_for_peer";
    case ModuleState::kBuilding: return "building";
    case ModuleState::kLoadingArtifact: return "loading_artifact";
    case ModuleState::kReady: return "ready";
    case ModuleState::kSkippedFlag: return "skipped(flag)";
    case ModuleState::kSkippedMemory: return "skipped(memory)";
    case ModuleState::kFailed: return "failed";
  }
  return "unknown";
}

bool is_settled(ModuleState state) {
  return state == ModuleState::kReady || state == ModuleState::kSkippedFlag ||
         state == ModuleState::kSkippedMemory;
}

uint64_t limit_base(const memory::MemorySample& sample, uint64_t fallback) {
  if (sample.cgroup.limit && *sample.cgroup.limit > 0) return *sample.cgroup.limit;
  return fallback;
}

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

StagedLoader::StagedLoader(ModuleList modules, LoaderOptions options, const Config& config,
                           http::Router& router, WorkerPool& workers, memory::MemoryProbe& probe, Clock& clock,
                           FleetRunner& fleet)
    : options_(std::move(options)),
      config_(config),
      router_(router),
      workers_(workers),
      probe_(probe),
      clock_(clock),
      fleet_(fleet) {
  if (options_.batch_size < 1) options_.batch_size = 1;
  for (auto& m : modules) {
    auto e = std::make_unique<Entry>();
    e->module = m;
    e->routes = m->routes();
    e->gate = m->memory_gate();
    e->fleet = m->fleet();
    e->report.name = m->name();
    e->report.stage = m->stage();
    e->channel = std::make_unique<Channel>(*this, *e);
    FlagSpec flag = m->flag();
    if (!flag.env.empty()) {
      bool on = flag.default_on;
      std::optional<std::string> text = options_.env ? options_.env(flag.env) : std::nullopt;
      if (text) {
        auto parsed = parse_bool(*text);
        on = parsed.ok() ? *parsed : flag.default_on;
        if (!parsed.ok())
          spdlog::warn("{}='{}' is not a boolean; module {} uses its default ({})", flag.env, *text, m->name(),
                       flag.default_on);
      }
      e->enabled = on;
      e->flag_text = flag.env + "=" + (on ? "true" : "false");
    }
    if (!e->enabled) {
      e->report.state = ModuleState::kSkippedFlag;
      e->report.reason = e->flag_text;
    }
    entries_.push_back(std::move(e));
  }
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const auto& a, const auto& b) { return a->report.stage < b->report.stage; });
  for (auto& e : entries_) publish_pending(*e);
}

StagedLoader::~StagedLoader() { stop(); }

int64_t StagedLoader::since_start_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - started_at_).count();
}

void StagedLoader::publish_pending(Entry& e) {
  ModuleState state;
  std::string reason;
  {
    std::lock_guard lock(mu_);
    state = e.report.state;
    reason = e.report.reason;
  }
  if (state == ModuleState::kReady) return;  // load() installed the real handlers
  for (const RouteDecl& r : e.routes) {
    if (state == ModuleState::kSkippedFlag) {
      std::string message = "module " + e.report.name + " is disabled (" + e.flag_text + ")";
      (void)router_.add(r.method, r.pattern, [message](const http::Request&) {
        return http::Response::error(404, "module_disabled", message);
      });
      continue;
    }
    http::Pending p;
    p.module = e.report.name;
    p.state = std::string(module_state_name(state));
    p.retry_after_seconds = state == ModuleState::kGated ? static_cast<int>(std::max<int64_t>(
                                                               1, options_.gate_retry_interval.count() / 1000))
                                                         : 2;
    p.message = "module " + e.report.name + " is " + p.state + (reason.empty() ? "" : ": " + reason);
    (void)router_.add_pending(r.method, r.pattern, std::move(p));
  }
}

void StagedLoader::set_state(Entry& e, ModuleState s, std::string reason) {
  {
    std::lock_guard lock(mu_);
    bool changed = e.report.state != s;
    e.report.state = s;
    e.report.reason = std::move(reason);
    if (changed && started_at_ != TimePoint{}) {
      PhaseMark mark{s, since_start_ms()};
      if (e.report.phases.size() < kMaxPhaseMarks) e.report.phases.push_back(mark);
      else e.report.phases.back() = mark;
    }
  }
  spdlog::debug("module {}: {}", e.report.name, module_state_name(s));
  publish_pending(e);
  note_progress(e, s);
}

void StagedLoader::note_progress(Entry& e, ModuleState s, int percent) {
  if (!options_.on_progress) return;
  ProgressNote n;
  {
    std::lock_guard lock(mu_);
    auto it = std::find(stage_numbers_.begin(), stage_numbers_.end(), e.report.stage);
    size_t index = it == stage_numbers_.end() ? 0 : static_cast<size_t>(it - stage_numbers_.begin());
    // One pass (eager, budgeted) has one stage for every module.
    if (it != stage_numbers_.end() || stage_numbers_.size() == 1)
      n.text = "stage " + std::to_string(index + 1) + "/" + std::to_string(stage_numbers_.size()) + ": ";
  }
  n.text += e.report.name + " " + std::string(module_state_name(s));
  if (percent >= 0) n.text += ", " + std::to_string(std::clamp(percent, 0, 100)) + "%";
  n.long_step = s == ModuleState::kBuilding || s == ModuleState::kLoadingArtifact ||
                s == ModuleState::kWaitingForLock || s == ModuleState::kWaitingForPeer;
  if (s == ModuleState::kWaitingForPeer) n.expected = options_.peer_wait;
  options_.on_progress(n);
}

bool StagedLoader::gate_allows(Entry& e, std::string* why) {
  if (options_.refuse_optional_init && options_.refuse_optional_init()) {
    *why = "the memory guard refuses optional initialisation";
    return false;
  }
  if (!e.gate) return true;
  memory::MemorySample s = probe_.sample();
  uint64_t limit = e.gate->resolve(limit_base(s, options_.memory_limit));
  uint64_t heap = s.allocator.available ? s.allocator.allocated : s.process.rss;
  if (heap >= limit) {
    *why = "heap " + format_bytes(heap) + " is at or above the gate " + format_bytes(limit) +
           (e.gate->is_share ? " (" + e.gate->to_string() + " of the limit)" : "");
    return false;
  }
  return true;
}

FleetRunner& StagedLoader::runner_for(Entry& e) { return e.fleet ? fleet_ : local_fleet_; }

FleetKey StagedLoader::key_for(Entry& e, const std::string& inputs) {
  FleetSpec spec;
  if (e.fleet) spec = *e.fleet;
  else spec.lock_key = "local:" + e.report.name;
  return make_fleet_key(spec, inputs);
}

uint64_t StagedLoader::limit_now() { return limit_base(probe_.sample(), options_.memory_limit); }

// What the module may add while it runs, for admission under the start-up
// budget: its predicted build (or load, when larger), from the estimate only so
// no fleet read delays the plan.
uint64_t StagedLoader::admission_peak(Entry& e) {
  try {
    PeakEstimate est = e.module->estimate_peaks();
    std::lock_guard step(e.step_mu);
    e.admitted = est;
    return std::max(est.build, est.load);
  } catch (...) {
    return 0;
  }
}

void StagedLoader::run_module(Entry& e, std::stop_token stop) {
  std::lock_guard step(e.step_mu);
  std::string why;
  {
    std::lock_guard lock(mu_);
    ++e.report.gate_attempts;
  }
  if (!gate_allows(e, &why)) {
    spdlog::info("module {}: gated: {}", e.report.name, why);
    set_state(e, ModuleState::kGated, why);
    return;
  }
  memory::MemorySample before = probe_.sample();
  {
    std::lock_guard lock(mu_);
    e.report.started_ms = since_start_ms();
  }
  Result<bool> done = Internal("not run");
  try {
    done = fleet_step(e, stop, false);
  } catch (const std::exception& ex) {
    done = Internal(std::string("threw: ") + ex.what());
  } catch (...) {
    done = Internal("threw a non-exception");
  }
  memory::MemorySample after = probe_.sample();
  {
    std::lock_guard lock(mu_);
    e.report.finished_ms = since_start_ms();
    e.report.heap_delta = static_cast<int64_t>(after.allocator.allocated) - static_cast<int64_t>(before.allocator.allocated);
    e.report.rss_delta = static_cast<int64_t>(after.process.rss) - static_cast<int64_t>(before.process.rss);
  }
  if (done.ok()) {
    set_state(e, ModuleState::kReady);
    ModuleReport r;
    {
      std::lock_guard lock(mu_);
      r = e.report;
    }
    spdlog::info("module {}: ready ({}, artifact by {}, {} ms; inputs {}, predicted build {} / load {}, measured build "
                 "{} / load {})",
                 r.name, r.outcome, r.built_by.empty() ? "?" : r.built_by, r.finished_ms - r.started_ms, r.fingerprint,
                 format_bytes(r.predicted_build), format_bytes(r.predicted_load), format_bytes(r.build_peak),
                 format_bytes(r.load_peak));
  } else if (done.status().code() == Code::kResourceExhausted) {
    // Nothing fits now: like a closed gate, retried under the gate policy.
    {
      std::lock_guard lock(mu_);
      ++e.report.memory_refusals;
    }
    spdlog::warn("module {}: not loaded for lack of memory: {}", e.report.name, done.status().message());
    set_state(e, ModuleState::kGated, done.status().message());
  } else if (stop.stop_requested() && done.status().code() == Code::kCancelled) {
    // Shutdown ended a wait (for a lock, a peer's artifact): not a failure.
    spdlog::info("module {}: stopped before it was ready (shutting down): {}", e.report.name,
                 done.status().message());
  } else {
    spdlog::error("module {}: failed: {}", e.report.name, done.status().to_string());
    set_state(e, ModuleState::kFailed, done.status().to_string());
  }
}

Result<bool> StagedLoader::fleet_step(Entry& e, std::stop_token stop, bool refresh) {
  std::string inputs = e.module->input_fingerprint();
  if (refresh) {
    std::lock_guard lock(mu_);
    if (inputs == e.serving) return false;
  }
  FleetRunner& runner = runner_for(e);
  FleetKey key = key_for(e, inputs);
  FleetView view = runner.view(key);
  PeakEstimate estimate = !refresh && e.admitted ? *e.admitted : e.module->estimate_peaks();
  e.admitted.reset();
  Prediction pred = predict(estimate, view);
  const bool peers = e.fleet && runner.has_peers();
  {
    std::lock_guard lock(mu_);
    e.report.decision_path.clear();
    e.report.decision.clear();
    e.report.fingerprint = key.fingerprint;
    e.report.inputs = key.inputs;
    if (e.fleet) e.key = key;
    e.report.predicted_build = pred.build;
    e.report.predicted_load = pred.load;
    e.report.build_source = pred.build_source;
    e.report.load_source = pred.load_source;
  }
  auto state = [&](ModuleState s) {
    if (!refresh) set_state(e, s);
  };

  ModuleContext ctx{config_, router_, workers_, stop, 0, e.channel.get(), options_.instance_id, metrics_};
  if (!refresh && options_.on_progress) {
    // A module may report far more often than anyone reads: a new percentage
    // is passed on at most once a second (the first one at once).
    ctx.progress = [this, &e, last = -1, at = TimePoint{}](int percent) mutable {
      TimePoint now = clock_.now();
      if (percent == last || (last >= 0 && now - at < std::chrono::seconds(1))) return;
      last = percent;
      at = now;
      note_progress(e, ModuleState::kBuilding, percent);
    };
  }
  bool peer_wait_over = false;
  bool asked_to_wait = false;
  uint64_t budget = 0;
  // Asks decision.h on a fresh sample; records what it said.
  auto verdict = [&](bool published) {
    Headroom h = compute_headroom(probe_.sample(), options_.memory_limit, options_.memory_margin);
    Verdict v = decide(pred, h, published, peers, peer_wait_over);
    std::lock_guard lock(mu_);
    e.report.headroom = h.bytes;
    std::string name(decision_name(v.decision));
    if (e.report.decision != name) {
      // Every decision of this step, in order: "wait for a peer, load".
      size_t tail = e.report.decision_path.rfind(", ");
      std::string last = tail == std::string::npos ? e.report.decision_path : e.report.decision_path.substr(tail + 2);
      if (last != name) e.report.decision_path += (e.report.decision_path.empty() ? "" : ", ") + name;
    }
    e.report.decision = name;
    return v;
  };
  std::string built_by;
  uint64_t artifact_bytes = 0;
  uint64_t build_peak = 0;
  uint64_t load_peak = 0;
  FleetCallbacks cb;
  cb.peer_wait = options_.peer_wait;
  cb.stop = stop;
  cb.may_load = [&](const ArtifactInfo&) -> Status {
    Verdict v = verdict(true);
    if (v.decision == Decision::kLoad) return Status::Ok();
    return ResourceExhausted(v.reason);
  };
  cb.may_build = [&]() -> Status {
    Verdict v = verdict(false);
    switch (v.decision) {
      case Decision::kBuild: budget = 0; return Status::Ok();
      case Decision::kBuildWithinBudget:
        budget = v.budget;
        spdlog::info("module {}: {}", e.report.name, v.reason);
        return Status::Ok();
      case Decision::kWaitForPeer:
        if (!asked_to_wait)
          spdlog::info("module {}: {}: waiting up to {} for another instance's artifact", e.report.name, v.reason,
                       format_duration(options_.peer_wait));
        asked_to_wait = true;
        if (!refresh) set_state(e, ModuleState::kWaitingForPeer, v.reason);
        return Unavailable(v.reason);
      case Decision::kLoad:  // published meanwhile: the runner reads it again
        return Unavailable("an artifact was published");
      case Decision::kSkip: break;
    }
    return ResourceExhausted(v.reason);
  };
  cb.build = [&](uint64_t* measured) -> Result<ChunkedBytes> {
    state(ModuleState::kBuilding);
    ctx.memory_budget = budget;
    {
      std::lock_guard lock(mu_);
      e.report.build_budget = budget;
    }
    PeakMeter meter(*this);
    TimePoint began = clock_.now();
    Result<ChunkedBytes> artifact = e.module->build(ctx);
    build_peak = meter.finish();
    // The duration is published whatever the budget or a neighbour did: a
    // slower build only makes the probe budget derived from it longer. The
    // peak goes with the artifact (ArtifactInfo::build_peak), not here.
    if (artifact.ok())
      runner.record_peak(key, true, 0, std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - began));
    // A budgeted build's peak says what the budget allowed, not what an
    // unbounded build costs, and a build that ran beside another measured
    // both: neither is published as the build's cost.
    *measured = budget == 0 && !meter.shared() ? build_peak : 0;
    return artifact;
  };
  cb.load = [&](ByteSource& bytes, const ArtifactInfo& info, bool fresh) -> Status {
    state(ModuleState::kLoadingArtifact);
    // What a build freed is still the allocator's until purged: a load that
    // starts on top of it can cross a limit the build kept to.
    if (fresh) (void)probe_.purge();
    built_by = fresh ? options_.instance_id : info.builder;
    artifact_bytes = info.size;
    PeakMeter meter(*this);
    TimePoint began = clock_.now();
    Status st = e.module->load(bytes, ctx);
    load_peak = meter.finish();
    if (st.ok()) {
      e.loaded = true;
      runner.record_peak(key, false, meter.shared() ? 0 : load_peak,
                         std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - began));
    }
    return st;
  };
  cb.on_state = [&](std::string_view s) {
    if (s == "waiting_for_lock") state(ModuleState::kWaitingForLock);
  };

  Result<FleetOutcome> outcome = runner.run(key, cb);
  if (!outcome.ok() && asked_to_wait && !stop.stop_requested() &&
      (outcome.status().code() == Code::kUnavailable || outcome.status().code() == Code::kResourceExhausted)) {
    // No peer published within the wait: build within a budget if one fits.
    peer_wait_over = true;
    outcome = runner.run(key, cb);
  }
  if (!outcome.ok() && outcome.status().code() == Code::kUnavailable && asked_to_wait)
    outcome = ResourceExhausted(outcome.status().message());
  {
    std::lock_guard lock(mu_);
    if (build_peak) e.report.build_peak = build_peak;
    if (load_peak) e.report.load_peak = load_peak;
    if (outcome.ok()) {
      e.report.outcome = std::string(fleet_outcome_name(*outcome));
      e.report.built_by = built_by;
      e.report.artifact_bytes = artifact_bytes;
      e.serving = inputs;
      e.served_fingerprint = key.fingerprint;
      if (refresh) ++e.report.refreshes;
    }
  }
  if (!outcome.ok()) return outcome.status();
  if (refresh)
    spdlog::info("module {}: refreshed to the artifact of inputs {} ({}, by {})", e.report.name, key.fingerprint,
                 fleet_outcome_name(*outcome), built_by.empty() ? "?" : built_by);
  return true;
}

void StagedLoader::start() {
  started_at_ = clock_.now();
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void StagedLoader::run(std::stop_token stop) {
  std::set<int> stage_numbers;
  for (auto& e : entries_)
    if (e->enabled) stage_numbers.insert(e->report.stage);
  const bool one_pass = options_.eager || options_.budgeted;
  size_t batch_cap = one_pass ? entries_.size() : static_cast<size_t>(options_.batch_size);
  if (one_pass && !stage_numbers.empty()) stage_numbers = {*stage_numbers.begin()};
  for (const std::string& w : setting_warnings()) spdlog::warn("{}", w);
  {
    std::lock_guard lock(mu_);
    stage_numbers_.assign(stage_numbers.begin(), stage_numbers.end());
  }

  size_t stage_index = 0;
  for (int stage : stage_numbers) {
    if (stop.stop_requested()) break;
    StageReport sr;
    sr.stage = stage;
    sr.started_ms = since_start_ms();
    bool cleared = options_.reset_peak && reset_peak_rss();
    sr.peak_method = cleared ? "clear_refs" : "hwm_delta";
    uint64_t hwm_before = probe_.sample().process.peak_rss;
    {
      std::lock_guard lock(meter_mu_);
      stage_hwm_ = 0;
      can_reset_hwm_ = cleared;
    }

    std::vector<Entry*> todo;
    for (auto& e : entries_)
      if (e->enabled && (e->report.stage == stage || one_pass)) {
        todo.push_back(e.get());
        sr.modules.push_back(e->report.name);
      }
    std::string names;
    for (auto& n : sr.modules) names += (names.empty() ? "" : ", ") + n;
    spdlog::info("stage {}: {} module(s): {}", stage, todo.size(), names);
    if (options_.on_progress)
      options_.on_progress({"stage " + std::to_string(stage_index + 1) + "/" + std::to_string(stage_numbers.size()) +
                                ": " + names,
                            false, std::chrono::milliseconds(0), false});
    // Batches: at most batch_cap modules, and (except eager) no more together
    // than their predicted peaks fit in the start-up budget; one always runs.
    // The budget caps the process: what it holds now (sampled before each
    // batch, after a purge of what the previous batch freed) plus what the
    // batch's modules are predicted to add.
    const uint64_t budget = options_.startup_budget.resolve(limit_now());
    for (size_t i = 0; i < todo.size() && !stop.stop_requested();) {
      std::vector<std::future<void>> batch;
      const uint64_t held = i > 0 && !options_.eager ? (probe_.purge(), probe_.sample().process.rss)
                                                     : probe_.sample().process.rss;
      const uint64_t room = budget > held ? budget - held : 0;
      uint64_t sum = 0;
      size_t j = i;
      for (; j < todo.size() && batch.size() < batch_cap; ++j) {
        uint64_t peak = admission_peak(*todo[j]);
        if (!batch.empty() && !options_.eager && sum + peak > room) break;
        sum += peak;
        batch.push_back(workers_.submit_priority([this, entry = todo[j], stop] { run_module(*entry, stop); }));
      }
      if (batch.size() > 1)
        spdlog::info("stage {}: {} modules at once (predicted {} above the {} held, of a {} start-up budget)", stage,
                     batch.size(), format_bytes(sum), format_bytes(held), format_bytes(budget));
      for (auto& f : batch) f.wait();
      i = j;
    }

    // The high-water mark is read before the purge too: the kernel may not
    // account pages that a purge hands back (MADV_DONTNEED) into it.
    uint64_t hwm_end = probe_.sample().process.peak_rss;
    memory::PurgeResult purge = probe_.purge();
    memory::MemorySample after = probe_.sample();
    hwm_end = std::max(hwm_end, after.process.peak_rss);
    {
      std::lock_guard lock(meter_mu_);
      hwm_end = std::max(hwm_end, stage_hwm_);  // peaks seen before a step's reset
    }
    sr.purge_released = purge.released();
    sr.heap_after = after.allocator.allocated;
    sr.rss_after = after.process.rss;
    sr.peak_rss = cleared ? hwm_end : (hwm_end > hwm_before ? hwm_end - hwm_before : 0);
    sr.duration_ms = since_start_ms() - sr.started_ms;
    spdlog::info("stage {} done in {} ms: heap {}, RSS {}, stage peak {} ({}), purge released {}", stage,
                 sr.duration_ms, format_bytes(sr.heap_after), format_bytes(sr.rss_after), format_bytes(sr.peak_rss),
                 sr.peak_method, format_bytes(static_cast<uint64_t>(std::max<int64_t>(0, sr.purge_released))));
    {
      std::lock_guard lock(mu_);
      stages_.push_back(sr);
    }
    if (++stage_index < stage_numbers.size() && options_.stage_delay.count() > 0)
      clock_.sleep_for(options_.stage_delay, stop);
  }

  // Gated modules: retried while memory may have come down, a bounded number of times.
  auto gated = [&] {
    std::vector<Entry*> out;
    std::lock_guard lock(mu_);
    for (auto& e : entries_)
      if (e->report.state == ModuleState::kGated) out.push_back(e.get());
    return out;
  };
  for (int attempt = 1; attempt <= options_.gate_retries && !stop.stop_requested(); ++attempt) {
    std::vector<Entry*> waiting = gated();
    if (waiting.empty()) break;
    if (!clock_.sleep_for(options_.gate_retry_interval, stop)) break;
    for (Entry* e : waiting) {
      if (stop.stop_requested()) break;
      workers_.submit_priority([this, e, stop] { run_module(*e, stop); }).wait();
    }
    (void)probe_.purge();
  }
  for (Entry* e : gated()) {
    std::string reason;
    {
      std::lock_guard lock(mu_);
      reason = e->report.reason + " (gave up after " + std::to_string(e->report.gate_attempts) + " tries)";
    }
    set_state(*e, ModuleState::kSkippedMemory, reason);
  }

  // Told before finished() turns true, so whoever waits for the end has heard it.
  if (options_.on_progress && !stop.stop_requested()) {
    std::string text;
    for (const ModuleReport& m : modules())
      text += (text.empty() ? "" : ", ") + m.name + " " + std::string(module_state_name(m.state));
    options_.on_progress({"start-up plan finished: " + (text.empty() ? std::string("no modules") : text), false,
                          std::chrono::milliseconds(0), true});
  }
  {
    std::lock_guard lock(mu_);
    finished_ = true;
  }
  finished_cv_.notify_all();
  if (!stop.stop_requested()) spdlog::info("start-up plan finished\n{}", summary_table());
}

void StagedLoader::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  for (auto& e : entries_)
    if (e->loaded) e->module->stop();
}

bool StagedLoader::wait_finished(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return finished_cv_.wait_for(lock, timeout, [&] { return finished_; });
}

bool StagedLoader::finished() const {
  std::lock_guard lock(mu_);
  return finished_;
}

std::vector<ModuleReport> StagedLoader::modules() const {
  std::lock_guard lock(mu_);
  std::vector<ModuleReport> out;
  for (auto& e : entries_) out.push_back(e->report);
  return out;
}

std::vector<StageReport> StagedLoader::stages() const {
  std::lock_guard lock(mu_);
  return stages_;
}

bool StagedLoader::ready(std::vector<std::string>* missing) const {
  std::lock_guard lock(mu_);
  bool all = true;
  for (auto& e : entries_) {
    if (!e->enabled || is_settled(e->report.state)) continue;
    all = false;
    if (missing) missing->push_back(e->report.name + ": " + std::string(module_state_name(e->report.state)));
  }
  return all;
}

json::object StagedLoader::startupz() const {
  std::vector<ModuleReport> mods = modules();
  std::vector<StageReport> sts = stages();
  std::vector<std::string> missing;
  bool is_ready = ready(&missing);
  json::array modules_json;
  for (const ModuleReport& m : mods) {
    json::object o{{"name", m.name},
                   {"stage", m.stage},
                   {"state", module_state_name(m.state)},
                   {"reason", m.reason},
                   {"outcome", m.outcome},
                   {"built_by", m.built_by},
                   {"gate_attempts", m.gate_attempts},
                   {"started_ms", m.started_ms},
                   {"finished_ms", m.finished_ms},
                   {"duration_ms", m.finished_ms >= 0 ? m.finished_ms - m.started_ms : -1},
                   {"heap_delta_bytes", m.heap_delta},
                   {"rss_delta_bytes", m.rss_delta},
                   {"artifact_bytes", m.artifact_bytes},
                   {"fingerprint", m.fingerprint},
                   {"inputs", m.inputs},
                   {"memory",
                    json::object{{"predicted_build_bytes", m.predicted_build},
                                 {"predicted_load_bytes", m.predicted_load},
                                 {"build_prediction_source", m.build_source},
                                 {"load_prediction_source", m.load_source},
                                 {"headroom_bytes", m.headroom},
                                 {"decision", m.decision},
                                 {"decisions", m.decision_path},
                                 {"build_budget_bytes", m.build_budget},
                                 {"measured_build_peak_bytes", m.build_peak},
                                 {"measured_load_peak_bytes", m.load_peak},
                                 {"refusals", m.memory_refusals}}},
                   {"refreshes", m.refreshes}};
    json::array phases;
    for (const PhaseMark& p : m.phases)
      phases.push_back(json::object{{"state", module_state_name(p.state)}, {"at_ms", p.at_ms}});
    o["phases"] = std::move(phases);
    modules_json.push_back(std::move(o));
  }
  json::array stages_json;
  for (const StageReport& s : sts) {
    json::array names;
    for (auto& n : s.modules) names.push_back(json::string(n));
    stages_json.push_back(json::object{{"stage", s.stage},
                                       {"modules", std::move(names)},
                                       {"started_ms", s.started_ms},
                                       {"duration_ms", s.duration_ms},
                                       {"heap_after_bytes", s.heap_after},
                                       {"rss_after_bytes", s.rss_after},
                                       {"peak_rss_bytes", s.peak_rss},
                                       {"peak_method", s.peak_method},
                                       {"purge_released_bytes", s.purge_released}});
  }
  json::array missing_json;
  for (auto& m : missing) missing_json.push_back(json::string(m));
  uint64_t startup_peak = 0;
  for (const StageReport& s : sts) startup_peak = std::max(startup_peak, s.peak_rss);
  return json::object{{"instance", options_.instance_id},
                      {"startup_peak_rss_bytes", startup_peak},
                      {"finished", finished()},
                      {"ready", is_ready},
                      {"missing", std::move(missing_json)},
                      {"elapsed_ms", started_at_ == TimePoint{} ? 0 : since_start_ms()},
                      {"mode", options_.eager ? "eager" : (options_.budgeted ? "budgeted" : "staged")},
                      {"stage_delay_ms", options_.stage_delay.count()},
                      {"batch_size", options_.batch_size},
                      {"stages", std::move(stages_json)},
                      {"modules", std::move(modules_json)}};
}

namespace {

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string signed_bytes(int64_t v) {
  return (v < 0 ? "-" : "+") + format_bytes(static_cast<uint64_t>(v < 0 ? -v : v));
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  std::ostringstream out;
  for (auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) line += pad(row[i], widths[i] + 2);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
  return out.str();
}

}  // namespace

std::vector<std::string> StagedLoader::setting_warnings() {
  std::vector<std::string> out;
  memory::MemorySample s = probe_.sample();
  if (!s.cgroup.limit) return out;
  for (auto& e : entries_) {
    if (!e->enabled || !e->gate || e->gate->is_share || e->gate->bytes < *s.cgroup.limit) continue;
    std::string setting = e->module->memory_gate_setting();
    out.push_back((setting.empty() ? "the memory gate of module " + e->report.name : setting) + "=" +
                  e->gate->to_string() + " is at or above the container's memory limit (" +
                  format_bytes(*s.cgroup.limit) + "): it never closes; give a share such as 50% instead");
  }
  return out;
}

std::string StagedLoader::plan_text() {
  std::vector<std::vector<std::string>> rows{{"stage", "module", "enabled", "memory gate", "fleet lock (ttl)", "done flag (ttl)", "routes"}};
  std::vector<std::vector<std::string>> memory_rows{
      {"module", "inputs", "predicted build", "predicted load", "headroom", "decision"}};
  memory::MemorySample sample = probe_.sample();
  Headroom room = compute_headroom(sample, options_.memory_limit, options_.memory_margin);
  std::vector<Entry*> all;
  {
    std::lock_guard lock(mu_);
    for (auto& e : entries_) all.push_back(e.get());
  }
  for (Entry* e : all) {
    std::string routes;
    for (auto& r : e->routes) routes += (routes.empty() ? "" : " ") + std::string(http::method_name(r.method)) + " " + r.pattern;
    rows.push_back({std::to_string(e->report.stage), e->report.name,
                    e->enabled ? (e->flag_text.empty() ? "always" : e->flag_text) : "no (" + e->flag_text + ")",
                    e->gate ? e->gate->to_string() : "-",
                    e->fleet ? e->fleet->lock_key + "@<inputs> (" + format_duration(e->fleet->lock_ttl) + ")" : "- (builds locally)",
                    e->fleet ? e->fleet->lock_key + "@<inputs>:done (" + format_duration(e->fleet->done_ttl) + ")" : "-",
                    routes.empty() ? "-" : routes});
    if (!e->enabled) continue;
    std::string inputs;
    PeakEstimate est;
    try {
      inputs = e->module->input_fingerprint();
      est = e->module->estimate_peaks();
    } catch (const std::exception& ex) {
      memory_rows.push_back({e->report.name, std::string("error: ") + ex.what(), "-", "-", "-", "-"});
      continue;
    }
    FleetKey key = key_for(*e, inputs);
    FleetRunner& runner = runner_for(*e);
    FleetView view = runner.view(key);
    Prediction p = predict(est, view);
    Verdict v = decide(p, room, view.published, e->fleet && runner.has_peers(), false);
    std::string decision(decision_name(v.decision));
    if (v.decision == Decision::kLoad) decision = "load " + (view.artifact.builder.empty() ? std::string("the fleet's") : view.artifact.builder + "'s") + " artifact";
    if (!view.reachable) decision += " (fleet not reachable: as if alone)";
    if (!v.reason.empty()) decision += ": " + v.reason;
    auto peak = [](uint64_t b, const std::string& src) { return b ? "~" + format_bytes(b) + " (" + src + ")" : "unknown"; };
    auto took = [](const std::optional<std::chrono::milliseconds>& t) {
      return t ? ", took up to " + format_duration(*t) + " (fleet)" : std::string();
    };
    memory_rows.push_back(
        {e->report.name, key.fingerprint + (key.inputs.empty() ? "" : " (" + key.inputs.substr(0, 40) + ")"),
         peak(p.build, p.build_source) +
             (p.min_build_budget ? ", budgeted >= " + format_bytes(p.min_build_budget) : "") + took(view.build_took),
         peak(p.load, p.load_source) + took(view.load_took), format_bytes(room.bytes), decision});
  }
  std::string mode = options_.eager ? "eager" : (options_.budgeted ? "budgeted" : "staged");
  std::string head = "mode " + mode + ", stage delay " + format_duration(options_.stage_delay) + ", batch size " +
                     std::to_string(options_.batch_size) + ", start-up memory budget " +
                     format_bytes(options_.startup_budget.resolve(limit_base(sample, options_.memory_limit))) +
                     ", gate retries " + std::to_string(options_.gate_retries) + " every " +
                     format_duration(options_.gate_retry_interval) + "\n" + "headroom now " + room.describe() + "\n";
  std::string out = head + table(rows) + "\n" + table(memory_rows);
  for (const std::string& w : setting_warnings()) out += "warning: " + w + "\n";
  return out;
}

std::vector<ArtifactReport> StagedLoader::expected_artifacts() {
  std::vector<ArtifactReport> out;
  std::vector<Entry*> all;
  {
    std::lock_guard lock(mu_);
    for (auto& e : entries_)
      if (e->enabled) all.push_back(e.get());
  }
  for (Entry* e : all) {
    ArtifactReport r;
    r.module = e->report.name;
    try {
      r.inputs = e->module->input_fingerprint();
    } catch (const std::exception&) {
      out.push_back(std::move(r));  // nothing known of it: the caller assumes the worst
      continue;
    }
    FleetKey key = key_for(*e, r.inputs);
    r.name = key.name();
    r.fingerprint = key.fingerprint;
    r.inputs = key.inputs;
    r.view = runner_for(*e).view(key);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<ArtifactReport> StagedLoader::fleet_artifacts() {
  std::vector<ArtifactReport> out;
  for (auto& e : entries_) {
    ArtifactReport r;
    FleetKey key;
    {
      std::lock_guard lock(mu_);
      if (!e->key) continue;
      r.module = e->report.name;
      r.name = e->key->name();
      r.fingerprint = e->key->fingerprint;
      r.inputs = e->key->inputs;
      r.serving = e->served_fingerprint == e->key->fingerprint;
      key = *e->key;
    }
    r.view = fleet_.view(key);
    out.push_back(std::move(r));
  }
  return out;
}

std::string StagedLoader::summary_table() const {
  std::vector<std::vector<std::string>> rows{
      {"stage", "module", "state", "outcome", "built by", "time", "heap", "rss", "decision", "peaks (predicted / measured)"}};
  for (const ModuleReport& m : modules()) {
    std::string peaks = m.fingerprint.empty() ? "-"
                                              : "build " + format_bytes(m.predicted_build) + " / " +
                                                    (m.build_peak ? format_bytes(m.build_peak) : "-") + ", load " +
                                                    format_bytes(m.predicted_load) + " / " +
                                                    (m.load_peak ? format_bytes(m.load_peak) : "-");
    rows.push_back({std::to_string(m.stage), m.name,
                    std::string(module_state_name(m.state)) + (m.reason.empty() ? "" : " (" + m.reason + ")"),
                    m.outcome.empty() ? "-" : m.outcome, m.built_by.empty() ? "-" : m.built_by,
                    m.finished_ms >= 0 ? std::to_string(m.finished_ms - m.started_ms) + " ms" : "-",
                    m.finished_ms >= 0 ? signed_bytes(m.heap_delta) : "-",
                    m.finished_ms >= 0 ? signed_bytes(m.rss_delta) : "-", m.decision.empty() ? "-" : m.decision,
                    peaks});
  }
  std::string out = table(rows);
  for (const StageReport& s : stages()) {
    out += "stage " + std::to_string(s.stage) + ": " + std::to_string(s.duration_ms) + " ms, heap after " +
           format_bytes(s.heap_after) + ", RSS after " + format_bytes(s.rss_after) + ", stage peak " +
           format_bytes(s.peak_rss) + " (" + s.peak_method + ")\n";
  }
  return out;
}

}  // namespace memgate::startup
