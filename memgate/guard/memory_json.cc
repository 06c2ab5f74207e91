#include "memgate/guard/memory_json.h"

#include "memgate/memory/allocator.h"

namespace memgate::guard {
namespace {

boost::json::value optional_bytes(const std::optional<uint64_t>& v) {
  if (!v) return nullptr;
  return *v;
}

}  // namespace

boost::json::object memory_sample_json(const memory::MemorySample& s) {
  boost::json::object allocator{
      {"name", s.allocator.allocator},
      {"available", s.allocator.available},
      {"allocated", s.allocator.allocated},
      {"active", s.allocator.active},
      {"resident", s.allocator.resident},
      {"mapped", s.allocator.mapped},
      {"retained", s.allocator.retained},
      {"metadata", s.allocator.metadata},
      {"background_purge", memory::background_purge_enabled()},
      {"thread_counters", memory::thread_counters_available()},
      {"heap_profiling", memory::heap_profiling_active()},
  };
  boost::json::object process{
      {"rss", s.process.rss},
      {"peak_rss", s.process.peak_rss},
      {"virtual_size", s.process.virtual_size},
  };
  boost::json::object cgroup{
      {"version", s.cgroup.version},
      {"path", s.cgroup.path},
      {"limit", optional_bytes(s.cgroup.limit)},
      {"usage", optional_bytes(s.cgroup.usage)},
      {"peak", optional_bytes(s.cgroup.peak)},
  };
  return {{"allocator", std::move(allocator)}, {"process", std::move(process)}, {"cgroup", std::move(cgroup)}};
}

}  // namespace memgate::guard
