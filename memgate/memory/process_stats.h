// The process's memory as the kernel sees it, from /proc/self/status.
// Pure function of the file; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <string>

namespace memgate::memory {

struct ProcessStats {
  uint64_t rss = 0;           // VmRSS: resident set now, bytes
  // VmHWM: highest resident set so far, bytes. Approximate: the kernel records
  // the high-water mark when memory is unmapped, not when it is madvised away,
  // so a peak that a purge released (MADV_DONTNEED) may be under-reported.
  uint64_t peak_rss = 0;
  uint64_t virtual_size = 0;  // VmSize: mapped address space, bytes
};

// Parses VmRSS, VmHWM and VmSize (kB in the file) from `proc_status`. Fields the
// file lacks, or an unreadable file, leave zeros. Costs one small file read
// (a few microseconds).
ProcessStats read_process_stats(const std::string& proc_status = "/proc/self/status");

// The process's start time since boot in clock ticks (field 22 of
// /proc/<pid>/stat), parsed from the file's contents; nullopt when malformed.
// The command name (field 2) may hold spaces and parentheses: fields are
// counted after its last ')'.
std::optional<uint64_t> parse_start_ticks(std::string_view proc_stat);
// Milliseconds since this process was exec'd, from its start time and
// CLOCK_BOOTTIME, to the kernel's tick (10 ms at the usual 100 Hz); nullopt
// when /proc says nothing.
std::optional<int64_t> process_age_ms();

}  // namespace memgate::memory
