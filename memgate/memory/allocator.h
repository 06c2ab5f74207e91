// The allocator the process runs on, seen from inside: heap statistics, purge,
// background purging, per-thread allocation counters and heap profiles.
//
// Two builds exist (MEMGATE_ALLOCATOR): jemalloc, where every figure comes from
// mallctl, and glibc, where the figures come from mallinfo2 and some features are
// missing. Each function says what it does on glibc. No jemalloc header leaks out
// of this file's .cc.
//
// Thread-safety: every function may be called from any thread at any time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "memgate/base/status.h"

namespace memgate::memory {

// Heap figures in bytes, as the allocator counts them.
//
//  allocated  bytes in live allocations (jemalloc stats.allocated;
//             glibc uordblks + hblkhd, i.e. in-use heap plus mmapped chunks)
//  active     bytes in pages holding live allocations (jemalloc stats.active;
//             glibc: same as allocated)
//  resident   bytes of allocator memory paged in, metadata included (jemalloc
//             stats.resident; glibc cannot tell, reports mapped as an upper bound)
//  mapped     bytes in mapped extents in use (jemalloc stats.mapped;
//             glibc arena + hblkhd)
//  retained   bytes kept mapped but returned to the OS, for reuse (jemalloc
//             stats.retained; glibc 0)
//  metadata   allocator bookkeeping (jemalloc stats.metadata; glibc 0)
struct AllocatorStats {
  bool available = false;  // false only if the allocator refused to answer
  std::string allocator;   // "jemalloc" or "glibc"
  uint64_t allocated = 0;
  uint64_t active = 0;
  uint64_t resident = 0;
  uint64_t mapped = 0;
  uint64_t retained = 0;
  uint64_t metadata = 0;
};

// "jemalloc" or "glibc": the allocator this build links.
std::string_view allocator_name();

// Refreshes the allocator's statistics (jemalloc "epoch") and reads them. Costs a
// few microseconds (jemalloc merges per-arena counters; glibc locks every arena).
AllocatorStats read_allocator_stats();

// Per-thread counters of bytes allocated and freed by the calling thread since it
// started (jemalloc thread.allocatedp / thread.deallocatedp). The pointers are
// fetched once per thread and cached in a thread_local, so a read is one load and
// costs about a nanosecond: cheap enough to take around every request.
// Monotonic; the difference of two reads on the same thread is what the thread
// allocated in between. On glibc they return 0 and thread_counters_available()
// says false.
bool thread_counters_available();
uint64_t thread_allocated_bytes();
uint64_t thread_deallocated_bytes();

// Gives free pages back to the OS: jemalloc flushes the calling thread's cache,
// then decays and purges every arena (arena.<ALL>.decay, arena.<ALL>.purge);
// glibc calls malloc_trim(0). Blocks for as long as that takes: microseconds when
// there is nothing to release, about 15 ms to release 64 MiB on the development VM
// (madvise dominates), so call it from a worker thread, not an IO thread. Fails
// only if jemalloc refuses the purge call.
Status purge_allocator();

// Turns jemalloc's background purging threads on or off (mallctl
// "background_thread"), so an idle process returns memory without anyone calling
// purge. Returns whether the setting now holds the requested value: false when it
// did not take effect, and always false on glibc.
bool set_background_purge(bool on);
// Whether jemalloc's background purging threads are on (false on glibc).
bool background_purge_enabled();

// Whether heap profiling is running: jemalloc started with prof:true (opt.prof,
// fixed at start, e.g. MALLOC_CONF=prof:true,prof_active:false) and sampling is
// currently active (prof.active). Always false on glibc.
bool heap_profiling_active();

// Turns sampling on or off (prof.active). Fails with kFailedPrecondition when the
// process was not started with prof:true, or on glibc.
Status set_heap_profiling_active(bool on);

// Writes a heap profile (jemalloc "prof.dump", the format jeprof reads) to
// `path` and returns the path. Fails with kInvalidArgument for an empty path,
// kFailedPrecondition when profiling is not active or on glibc, and kInternal
// when jemalloc cannot write the file (directory missing, permissions).
Result<std::string> dump_heap_profile(const std::string& path);

}  // namespace memgate::memory
