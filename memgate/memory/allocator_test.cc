#include "memgate/memory/allocator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "memgate/memory/process_stats.h"

#include "memgate/memory/memory_test_support.h"

namespace memgate::memory {
namespace {

using testing::escape;
using testing::kMiB;
using testing::kSanitized;


void* allocate_and_touch(size_t n) {
  void* p = std::malloc(n);
  std::memset(p, 0xA5, n);
  escape(p);
  return p;
}

TEST(Allocator, ReportsTheAllocatorThisBuildLinks) {
  AllocatorStats s = read_allocator_stats();
  EXPECT_TRUE(s.available);
#ifdef MEMGATE_WITH_JEMALLOC
  EXPECT_EQ(s.allocator, "jemalloc");
  EXPECT_GT(s.metadata, 0u);
  EXPECT_GE(s.active, s.allocated);
  EXPECT_GE(s.resident, s.active);
  EXPECT_GE(s.mapped, s.active);
#else
  EXPECT_EQ(s.allocator, "glibc");
#endif
  EXPECT_EQ(s.allocator, allocator_name());
  EXPECT_GT(s.allocated, 0u);
}

TEST(Allocator, HeapResidentAndRssRiseWhen64MiBIsAllocatedAndTouched) {
  MEMGATE_SKIP_UNDER_ASAN();
  const AllocatorStats before = read_allocator_stats();
  const ProcessStats rss_before = read_process_stats();
  void* p = allocate_and_touch(64 * kMiB);
  const AllocatorStats during = read_allocator_stats();
  const ProcessStats rss_during = read_process_stats();
  std::free(p);

  EXPECT_GE(during.allocated, before.allocated + 64 * kMiB);
  EXPECT_GE(during.resident, before.resident + 60 * kMiB);
  EXPECT_GE(rss_during.rss, rss_before.rss + 60 * kMiB);
  EXPECT_GE(rss_during.peak_rss, rss_during.rss);
}

TEST(Allocator, ThreadCountersRiseByAtLeastWhatThisThreadAllocatesAndFrees) {
  MEMGATE_SKIP_UNDER_ASAN();
  if (!thread_counters_available()) GTEST_SKIP() << allocator_name() << " has no per-thread counters";
  constexpr size_t kBytes = 3 * kMiB + 123;
  const uint64_t alloc_before = thread_allocated_bytes();
  const uint64_t dealloc_before = thread_deallocated_bytes();
  void* p = allocate_and_touch(kBytes);
  const uint64_t alloc_after = thread_allocated_bytes();
  std::free(p);
  const uint64_t dealloc_after = thread_deallocated_bytes();
  EXPECT_GE(alloc_after - alloc_before, kBytes);
  EXPECT_GE(dealloc_after - dealloc_before, kBytes);
}

TEST(Allocator, ThreadCountersBelongToTheirThread) {
  MEMGATE_SKIP_UNDER_ASAN();
  if (!thread_counters_available()) GTEST_SKIP() << allocator_name() << " has no per-thread counters";
  constexpr size_t kBytes = 8 * kMiB;
  const uint64_t main_before = thread_allocated_bytes();
  uint64_t worker_delta = 0;
  std::thread worker([&] {
    const uint64_t before = thread_allocated_bytes();
    void* p = allocate_and_touch(kBytes);
    worker_delta = thread_allocated_bytes() - before;
    std::free(p);
  });
  worker.join();
  EXPECT_GE(worker_delta, kBytes);
  EXPECT_LT(thread_allocated_bytes() - main_before, kBytes / 2);
}

TEST(Allocator, ThreadCountersCostNanosecondsToRead) {
  if (!thread_counters_available()) GTEST_SKIP() << allocator_name() << " has no per-thread counters";
  constexpr int kReads = 1'000'000;
  uint64_t sum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kReads; ++i) {
    sum += thread_allocated_bytes();
    escape(&sum);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  // About a nanosecond each on an idle machine; the bound is loose for busy CI.
  EXPECT_LT(took, std::chrono::milliseconds(200)) << "per read: " << (took / kReads).count() << " ns";
}

TEST(Allocator, ThreadCountersAreZeroAndUnavailableOnGlibc) {
  if (allocator_name() != "glibc") GTEST_SKIP() << "only meaningful on the glibc build";
  EXPECT_FALSE(thread_counters_available());
  EXPECT_EQ(thread_allocated_bytes(), 0u);
  EXPECT_EQ(thread_deallocated_bytes(), 0u);
}

TEST(Allocator, PurgeSucceeds) { EXPECT_TRUE(purge_allocator().ok()); }

TEST(Allocator, BackgroundPurgeCanBeTurnedOnAndOffOnJemalloc) {
  if (allocator_name() != "jemalloc") {
    EXPECT_FALSE(set_background_purge(true));
    EXPECT_FALSE(background_purge_enabled());
    return;
  }
  const bool was = background_purge_enabled();
  EXPECT_TRUE(set_background_purge(true));
  EXPECT_TRUE(background_purge_enabled());
  EXPECT_TRUE(set_background_purge(false));
  EXPECT_FALSE(background_purge_enabled());
  set_background_purge(was);
}

TEST(Allocator, HeapProfilingIsOffUnlessTheProcessStartedWithIt) {
  // This binary does not set prof:true (heap_profile_test.cc does).
  EXPECT_FALSE(heap_profiling_active());
  Result<std::string> dumped = dump_heap_profile("/tmp/memgate-should-not-exist.heap");
  ASSERT_FALSE(dumped.ok());
  EXPECT_EQ(dumped.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(set_heap_profiling_active(true).code(), Code::kFailedPrecondition);
}

TEST(Allocator, DumpingAHeapProfileToAnEmptyPathIsAnInvalidArgument) {
  EXPECT_EQ(dump_heap_profile("").status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace memgate::memory
