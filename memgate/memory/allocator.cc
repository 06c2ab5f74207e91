// Allocator access, for both builds.
//
// Everything allocator-specific in memgate lives in this file, behind the plain
// functions of allocator.h. The jemalloc build talks to jemalloc through mallctl:
// statistics are read by MIB (the name is translated once, a read is then an
// array walk instead of a string parse), after writing "epoch" so jemalloc merges
// its per-arena counters into a fresh snapshot. The per-thread counters use
// jemalloc's own thread-local totals: "thread.allocatedp" hands out a pointer to
// them, which we keep in a thread_local so that each later read is a single load.
//
// The glibc build exists to compare against and to run where jemalloc is absent.
// mallinfo2 gives heap totals (it walks and locks every arena, so it is slower but
// still cheap at monitoring rates), malloc_trim(0) returns free pages, and the
// features glibc has no equivalent for report "unavailable" instead of guessing.
#include "memgate/memory/allocator.h"

#include <cerrno>
#include <cstring>
#include <string>

#ifdef MEMGATE_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>
#endif

namespace memgate::memory {

#ifdef MEMGATE_WITH_JEMALLOC

namespace {

// A mallctl name resolved to its MIB once; read() then costs no string parsing.
class Mib {
 public:
  explicit Mib(const char* name) {
    len_ = sizeof(mib_) / sizeof(mib_[0]);
    ok_ = mallctlnametomib(name, mib_, &len_) == 0;
  }
  template <typename T>
  bool read(T* out) const {
    size_t size = sizeof(T);
    return ok_ && mallctlbymib(mib_, len_, out, &size, nullptr, 0) == 0;
  }

