// The staged loader. The design goal is a flat memory curve at boot: heavy
// modules never build all at once; each stage ends with a purge so the next one
// starts from what is really live, and every step is measured where people can
// see it (/startupz, the log table, the pending routes' bodies).
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
};

std::string_view module_state_name(ModuleState state) {
  switch (state) {
    case ModuleState::kPending: return "pending";
    case ModuleState::kGated: return "gated";
    case ModuleState::kWaitingForLock: return "waiting_for_lock";
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
    e.report.state = s;
    e.report.reason = std::move(reason);
  }
  spdlog::debug("module {}: {}", e.report.name, module_state_name(s));
  publish_pending(e);
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

void StagedLoader::run_module(Entry& e, std::stop_token stop) {
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
  ModuleContext ctx{config_, router_, workers_, stop, coordinator_, options_.instance_id, metrics_};
  std::string built_by;
  uint64_t artifact_bytes = 0;
  FleetCallbacks cb;
  cb.build = [&]() -> Result<std::string> {
    set_state(e, ModuleState::kBuilding);
    Result<std::string> artifact = e.module->build(ctx);
    if (!artifact.ok()) return artifact.status();
    return wrap_artifact(options_.instance_id, *artifact);
  };
  cb.load = [&](std::string_view artifact) -> Status {
    set_state(e, ModuleState::kLoadingArtifact);
    Unwrapped u = unwrap_artifact(artifact);
    built_by = std::string(u.builder);
    artifact_bytes = u.bytes.size();
    Status s = e.module->load(u.bytes, ctx);
    if (s.ok()) e.loaded = true;
    return s;
  };
  cb.on_state = [&](std::string_view state) {
    if (state == "waiting_for_lock") set_state(e, ModuleState::kWaitingForLock);
  };

  Result<FleetOutcome> outcome = Internal("not run");
  try {
    if (e.fleet) {
      outcome = fleet_.run(*e.fleet, cb);
    } else {
      LocalFleetRunner local;
      outcome = local.run(FleetSpec{}, cb);
    }
  } catch (const std::exception& ex) {
    outcome = Internal(std::string("threw: ") + ex.what());
  } catch (...) {
    outcome = Internal("threw a non-exception");
  }

  memory::MemorySample after = probe_.sample();
  {
    std::lock_guard lock(mu_);
    e.report.finished_ms = since_start_ms();
    e.report.heap_delta = static_cast<int64_t>(after.allocator.allocated) - static_cast<int64_t>(before.allocator.allocated);
    e.report.rss_delta = static_cast<int64_t>(after.process.rss) - static_cast<int64_t>(before.process.rss);
    e.report.built_by = built_by;
    e.report.artifact_bytes = artifact_bytes;
    if (outcome.ok()) e.report.outcome = std::string(fleet_outcome_name(*outcome));
  }
  if (outcome.ok()) {
    set_state(e, ModuleState::kReady);
    spdlog::info("module {}: ready ({}, artifact by {}, {} ms)", e.report.name, fleet_outcome_name(*outcome),
                 built_by.empty() ? "?" : built_by, e.report.finished_ms - e.report.started_ms);
  } else {
    spdlog::error("module {}: failed: {}", e.report.name, outcome.status().to_string());
    set_state(e, ModuleState::kFailed, outcome.status().to_string());
  }
}

void StagedLoader::start() {
  started_at_ = clock_.now();
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void StagedLoader::run(std::stop_token stop) {
  std::set<int> stage_numbers;
  for (auto& e : entries_)
    if (e->enabled) stage_numbers.insert(e->report.stage);
  size_t batch_size = static_cast<size_t>(options_.batch_size);
  if (options_.eager && !stage_numbers.empty()) {
    stage_numbers = {*stage_numbers.begin()};
    batch_size = entries_.size();
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

    std::vector<Entry*> todo;
    for (auto& e : entries_)
      if (e->enabled && (e->report.stage == stage || options_.eager)) {
        todo.push_back(e.get());
        sr.modules.push_back(e->report.name);
      }
    std::string names;
    for (auto& n : sr.modules) names += (names.empty() ? "" : ", ") + n;
    spdlog::info("stage {}: {} module(s): {}", stage, todo.size(), names);
    for (size_t i = 0; i < todo.size() && !stop.stop_requested(); i += batch_size) {
      std::vector<std::future<void>> batch;
      for (size_t j = i; j < std::min(todo.size(), i + batch_size); ++j)
        batch.push_back(workers_.submit([this, entry = todo[j], stop] { run_module(*entry, stop); }));
      for (auto& f : batch) f.wait();
    }

    // The high-water mark is read before the purge too: the kernel may not
    // account pages that a purge hands back (MADV_DONTNEED) into it.
    uint64_t hwm_end = probe_.sample().process.peak_rss;
    memory::PurgeResult purge = probe_.purge();
    memory::MemorySample after = probe_.sample();
    hwm_end = std::max(hwm_end, after.process.peak_rss);
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
      workers_.submit([this, e, stop] { run_module(*e, stop); }).wait();
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
                   {"artifact_bytes", m.artifact_bytes}};
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
                      {"mode", options_.eager ? "eager" : "staged"},
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

std::string StagedLoader::plan_text() const {
  std::vector<std::vector<std::string>> rows{{"stage", "module", "enabled", "memory gate", "fleet lock (ttl)", "done flag (ttl)", "routes"}};
  std::lock_guard lock(mu_);
  for (auto& e : entries_) {
    std::string routes;
    for (auto& r : e->routes) routes += (routes.empty() ? "" : " ") + std::string(http::method_name(r.method)) + " " + r.pattern;
    rows.push_back({std::to_string(e->report.stage), e->report.name,
                    e->enabled ? (e->flag_text.empty() ? "always" : e->flag_text) : "no (" + e->flag_text + ")",
                    e->gate ? e->gate->to_string() : "-",
                    e->fleet ? e->fleet->lock_key + " (" + format_duration(e->fleet->lock_ttl) + ")" : "- (builds locally)",
                    e->fleet ? e->fleet->done_key + " (" + format_duration(e->fleet->done_ttl) + ")" : "-",
                    routes.empty() ? "-" : routes});
  }
  std::string head = "stage delay " + format_duration(options_.stage_delay) + ", batch size " +
                     std::to_string(options_.batch_size) + ", gate retries " + std::to_string(options_.gate_retries) +
                     " every " + format_duration(options_.gate_retry_interval) + "\n";
  return head + table(rows);
}

std::string StagedLoader::summary_table() const {
  std::vector<std::vector<std::string>> rows{{"stage", "module", "state", "outcome", "built by", "time", "heap", "rss"}};
  for (const ModuleReport& m : modules()) {
    rows.push_back({std::to_string(m.stage), m.name,
                    std::string(module_state_name(m.state)) + (m.reason.empty() ? "" : " (" + m.reason + ")"),
                    m.outcome.empty() ? "-" : m.outcome, m.built_by.empty() ? "-" : m.built_by,
                    m.finished_ms >= 0 ? std::to_string(m.finished_ms - m.started_ms) + " ms" : "-",
                    m.finished_ms >= 0 ? signed_bytes(m.heap_delta) : "-",
                    m.finished_ms >= 0 ? signed_bytes(m.rss_delta) : "-"});
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
