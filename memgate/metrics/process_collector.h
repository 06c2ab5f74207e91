// The process collector: the standard process_* metrics that Prometheus's
// official clients export, which prometheus-cpp lacks, read from /proc at scrape
// time.
//
//   process_cpu_seconds_total       counter  user + system CPU time
//   process_resident_memory_bytes   gauge    RSS (stat field rss x page size)
//   process_virtual_memory_bytes    gauge    address space (stat field vsize)
//   process_start_time_seconds      gauge    Unix time the process started
//   process_open_fds                gauge    entries in /proc/self/fd
//   process_max_fds                 gauge    soft "Max open files" (absent if unlimited)
//   process_threads                 gauge    threads in the process
//
// Thread-safe; a scrape reads four small files and lists a directory (tens of
// microseconds).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "memgate/base/status.h"

namespace prometheus {
class Collectable;
}

namespace memgate::metrics {

// Where the collector reads; tests point these at fixtures.
struct ProcessPaths {
  std::string proc_self = "/proc/self";  // stat, limits, fd/
  std::string proc_stat = "/proc/stat";  // btime, for the start time
};

// One reading of the process's figures.
struct ProcessSnapshot {
  double cpu_seconds = 0;
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  double start_time_seconds = 0;  // 0 when /proc/stat has no btime
  uint64_t threads = 0;
  std::optional<uint64_t> open_fds;  // empty when fd/ cannot be listed
  std::optional<uint64_t> max_fds;   // empty when unlimited or unreadable
};

// Reads the snapshot. Fails with kUnavailable when <proc_self>/stat cannot be read
// or parsed (the other sources only leave their fields empty).
Result<ProcessSnapshot> read_process_snapshot(const ProcessPaths& paths = {});

// A Collectable producing the metrics above on each Collect(). When the snapshot
// cannot be read it returns no families rather than wrong ones.
std::shared_ptr<prometheus::Collectable> make_process_collector(ProcessPaths paths = {});

}  // namespace memgate::metrics