 private:
  size_t mib_[8];
  size_t len_ = 0;
  bool ok_ = false;
};

struct StatsMibs {
  Mib allocated{"stats.allocated"};
  Mib active{"stats.active"};
  Mib resident{"stats.resident"};
  Mib mapped{"stats.mapped"};
  Mib retained{"stats.retained"};
  Mib metadata{"stats.metadata"};
};

const StatsMibs& stats_mibs() {
  static const StatsMibs mibs;  // thread-safe static initialisation
  return mibs;
}

template <typename T>
bool read_ctl(const char* name, T* out) {
  size_t size = sizeof(T);
  return mallctl(name, out, &size, nullptr, 0) == 0;
}

// Cached per thread: jemalloc's own counters for this thread. nullptr until the
// first read; &kUnavailableSentinel when jemalloc refused (built without stats).
const uint64_t kUnavailableSentinel = 0;
constinit thread_local const uint64_t* tl_allocated = nullptr;
constinit thread_local const uint64_t* tl_deallocated = nullptr;

[[gnu::noinline]] void init_thread_counters() {
  uint64_t* p = nullptr;
  size_t size = sizeof(p);
  tl_allocated = mallctl("thread.allocatedp", &p, &size, nullptr, 0) == 0 && p ? p : &kUnavailableSentinel;
  p = nullptr;
  size = sizeof(p);
  tl_deallocated = mallctl("thread.deallocatedp", &p, &size, nullptr, 0) == 0 && p ? p : &kUnavailableSentinel;
}

bool prof_enabled_at_start() {
  bool on = false;
  return read_ctl("opt.prof", &on) && on;
}

}  // namespace

std::string_view allocator_name() { return "jemalloc"; }

AllocatorStats read_allocator_stats() {
  AllocatorStats s;
  s.allocator = "jemalloc";
  uint64_t epoch = 1;
  size_t epoch_size = sizeof(epoch);
  if (mallctl("epoch", &epoch, &epoch_size, &epoch, epoch_size) != 0) return s;
  const StatsMibs& m = stats_mibs();
  size_t allocated = 0, active = 0, resident = 0, mapped = 0, retained = 0, metadata = 0;
  s.available = m.allocated.read(&allocated) && m.active.read(&active) && m.resident.read(&resident) &&
                m.mapped.read(&mapped) && m.retained.read(&retained) && m.metadata.read(&metadata);
  s.allocated = allocated;
  s.active = active;
  s.resident = resident;
  s.mapped = mapped;
  s.retained = retained;
  s.metadata = metadata;
  return s;
}

bool thread_counters_available() {
  if (tl_allocated == nullptr) init_thread_counters();
  return tl_allocated != &kUnavailableSentinel;
}

uint64_t thread_allocated_bytes() {
  if (tl_allocated == nullptr) [[unlikely]] init_thread_counters();
  return *tl_allocated;
}

uint64_t thread_deallocated_bytes() {
  if (tl_deallocated == nullptr) [[unlikely]] init_thread_counters();
  return *tl_deallocated;
}

Status purge_allocator() {
  // The calling thread's cache holds freed objects that no arena sees as free;
  // flushing it first lets the purge below release their pages too. Failure is
  // harmless (tcache disabled), so its result is ignored.
  mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
#define MEMGATE_STRINGIFY_INNER(x) #x
#define MEMGATE_STRINGIFY(x) MEMGATE_STRINGIFY_INNER(x)
  constexpr const char* kDecay = "arena." MEMGATE_STRINGIFY(MALLCTL_ARENAS_ALL) ".decay";
  constexpr const char* kPurge = "arena." MEMGATE_STRINGIFY(MALLCTL_ARENAS_ALL) ".purge";
#undef MEMGATE_STRINGIFY
#undef MEMGATE_STRINGIFY_INNER
  // decay advances the decay clocks (what the background threads would do);
  // purge then releases every unused dirty and muzzy page regardless of age.
  mallctl(kDecay, nullptr, nullptr, nullptr, 0);
  if (int err = mallctl(kPurge, nullptr, nullptr, nullptr, 0); err != 0) {
    return Internal(std::string("jemalloc arena purge failed: ") + std::strerror(err));
  }
  return Status::Ok();
}

bool set_background_purge(bool on) {
  bool value = on;
  if (mallctl("background_thread", nullptr, nullptr, &value, sizeof(value)) != 0) return false;
  return background_purge_enabled() == on;
}

bool background_purge_enabled() {
  bool on = false;
  return read_ctl("background_thread", &on) && on;
}

bool heap_profiling_active() {
  if (!prof_enabled_at_start()) return false;
  bool active = false;
  return read_ctl("prof.active", &active) && active;
}

Status set_heap_profiling_active(bool on) {
  if (!prof_enabled_at_start()) {
    return FailedPrecondition("heap profiling needs jemalloc started with prof:true (MALLOC_CONF)");
  }
  bool value = on;
  if (int err = mallctl("prof.active", nullptr, nullptr, &value, sizeof(value)); err != 0) {
    return Internal(std::string("jemalloc prof.active failed: ") + std::strerror(err));
  }
  return Status::Ok();
}

Result<std::string> dump_heap_profile(const std::string& path) {
  if (path.empty()) return InvalidArgument("heap profile path is empty");
  if (!heap_profiling_active()) {
    return FailedPrecondition("heap profiling is not active (start with MALLOC_CONF=prof:true and activate it)");
  }
  const char* c_path = path.c_str();
  if (int err = mallctl("prof.dump", nullptr, nullptr, &c_path, sizeof(c_path)); err != 0) {
    return Internal("jemalloc could not write the heap profile to " + path + ": " + std::strerror(err));
  }
  return path;
}

#else  // glibc

std::string_view allocator_name() { return "glibc"; }

AllocatorStats read_allocator_stats() {
  const struct mallinfo2 mi = mallinfo2();
  AllocatorStats s;
  s.available = true;
  s.allocator = "glibc";
  // Chunks above the mmap threshold are served by mmap and counted only in
  // hblkhd; they are live allocations all the same.
  s.allocated = mi.uordblks + mi.hblkhd;
  s.active = s.allocated;
  s.mapped = mi.arena + mi.hblkhd;
  s.resident = s.mapped;  // glibc does not know which of its pages are paged in
  return s;
}

bool thread_counters_available() { return false; }
uint64_t thread_allocated_bytes() { return 0; }
uint64_t thread_deallocated_bytes() { return 0; }

Status purge_allocator() {
  malloc_trim(0);  // returns whether anything was released; not an error either way
  return Status::Ok();
}

bool set_background_purge(bool) { return false; }
bool background_purge_enabled() { return false; }
bool heap_profiling_active() { return false; }

Status set_heap_profiling_active(bool) {
  return FailedPrecondition("heap profiling needs the jemalloc build (MEMGATE_ALLOCATOR=jemalloc)");
}

Result<std::string> dump_heap_profile(const std::string& path) {
  if (path.empty()) return InvalidArgument("heap profile path is empty");
  return FailedPrecondition("heap profiling needs the jemalloc build (MEMGATE_ALLOCATOR=jemalloc)");
}

#endif

}  // namespace memgate::memory
