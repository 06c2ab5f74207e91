// SystemMemoryProbe composes the three readers (allocator, /proc, cgroup) and adds
// nothing but a mutex: samples and purges are rare, so serialising them costs
// nothing, and it keeps a purge's before/after RSS from interleaving with a
// concurrent sample's epoch refresh. The cgroup is looked up on every sample
// rather than cached, so a process moved between cgroups, or a limit changed in
// place, is seen at the next sample.
#include "memgate/memory/memory_probe.h"

#include <utility>

namespace memgate::memory {

SystemMemoryProbe::SystemMemoryProbe(ProbePaths paths) : paths_(std::move(paths)) {}

MemorySample SystemMemoryProbe::sample() {
  std::lock_guard lock(mu_);
  MemorySample s;
  s.allocator = read_allocator_stats();
  s.process = read_process_stats(paths_.proc_status);
  s.cgroup = read_cgroup(paths_.proc_cgroup, paths_.cgroup_root);
  return s;
}

PurgeResult SystemMemoryProbe::purge() {
  std::lock_guard lock(mu_);
  PurgeResult r;
  r.rss_before = read_process_stats(paths_.proc_status).rss;
  const auto start = std::chrono::steady_clock::now();
  // A failed jemalloc purge releases nothing, which the RSS figures show; there is
  // nothing more useful to tell the caller.
  (void)purge_allocator();
  r.took = std::chrono::steady_clock::now() - start;
  r.rss_after = read_process_stats(paths_.proc_status).rss;
  return r;
}

}  // namespace memgate::memory
