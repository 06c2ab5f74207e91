// Test support: a real memory cgroup with a hard limit, for a process the test
// starts, and readings of what happened in it (usage, peak, OOM kills).
//
// MemoryCgroup::create() makes a fresh child cgroup, uniquely named, UNDER THE
// CGROUP THIS PROCESS IS IN (from /proc/self/cgroup), sets its hard memory limit
// and turns swap off for it so the limit is real. It uses cgroup v2 when the v2
// hierarchy has the memory controller usable here (enabling "+memory" in the
// parent's cgroup.subtree_control if needed, which stays enabled), else the v1
// memory controller. When neither can be made it fails with a reason; a test
// then skips:
//
//   auto cg = MemoryCgroup::create(32 << 20);
//   if (!cg.ok()) GTEST_SKIP() << cg.status().message();
//   auto child = (*cg)->start({"my-server", "--flag"});   // limited from byte one
//   ...
//   EXPECT_GE((*cg)->oom_kills().value_or(0), 1u);
//
// Declare the MemoryCgroup BEFORE the Subprocess objects that run in it, so the
// children are killed and reaped first and the cgroup is empty when destroyed.
//
// The destructor kills nothing and moves no process: it removes the directory
// (rmdir) once the cgroup is empty, waiting up to about two seconds for its
// processes to be gone; if some remain it leaves the directory and says so on
// stderr.
//
// What the numbers count (both versions): usage() and peak() include page cache
// and tmpfs/shm pages, not just the anonymous memory of the processes. v1
// memory.usage_in_bytes / max_usage_in_bytes are rss + cache (+ kernel memory),
// and are "fuzzy" (per-cpu charge batching, up to a few hundred KiB off). So in
// a limit test: files a child writes (its log, a dump, anything under /tmp)
// count against the limit; clean page cache is reclaimed before an OOM kill,
// but dirty pages slow the child down and tmpfs (/dev/shm, a tmpfs /tmp) cannot
// be reclaimed without swap and can get the child OOM-killed. Pages already in
// the page cache before the child ran (its binary, shared libraries) stay
// charged to whoever read them first. Give a limit test headroom of a few MiB
// above what the process itself allocates, and point big logs outside it.
//
// Thread-safety: the readings only read files and may be called from any
// thread; create, add, start and destruction from one thread at a time. Needs
// root (or a delegated cgroup); on machines without it create() fails.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "memgate/base/status.h"
#include "tests/support/process.h"

namespace memgate::testing {

enum class CgroupVersion { kV1 = 1, kV2 = 2 };

struct MemoryCgroupOptions {
  // Where to look for the cgroup file systems. Empty: the mounts listed in
  // /proc/self/mountinfo (cgroup2, and cgroup v1 with the memory controller).
  // Set (e.g. "/sys/fs/cgroup"): v2 is looked for at root and root/unified,
  // v1 at root/memory, each taken to be mounted from the hierarchy's top.
  std::string cgroup_root;
  // Prefix of the new cgroup's name; the pid and a counter follow.
  std::string name_prefix = "memgate-test";
};

class MemoryCgroup {
 public:
  // Makes a child cgroup of this process's cgroup with a hard limit of
  // limit_bytes and swap off. Fails with FailedPrecondition and a message that
  // says, for each version tried, why it could not be made (no such mount, no
  // memory controller, permission, ...); use it as the GTEST_SKIP() reason.
  static Result<std::unique_ptr<MemoryCgroup>> create(uint64_t limit_bytes,
                                                      MemoryCgroupOptions options = {});

  ~MemoryCgroup();
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  // Starts a Subprocess (see process.h) that joins this cgroup between fork and
  // exec, so everything it allocates is charged here. The caller owns it.
  Result<std::unique_ptr<Subprocess>> start(
      std::vector<std::string> argv,
      std::vector<std::pair<std::string, std::string>> extra_env = {},
      std::string log_path = "") const;

  // Moves a running process (all its threads) into this cgroup. Memory it
  // already had stays charged where it was. Prefer start().
  Status add(pid_t pid) const;

  // The pids in the cgroup now (cgroup.procs); empty when it cannot be read.
  std::vector<pid_t> pids() const;

  CgroupVersion version() const { return version_; }
  // The cgroup's directory, e.g. /sys/fs/cgroup/memory/<parent>/memgate-test-12-0.
  const std::string& path() const { return path_; }
  // The cgroup as /proc/PID/cgroup names it (the path inside the hierarchy),
  // e.g. /<parent>/memgate-test-12-0.
  const std::string& name() const { return name_; }
  // path() + "/cgroup.procs": what Subprocess::start's cgroup_procs_path wants.
  std::string procs_path() const { return path_ + "/cgroup.procs"; }

  // The hard limit in bytes as the kernel holds it (v2 memory.max, v1
  // memory.limit_in_bytes; page-rounded). UINT64_MAX when unlimited.
  Result<uint64_t> limit() const;
  // Bytes charged now (v2 memory.current, v1 memory.usage_in_bytes); includes
  // page cache, see above.
  Result<uint64_t> usage() const;
  // The high-water mark of usage() (v2 memory.peak, kernel 5.19+; v1
  // memory.max_usage_in_bytes). NotFound when the kernel has no such file.
  Result<uint64_t> peak() const;
  // How many processes the OOM killer killed in this cgroup (v2 memory.events
  // "oom_kill", v1 memory.oom_control "oom_kill", kernel 4.13+).
  Result<uint64_t> oom_kills() const;

 private:
  MemoryCgroup(CgroupVersion version, std::string path, std::string name)
      : version_(version), path_(std::move(path)), name_(std::move(name)) {}

  CgroupVersion version_;
  std::string path_;
  std::string name_;
};

}  // namespace memgate::testing
