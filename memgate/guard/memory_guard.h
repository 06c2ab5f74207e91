// MemoryGuard: samples memory on a period, runs the triggers, and puts actions
// in force or lifts them.
//
// Every `interval` (MONITOR_INTERVAL, 30 s by default) the guard takes one sample
// from the probe and feeds every trigger. The actions in force are the union of
// the active triggers' actions; each change of an action is one log line, a
// counter, and a call of the matching hook (the server turns shedding and
// keep-alive on and off in the HTTP layer). While `purge` is in force the guard
// purges at every sample. When `alert` comes into force it writes a snapshot
// (the sample, the actions, the top routes by allocation, the instance, the
// trigger) to every sink, and, at most once per profile_interval, dumps a heap
// profile that the snapshot names.
//
// The guard also keeps, in process and bounded, what a picture of memory over
// time needs: the last `history_size` samples (heap, resident, RSS, cgroup
// usage and the actions in force, stamped with the wall clock) and the last
// `event_size` action changes. /debug/memory/history serves both.
//
// Thread-safety: tick() runs on the guard's thread (or a test's); in_force() is
// a relaxed atomic load, cheap enough for every request; the rest takes a mutex.
// Time comes from the injected Clock, so tests run samples by hand.
#pragma once

#include <array>
#include <atomic>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "memgate/base/clock.h"
#include "memgate/guard/trigger.h"
#include "memgate/memory/memory_probe.h"

namespace memgate::guard {

// Where alert snapshots go. write() is called on the guard's thread and must not
// throw; a sink that cannot write (Redis down) logs and carries on.
class SnapshotSink {
 public:
  virtual ~SnapshotSink() = default;
  virtual std::string_view name() const = 0;
  virtual void write(const boost::json::object& snapshot) = 0;
};

struct GuardHooks {
  std::function<void(bool)> set_shedding;            // kShed came into / out of force
  std::function<void(bool)> set_shedding_first;      // kShedFirst came into / out of force
  std::function<void(bool)> set_keepalive_disabled;  // kDisableKeepalive
  std::function<boost::json::array()> top_routes;    // for snapshots; may be empty
  // Writes a heap profile to `path`; returns its path. Empty: profiles are off.
  std::function<Result<std::string>(const std::string& path)> dump_profile;
};

struct GuardOptions {
  std::chrono::milliseconds interval{30'000};
  std::vector<TriggerSpec> triggers;
  uint64_t memory_limit = 4096ull << 20;  // base for shares when no cgroup limit
  std::string instance_id;
  std::chrono::milliseconds profile_interval{600'000};
  std::string profile_dir = "/tmp";
  size_t ring_size = 64;  // snapshots kept in process
  size_t history_size = 360;  // samples kept in process (3 h at the default interval)
  size_t event_size = 128;    // action changes kept in process
};

// One sample as the history keeps it (bytes; an absent figure is nullopt).
struct HistoryPoint {
  int64_t ts_ms = 0;               // wall clock, ms since the epoch
  uint64_t heap = 0;               // the allocator's live bytes
  uint64_t resident = 0;           // the allocator's resident bytes
  uint64_t rss = 0;
  std::optional<uint64_t> cgroup_usage;
  uint32_t actions = 0;            // bit i: Action(i) in force after this sample
};

// An action coming into force or being lifted.
struct ActionEvent {
  int64_t ts_ms = 0;
  Action action = Action::kPurge;
  bool in_force = false;
  std::string trigger;  // the trigger that fired at this sample ("" when none did)
};

struct TriggerReport {
  std::string name;
  std::string resource;
  bool active = false;
  uint64_t value = 0, on = 0, off = 0, fired = 0;
  std::vector<std::string> actions;
};

class MemoryGuard {
 public:
  // The probe must outlive the guard.
  MemoryGuard(GuardOptions options, Clock& clock, memory::MemoryProbe& probe, GuardHooks hooks);
  ~MemoryGuard();

  void add_sink(std::shared_ptr<SnapshotSink> sink);

  // Samples every interval on a thread of its own, starting with one sample now.
  void start();
  void stop();

  // One sample and its consequences. Public so tests drive the guard by hand.
  void tick();

  bool in_force(Action a) const { return in_force_[static_cast<size_t>(a)].load(std::memory_order_relaxed); }
  bool refuse_optional_init() const { return in_force(Action::kRefuseOptionalInit); }

  std::vector<TriggerReport> triggers() const;
  // Times each action came into force.
  uint64_t action_changes(Action a) const { return changes_[static_cast<size_t>(a)].load(); }
  uint64_t samples() const { return samples_.load(); }
  uint64_t purges() const { return purges_.load(); }
  int64_t purge_released_bytes() const { return purge_released_.load(); }
  uint64_t alerts() const { return alerts_.load(); }
  uint64_t profiles() const { return profiles_.load(); }

  // The guard's state for /debug/memory: triggers and actions in force.
  boost::json::object state_json() const;
  // The snapshots kept in process, newest first.
  std::vector<boost::json::object> recent_snapshots(size_t max) const;
  // The kept samples and action changes, oldest first (at most `max` of each,
  // the newest ones).
  std::vector<HistoryPoint> recent_samples(size_t max) const;
  std::vector<ActionEvent> recent_events(size_t max) const;
  // Both as JSON arrays for /debug/memory/history: samples as
  // {ts_ms, heap, resident, rss, cgroup_usage|null, actions:[names]}, events as
  // {ts_ms, action, in_force, trigger}.
  boost::json::array samples_json(size_t max) const;
  boost::json::array events_json(size_t max) const;

 private:
  void alert(const memory::MemorySample& sample, const std::string& trigger);

  GuardOptions options_;
  Clock& clock_;
  memory::MemoryProbe& probe_;
  GuardHooks hooks_;
  mutable std::mutex mu_;
  std::vector<Trigger> triggers_;                     // guarded by mu_
  std::vector<std::shared_ptr<SnapshotSink>> sinks_;  // guarded by mu_
  std::deque<boost::json::object> ring_;              // guarded by mu_
  std::deque<HistoryPoint> history_;                  // guarded by mu_
  std::deque<ActionEvent> events_;                    // guarded by mu_
  std::array<std::atomic<bool>, kActionCount> in_force_{};
  std::array<std::atomic<uint64_t>, kActionCount> changes_{};
  std::atomic<uint64_t> samples_{0}, purges_{0}, alerts_{0}, profiles_{0};
  std::atomic<int64_t> purge_released_{0};
  TimePoint last_profile_{};
  bool profiled_once_ = false;
  std::jthread thread_;
};

// The default triggers, from the configuration's thresholds:
//   heap_alert     heap >= HEAP_ALERT_THRESHOLD (3 GB)   -> alert, purge, shed_first
//   heap_shed      heap >= HEAP_SHED_THRESHOLD          -> shed, refuse_optional_init, disable_keepalive, purge
//   cgroup_pressure cgroup usage >= CGROUP_PRESSURE_THRESHOLD of its limit -> purge, refuse_optional_init, shed, alert
std::vector<TriggerSpec> default_triggers(const SizeSpec& heap_alert, const SizeSpec& heap_shed,
                                          const SizeSpec& cgroup_pressure, double hysteresis);

}  // namespace memgate::guard
