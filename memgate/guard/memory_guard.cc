// The guard turns measurements into a small set of actions, in Envoy's overload
// manager shape: monitors (the probe's figures), triggers with hysteresis, named
// actions, everything counted. It judges both the allocator's view (the live
// heap) and the kernel's (RSS, and the cgroup usage the OOM killer acts on): a
// process can have a modest heap and a large RSS (fragmentation, retained pages),
// and the second is what gets it killed.
#include "memgate/guard/memory_guard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>

#include "memgate/guard/memory_json.h"

namespace memgate::guard {

namespace json = boost::json;

MemoryGuard::MemoryGuard(GuardOptions options, Clock& clock, memory::MemoryProbe& probe, GuardHooks hooks)
    : options_(std::move(options)), clock_(clock), probe_(probe), hooks_(std::move(hooks)) {
  for (auto& spec : options_.triggers) triggers_.emplace_back(spec);
}

MemoryGuard::~MemoryGuard() { stop(); }

void MemoryGuard::add_sink(std::shared_ptr<SnapshotSink> sink) {
  std::lock_guard lock(mu_);
  sinks_.push_back(std::move(sink));
}

void MemoryGuard::start() {
  thread_ = std::jthread([this](std::stop_token stop) {
    do {
      tick();
    } while (clock_.sleep_for(options_.interval, stop));
  });
}

void MemoryGuard::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

void MemoryGuard::tick() {
  memory::MemorySample sample = probe_.sample();
  samples_.fetch_add(1);
  uint64_t limit = sample.cgroup.limit.value_or(options_.memory_limit);
  std::array<bool, kActionCount> wanted{};
  std::string fired_by;
  {
    std::lock_guard lock(mu_);
    for (Trigger& t : triggers_) {
      int change = t.update(sample, limit);
      if (change > 0) {
        spdlog::warn("memory trigger {} fired: {} {} >= {}", t.spec().name, resource_name(t.spec().resource),
                     format_bytes(t.last_value()), format_bytes(t.on_bytes()));
        if (fired_by.empty()) fired_by = t.spec().name;
      } else if (change < 0) {
        spdlog::info("memory trigger {} cleared: {} {} < {}", t.spec().name, resource_name(t.spec().resource),
                     format_bytes(t.last_value()), format_bytes(t.off_bytes()));
      }
      if (t.active())
        for (Action a : t.spec().actions) wanted[static_cast<size_t>(a)] = true;
    }
  }
  const int64_t ts = clock_.unix_millis();
  HistoryPoint point{ts, sample.allocator.allocated, sample.allocator.resident, sample.process.rss,
                     sample.cgroup.usage, 0};
  std::vector<ActionEvent> changed;
  for (int i = 0; i < kActionCount; ++i) {
    auto a = static_cast<Action>(i);
    bool now = wanted[i];
    if (now) point.actions |= 1u << i;
    bool before = in_force_[i].exchange(now);
    if (now == before) continue;
    if (now) changes_[i].fetch_add(1);
    changed.push_back(ActionEvent{ts, a, now, now ? fired_by : std::string()});
    spdlog::warn("memory action {} {}", action_name(a), now ? "in force" : "lifted");
    if (a == Action::kShed && hooks_.set_shedding) hooks_.set_shedding(now);
    if (a == Action::kShedFirst && hooks_.set_shedding_first) hooks_.set_shedding_first(now);
    if (a == Action::kDisableKeepalive && hooks_.set_keepalive_disabled) hooks_.set_keepalive_disabled(now);
    if (a == Action::kAlert && now) alert(sample, fired_by);
  }
  {
    std::lock_guard lock(mu_);
    history_.push_back(point);
    while (history_.size() > options_.history_size) history_.pop_front();
    for (ActionEvent& ev : changed) events_.push_back(std::move(ev));
    while (events_.size() > options_.event_size) events_.pop_front();
  }
  if (wanted[static_cast<size_t>(Action::kPurge)]) {
    memory::PurgeResult r = probe_.purge();
    purges_.fetch_add(1);
    purge_released_.fetch_add(r.released());
    spdlog::info("memory purge released {} in {} us", format_bytes(r.released() > 0 ? r.released() : 0),
                 std::chrono::duration_cast<std::chrono::microseconds>(r.took).count());
  }
}

void MemoryGuard::alert(const memory::MemorySample& sample, const std::string& trigger) {
  alerts_.fetch_add(1);
  json::object snap;
  snap["ts_ms"] = clock_.unix_millis();
  snap["instance"] = options_.instance_id;
  snap["trigger"] = trigger;
  snap["memory"] = memory_sample_json(sample);
  json::array actions;
  for (int i = 0; i < kActionCount; ++i)
    if (in_force_[i].load()) actions.push_back(json::string(action_name(static_cast<Action>(i))));
  snap["actions"] = std::move(actions);
  snap["top_routes"] = hooks_.top_routes ? hooks_.top_routes() : json::array{};
  snap["heap_profile"] = nullptr;
  if (hooks_.dump_profile) {
    TimePoint now = clock_.now();
    if (!profiled_once_ || now - last_profile_ >= options_.profile_interval) {
      std::string path = options_.profile_dir + "/memgate-" + options_.instance_id + "-" +
                         std::to_string(clock_.unix_millis()) + ".heap";
      Result<std::string> written = hooks_.dump_profile(path);
      if (written.ok()) {
        snap["heap_profile"] = *written;
        profiled_once_ = true;
        last_profile_ = now;
        profiles_.fetch_add(1);
      } else {
        snap["heap_profile_error"] = written.status().to_string();
      }
    } else {
      snap["heap_profile_skipped"] = "a profile was dumped less than the profile interval ago";
    }
  }
  spdlog::warn("memory alert: {}", json::serialize(snap));
  std::vector<std::shared_ptr<SnapshotSink>> sinks;
  {
    std::lock_guard lock(mu_);
    ring_.push_front(snap);
    while (ring_.size() > options_.ring_size) ring_.pop_back();
    sinks = sinks_;
  }
  for (auto& sink : sinks) sink->write(snap);
}

std::vector<TriggerReport> MemoryGuard::triggers() const {
  std::lock_guard lock(mu_);
  std::vector<TriggerReport> out;
  for (const Trigger& t : triggers_) {
    TriggerReport r{t.spec().name, std::string(resource_name(t.spec().resource)), t.active(), t.last_value(),
                    t.on_bytes(), t.off_bytes(), t.fired(), {}};
    for (Action a : t.spec().actions) r.actions.emplace_back(action_name(a));
    out.push_back(std::move(r));
  }
  return out;
}

json::object MemoryGuard::state_json() const {
  json::array triggers_json;
  for (const TriggerReport& t : triggers()) {
    json::array actions;
    for (auto& a : t.actions) actions.push_back(json::string(a));
    triggers_json.push_back(json::object{{"name", t.name}, {"resource", t.resource}, {"active", t.active},
                                         {"value", t.value}, {"on", t.on}, {"off", t.off}, {"fired", t.fired},
                                         {"actions", std::move(actions)}});
  }
  json::object actions;
  for (int i = 0; i < kActionCount; ++i)
    actions[action_name(static_cast<Action>(i))] = in_force_[i].load();
  return json::object{{"interval_ms", options_.interval.count()}, {"samples", samples_.load()},
                      {"actions", std::move(actions)}, {"triggers", std::move(triggers_json)},
                      {"purges", purges_.load()}, {"purge_released_bytes", purge_released_.load()},
                      {"alerts", alerts_.load()}, {"profiles", profiles_.load()}};
}

std::vector<json::object> MemoryGuard::recent_snapshots(size_t max) const {
  std::lock_guard lock(mu_);
  std::vector<json::object> out;
  for (size_t i = 0; i < ring_.size() && i < max; ++i) out.push_back(ring_[i]);
  return out;
}

std::vector<HistoryPoint> MemoryGuard::recent_samples(size_t max) const {
  std::lock_guard lock(mu_);
  size_t n = std::min(max, history_.size());
  return std::vector<HistoryPoint>(history_.end() - static_cast<std::ptrdiff_t>(n), history_.end());
}

std::vector<ActionEvent> MemoryGuard::recent_events(size_t max) const {
  std::lock_guard lock(mu_);
  size_t n = std::min(max, events_.size());
  return std::vector<ActionEvent>(events_.end() - static_cast<std::ptrdiff_t>(n), events_.end());
}

json::array MemoryGuard::samples_json(size_t max) const {
  json::array out;
  for (const HistoryPoint& p : recent_samples(max)) {
    json::array actions;
    for (int i = 0; i < kActionCount; ++i)
      if (p.actions & (1u << i)) actions.push_back(json::string(action_name(static_cast<Action>(i))));
    json::value cgroup = nullptr;
    if (p.cgroup_usage) cgroup = *p.cgroup_usage;
    out.push_back(json::object{{"ts_ms", p.ts_ms}, {"heap", p.heap}, {"resident", p.resident}, {"rss", p.rss},
                               {"cgroup_usage", cgroup}, {"actions", std::move(actions)}});
  }
  return out;
}

json::array MemoryGuard::events_json(size_t max) const {
  json::array out;
  for (const ActionEvent& e : recent_events(max))
    out.push_back(json::object{{"ts_ms", e.ts_ms}, {"action", action_name(e.action)}, {"in_force", e.in_force},
                               {"trigger", e.trigger}});
  return out;
}

std::vector<TriggerSpec> default_triggers(const SizeSpec& heap_alert, const SizeSpec& heap_shed,
                                          const SizeSpec& cgroup_pressure, double hysteresis) {
  return {
      {"heap_alert", Resource::kHeap, heap_alert, hysteresis, {Action::kAlert, Action::kPurge, Action::kShedFirst}},
      {"heap_shed", Resource::kHeap, heap_shed, hysteresis,
       {Action::kShed, Action::kRefuseOptionalInit, Action::kDisableKeepalive, Action::kPurge}},
      {"cgroup_pressure", Resource::kCgroup, cgroup_pressure, hysteresis,
       {Action::kPurge, Action::kRefuseOptionalInit, Action::kShed, Action::kAlert}},
  };
}

}  // namespace memgate::guard
