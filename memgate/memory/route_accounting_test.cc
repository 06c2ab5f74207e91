#include "memgate/memory/route_accounting.h"

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <memory>

#include "memgate/base/worker_pool.h"
#include "memgate/memory/allocator.h"
#include "memgate/memory/memory_test_support.h"

namespace memgate::memory {
namespace {

using testing::escape;

const RouteAllocation* row_for(const std::vector<RouteAllocation>& rows, uint32_t route) {
  for (auto& r : rows)
    if (r.route == route) return &r;
  return nullptr;
}

TEST(RouteAccounting, ARequestThatAllocatesAKnownSizeIsReportedWithThatMany) {
  if (!thread_counters_available()) GTEST_SKIP() << "no per-thread counters in this allocator";
  RouteAccounting acc;
  constexpr size_t kBytes = 1 << 20;
  acc.begin(7);
  char* p = new char[kBytes];
  std::memset(p, 1, kBytes);
  escape(p);
  delete[] p;
  acc.end();
  auto rows = acc.snapshot();
  const RouteAllocation* r = row_for(rows, 7);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->requests, 1u);
  EXPECT_GE(r->allocated, kBytes);
  EXPECT_LT(r->allocated, kBytes + kBytes / 8) << "within the allocator's rounding";
  EXPECT_LT(r->held, static_cast<int64_t>(kBytes / 8)) << "it was freed";
}

TEST(RouteAccounting, MemoryKeptByARequestCountsAsHeld) {
  if (!thread_counters_available()) GTEST_SKIP();
  RouteAccounting acc;
  std::unique_ptr<char[]> kept;
  acc.begin(3);
  kept.reset(new char[256 * 1024]);
  escape(kept.get());
  acc.end();
  auto rows = acc.snapshot();
  const RouteAllocation* r = row_for(rows, 3);
  ASSERT_NE(r, nullptr);
  EXPECT_GE(r->held, 256 * 1024);
}

TEST(RouteAccounting, WorkPostedToTheWorkerPoolIsAccountedToTheRequest) {
  if (!thread_counters_available()) GTEST_SKIP();
  RouteAccounting acc;
  WorkerPool pool(2);
  constexpr size_t kBytes = 4 << 20;
  std::promise<void> done;
  acc.begin(9);
  pool.post([&] {
    char* p = new char[kBytes];
    escape(p);
    delete[] p;
    done.set_value();
  });
  acc.end();
  done.get_future().wait();
  pool.join();  // the context records when the task's last reference goes
  auto rows = acc.snapshot();
  const RouteAllocation* r = row_for(rows, 9);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->requests, 1u);
  EXPECT_GE(r->allocated, kBytes);
}

TEST(RouteAccounting, TheHistogramPutsEachRequestInItsBucket) {
  RouteAccounting acc;
  acc.record(1, 100, 0);       // <= 256
  acc.record(1, 5000, 0);      // <= 16384
  acc.record(1, 2ull << 30, 0);  // above every bound
  auto rows = acc.snapshot();
  const RouteAllocation* r = row_for(rows, 1);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->buckets[0], 1u);
  EXPECT_EQ(r->buckets[3], 1u);
  EXPECT_EQ(r->buckets.back(), 1u);
  EXPECT_EQ(r->requests, 3u);
}

TEST(RouteAccounting, CountsFromManyThreadsAddUp) {
  RouteAccounting acc;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) acc.record(2, 10, 1);
    });
  for (auto& th : threads) th.join();
  auto rows = acc.snapshot();
  const RouteAllocation* r = row_for(rows, 2);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->requests, 4000u);
  EXPECT_EQ(r->allocated, 40000u);
  EXPECT_EQ(r->held, 4000);
}

}  // namespace
}  // namespace memgate::memory
