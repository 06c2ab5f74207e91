// Triggers: a threshold on one memory figure, with hysteresis, that turns named
// actions on and off.
//
// In the shape of Envoy's overload manager: a monitor reads a figure (the live
// heap, the allocator's resident bytes, the process RSS, or the cgroup's usage),
// a trigger compares it to its threshold, and while the trigger is active its
// actions are in force. A trigger fires when the figure reaches `on` and clears
// only when it falls below `off` (below `on`), so a figure hovering at the
// threshold does not flap. Plain values; not thread-safe on their own (the
// guard serialises them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/units.h"
#include "memgate/memory/memory_probe.h"

namespace memgate::guard {

// What the guard can do. Each is in force while any active trigger lists it.
enum class Action {
  kPurge,               // return freed pages to the OS (every sample while in force)
  kShed,                // heavy routes answer 503 + Retry-After; health and admin never shed
  kRefuseOptionalInit,  // the loader's and scheduler's gates say no
  kDisableKeepalive,    // responses close their connection
  kAlert,               // on the rising edge: a snapshot (Redis stream, ring, log) and a heap profile
  kShedFirst,           // only the routes to shed first (shed priority 1, the AI coach) answer 503
};
inline constexpr int kActionCount = 6;
std::string_view action_name(Action a);  // "purge", "shed", ...
Result<Action> parse_action(std::string_view name);

// The figure a trigger watches.
enum class Resource { kHeap, kResident, kRss, kCgroup };
std::string_view resource_name(Resource r);  // "heap", "resident", "rss", "cgroup"

struct TriggerSpec {
  std::string name;
  Resource resource = Resource::kHeap;
  SizeSpec on;             // fires at or above this
  double hysteresis = 0.1; // clears below on * (1 - hysteresis)
  std::vector<Action> actions;
};

// The bytes the resource stands at in a sample (nullopt: not measurable, e.g. no
// cgroup; such a trigger never fires).
std::optional<uint64_t> resource_value(Resource r, const memory::MemorySample& s);

class Trigger {
 public:
  explicit Trigger(TriggerSpec spec) : spec_(std::move(spec)) {}

  // Feeds one sample; `limit` resolves shares. Returns +1 when the trigger
  // fired, -1 when it cleared, 0 when nothing changed.
  int update(const memory::MemorySample& sample, uint64_t limit);

  const TriggerSpec& spec() const { return spec_; }
  bool active() const { return active_; }
  uint64_t last_value() const { return last_value_; }
  uint64_t on_bytes() const { return on_bytes_; }
  uint64_t off_bytes() const { return off_bytes_; }
  uint64_t fired() const { return fired_; }

 private:
  TriggerSpec spec_;
  bool active_ = false;
  uint64_t last_value_ = 0, on_bytes_ = 0, off_bytes_ = 0, fired_ = 0;
};

}  // namespace memgate::guard
