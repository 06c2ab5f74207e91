#include "memgate/guard/trigger.h"

namespace memgate::guard {

std::string_view action_name(Action a) {
  switch (a) {
    case Action::kPurge: return "purge";
    case Action::kShed: return "shed";
    case Action::kRefuseOptionalInit: return "refuse_optional_init";
    case Action::kDisableKeepalive: return "disable_keepalive";
    case Action::kAlert: return "alert";
    case Action::kShedFirst: return "shed_first";
  }
  return "unknown";
}

Result<Action> parse_action(std::string_view name) {
  for (int i = 0; i < kActionCount; ++i)
    if (action_name(static_cast<Action>(i)) == name) return static_cast<Action>(i);
  return InvalidArgument("unknown action '" + std::string(name) +
                         "' (purge, shed, refuse_optional_init, disable_keepalive, alert, shed_first)");
}

std::string_view resource_name(Resource r) {
  switch (r) {
    case Resource::kHeap: return "heap";
    case Resource::kResident: return "resident";
    case Resource::kRss: return "rss";
    case Resource::kCgroup: return "cgroup";
  }
  return "unknown";
}

std::optional<uint64_t> resource_value(Resource r, const memory::MemorySample& s) {
  switch (r) {
    case Resource::kHeap:
      return s.allocator.available ? s.allocator.allocated : s.process.rss;
    case Resource::kResident:
      return s.allocator.available ? s.allocator.resident : s.process.rss;
    case Resource::kRss:
      return s.process.rss;
    case Resource::kCgroup:
      if (!s.cgroup.usage || !s.cgroup.limit) return std::nullopt;
      return *s.cgroup.usage;
  }
  return std::nullopt;
}

int Trigger::update(const memory::MemorySample& sample, uint64_t limit) {
  // A cgroup trigger's share is of the cgroup's own limit; others of `limit`.
  uint64_t base = limit;
  if (spec_.resource == Resource::kCgroup && sample.cgroup.limit) base = *sample.cgroup.limit;
  on_bytes_ = spec_.on.resolve(base);
  off_bytes_ = static_cast<uint64_t>(static_cast<double>(on_bytes_) * (1.0 - spec_.hysteresis));
  std::optional<uint64_t> v = resource_value(spec_.resource, sample);
  if (!v) {
    if (active_) {
      active_ = false;
      return -1;
    }
    return 0;
  }
  last_value_ = *v;
  if (!active_ && *v >= on_bytes_ && on_bytes_ > 0) {
    active_ = true;
    ++fired_;
    return +1;
  }
  if (active_ && *v < off_bytes_) {
    active_ = false;
    return -1;
  }
  return 0;
}

}  // namespace memgate::guard
