// The memory collector: memgate's own memory gauges, taken from a MemoryProbe at
// scrape time.
//
//   memgate_allocator_{allocated,active,resident,mapped,retained,metadata}_bytes
//       {allocator="jemalloc"|"glibc"}    the allocator's view (memory/allocator.h)
//   memgate_process_peak_resident_memory_bytes   VmHWM
//   memgate_cgroup_memory_limit_bytes    only when the cgroup has a limit
//   memgate_cgroup_memory_usage_bytes    when a memory cgroup was found
//   memgate_cgroup_memory_peak_bytes     when the kernel reports one
//
// The process's current RSS is process_resident_memory_bytes, from the process
// collector. Thread-safe as far as the probe is (SystemMemoryProbe is); a scrape
// costs one probe sample.
#pragma once

#include <memory>

#include "memgate/memory/memory_probe.h"

namespace prometheus {
class Collectable;
}

namespace memgate::metrics {

// A Collectable sampling `probe` on each Collect(). The probe is borrowed and
// must outlive the collectable.
std::shared_ptr<prometheus::Collectable> make_memory_collector(memory::MemoryProbe& probe);

}  // namespace memgate::metrics
