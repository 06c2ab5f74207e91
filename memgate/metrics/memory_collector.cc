#include "memgate/metrics/memory_collector.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <string>
#include <utility>
#include <vector>

#include "memgate/metrics/families.h"

namespace memgate::metrics {

namespace {

class MemoryCollector final : public prometheus::Collectable {
 public:
  explicit MemoryCollector(memory::MemoryProbe& probe) : probe_(probe) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const memory::MemorySample s = probe_.sample();
    std::vector<prometheus::MetricFamily> out;
    auto gauge = [&out](std::string name, std::string help, double value, Labels labels = {}) {
      auto f = gauge_family(std::move(name), std::move(help));
      add_gauge(f, value, std::move(labels));
      out.push_back(std::move(f));
    };
    if (s.allocator.available) {
      const Labels allocator = {{"allocator", s.allocator.allocator}};
      const auto& a = s.allocator;
      gauge("memgate_allocator_allocated_bytes", "Bytes in live heap allocations.", double(a.allocated), allocator);
      gauge("memgate_allocator_active_bytes", "Bytes in allocator pages holding live allocations.", double(a.active),
            allocator);
      gauge("memgate_allocator_resident_bytes", "Bytes of allocator memory paged in, metadata included.",
            double(a.resident), allocator);
      gauge("memgate_allocator_mapped_bytes", "Bytes in allocator extents mapped and in use.", double(a.mapped),
            allocator);
      gauge("memgate_allocator_retained_bytes", "Bytes kept mapped by the allocator but returned to the OS.",
            double(a.retained), allocator);
      gauge("memgate_allocator_metadata_bytes", "Bytes of allocator bookkeeping.", double(a.metadata), allocator);
    }
    if (s.process.peak_rss > 0) {
      gauge("memgate_process_peak_resident_memory_bytes", "Highest resident memory size so far (VmHWM), in bytes.",
            double(s.process.peak_rss));
    }
    if (s.cgroup.limit) {
      gauge("memgate_cgroup_memory_limit_bytes", "Memory limit of the process's cgroup, in bytes.",
            double(*s.cgroup.limit));
    }
    if (s.cgroup.usage) {
      gauge("memgate_cgroup_memory_usage_bytes", "Memory charged to the process's cgroup, in bytes.",
            double(*s.cgroup.usage));
    }
    if (s.cgroup.peak) {
      gauge("memgate_cgroup_memory_peak_bytes", "Highest memory charged to the process's cgroup, in bytes.",
            double(*s.cgroup.peak));
    }
    return out;
  }

 private:
  memory::MemoryProbe& probe_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> make_memory_collector(memory::MemoryProbe& probe) {
  return std::make_shared<MemoryCollector>(probe);
}

}  // namespace memgate::metrics
