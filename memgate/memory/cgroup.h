// The memory cgroup the process runs in: its limit, usage and peak.
//
// read_cgroup() finds the process's cgroup from /proc/self/cgroup and reads the
// memory files under the cgroup filesystem: cgroup v2 (memory.max,
// memory.current, memory.peak) first, then v1 (memory.limit_in_bytes,
// memory.usage_in_bytes, memory.max_usage_in_bytes). Both paths are parameters so
// tests run against fixture trees. Pure function of the files; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace memgate::memory {

struct CgroupStats {
  int version = 0;                 // 2, 1, or 0 when no memory cgroup was found
  std::optional<uint64_t> limit;   // bytes; empty when unlimited ("max", v1's huge value)
  std::optional<uint64_t> usage;   // bytes charged to the cgroup now
  std::optional<uint64_t> peak;    // bytes, highest usage seen (v2 memory.peak needs Linux 5.19)
  // Page cache the kernel reclaims first under the limit (memory.stat
  // inactive_file, v1 total_inactive_file): usage minus this is the working set.
  std::optional<uint64_t> inactive_file;
  std::string path;                // the directory read, e.g. /sys/fs/cgroup/system.slice/x
};

// Reads the memory cgroup of the process described by `proc_self_cgroup` (normally
// /proc/self/cgroup) under the cgroup filesystem mounted at `cgroup_root`
// (normally /sys/fs/cgroup).
//
// The limit is the effective one: the smallest limit of the cgroup and its
// ancestors visible under the root (v2), or the smaller of memory.limit_in_bytes
// and memory.stat's hierarchical_memory_limit (v1). When the path named in
// /proc/self/cgroup does not exist under the root (a container with its own cgroup
// namespace mounts only its own subtree), the root itself is read. Never fails:
// unreadable or absent files leave fields empty, and version is 0 when neither
// hierarchy has memory files for the process.
CgroupStats read_cgroup(const std::string& proc_self_cgroup = "/proc/self/cgroup",
                        const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace memgate::memory
