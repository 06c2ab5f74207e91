// MemoryProbe: one call that measures the process's memory from every side —
// the allocator's heap, the kernel's view of the process (RSS, peak), and the
// container's cgroup (limit, usage) — and one call that gives free memory back.
//
// Code that decides on memory (the loader's gates, the guard, /metrics) takes a
// MemoryProbe& so tests can hand it a FakeMemoryProbe (fake_probe.h) instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "memgate/memory/allocator.h"
#include "memgate/memory/cgroup.h"
#include "memgate/memory/process_stats.h"

namespace memgate::memory {

struct MemorySample {
  AllocatorStats allocator;
  ProcessStats process;
  CgroupStats cgroup;
};

// What a purge did: the process's RSS before and after, and how long it took.
struct PurgeResult {
  uint64_t rss_before = 0;
  uint64_t rss_after = 0;
  std::chrono::nanoseconds took{};
  // Bytes the RSS fell by; negative when it grew meanwhile (other threads allocate).
  int64_t released() const { return static_cast<int64_t>(rss_before) - static_cast<int64_t>(rss_after); }
};

// The interface. Implementations are thread-safe: sample() and purge() may be
// called from any thread, concurrently.
class MemoryProbe {
 public:
  virtual ~MemoryProbe() = default;
  // Measures now. Never fails: a source that cannot be read leaves its fields at
  // their defaults (AllocatorStats::available false, zeros, cgroup version 0).
  virtual MemorySample sample() = 0;
  // Returns free allocator pages to the OS and reports what that changed.
  // Blocks the caller while the allocator purges (see purge_allocator(): up to
  // tens of milliseconds when much is released).
  virtual PurgeResult purge() = 0;
};

// Where SystemMemoryProbe reads the kernel's files; tests point these at fixtures.
struct ProbePaths {
  std::string proc_status = "/proc/self/status";
  std::string proc_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
};

// The real probe: allocator.h, process_stats.h and cgroup.h together. A sample is
// a mallctl epoch refresh plus six to eight small file reads: tens of
// microseconds on a plain kernel, about 160 µs on the sandboxed development VM
// where system calls are dear. It suits monitoring intervals and scrapes, not
// per-request use (use thread_allocated_bytes() there). Thread-safe; samples and purges are serialised
// by an internal mutex so a purge's before/after readings are not interleaved.
class SystemMemoryProbe final : public MemoryProbe {
 public:
  explicit SystemMemoryProbe(ProbePaths paths = {});
  MemorySample sample() override;
  PurgeResult purge() override;

 private:
  const ProbePaths paths_;
  std::mutex mu_;
};

}  // namespace memgate::memory
