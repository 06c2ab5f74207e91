#include "memgate/memory/memory_probe.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "memgate/memory/fake_probe.h"

#include "memgate/memory/memory_test_support.h"

namespace memgate::memory {
namespace {

using testing::escape;
using testing::kMiB;
using testing::kSanitized;

// 64 MiB in 4 KiB blocks, each touched: small enough for glibc to serve from its
// heap rather than mmap, so freeing leaves pages only a trim gives back.
class SmallBlocks {
 public:
  SmallBlocks() {
    blocks_.reserve(kCount);
    for (size_t i = 0; i < kCount; ++i) {
      void* p = std::malloc(kBlock);
      std::memset(p, static_cast<int>(i), kBlock);
      asm volatile("" : : "g"(p) : "memory");
      blocks_.push_back(p);
    }
  }
  ~SmallBlocks() { release(); }
  void release() {
    for (void* p : blocks_) std::free(p);
    blocks_.clear();
  }

 private:
  static constexpr size_t kBlock = 4096;
  static constexpr size_t kCount = 64 * kMiB / kBlock;
  std::vector<void*> blocks_;
};

TEST(SystemMemoryProbe, SampleReadsTheFilesItIsPointedAt) {
  const std::string data = MEMGATE_MEMORY_TESTDATA;
  SystemMemoryProbe probe({data + "/proc_status", data + "/cgroup/v2_limited/proc_self_cgroup",
                           data + "/cgroup/v2_limited/fs"});
  MemorySample s = probe.sample();
  EXPECT_TRUE(s.allocator.available);
  EXPECT_EQ(s.process.rss, 100 * kMiB);
  EXPECT_EQ(s.process.peak_rss, 200 * kMiB);
  EXPECT_EQ(s.cgroup.version, 2);
  EXPECT_EQ(s.cgroup.limit, 512 * kMiB);
}

TEST(SystemMemoryProbe, HeapAndRssRiseWithAllocationsAndFallAfterFreeAndPurge) {
  MEMGATE_SKIP_UNDER_ASAN();
  SystemMemoryProbe probe;
  const MemorySample before = probe.sample();
  SmallBlocks blocks;
  const MemorySample held = probe.sample();
  EXPECT_GE(held.allocator.allocated, before.allocator.allocated + 60 * kMiB);
  EXPECT_GE(held.process.rss, before.process.rss + 60 * kMiB);

  blocks.release();
  const PurgeResult purge = probe.purge();
  const MemorySample after = probe.sample();

  EXPECT_LE(after.allocator.allocated + 60 * kMiB, held.allocator.allocated);
  EXPECT_LE(after.process.rss + 32 * kMiB, held.process.rss)
      << "held " << held.process.rss << " after " << after.process.rss;
  // VmHWM is not asserted against `held`: the kernel folds RSS into it only on
  // unmap, so pages released by madvise (a purge) can leave it below a past RSS.
  EXPECT_GE(after.process.peak_rss, after.process.rss);
  EXPECT_GT(purge.took.count(), 0);
  EXPECT_GT(purge.rss_after, 0u);
  if (allocator_name() == "jemalloc") {
    // jemalloc keeps freed pages dirty (decay) until purged: the purge itself
    // must release them, and its resident figure must follow.
    EXPECT_GE(purge.released(), static_cast<int64_t>(32 * kMiB))
        << "before " << purge.rss_before << " after " << purge.rss_after;
    EXPECT_LE(after.allocator.resident + 32 * kMiB, held.allocator.resident);
  }
}

TEST(PurgeResult, ReleasedIsNegativeWhenRssGrew) {
  PurgeResult r;
  r.rss_before = 100;
  r.rss_after = 150;
  EXPECT_EQ(r.released(), -50);
}

TEST(FakeMemoryProbe, ReturnsWhatTheTestSetAndCountsCalls) {
  FakeMemoryProbe probe;
  probe.set_allocated(3 * kMiB);
  EXPECT_EQ(probe.sample().allocator.allocated, 3 * kMiB);

  MemorySample after;
  after.allocator.allocated = 1 * kMiB;
  PurgeResult result;
  result.rss_before = 10 * kMiB;
  result.rss_after = 4 * kMiB;
  probe.set_purge_result(result, after);
  EXPECT_EQ(probe.purge().released(), static_cast<int64_t>(6 * kMiB));
  EXPECT_EQ(probe.sample().allocator.allocated, 1 * kMiB);
  EXPECT_EQ(probe.sample_count(), 2);
  EXPECT_EQ(probe.purge_count(), 1);
}

}  // namespace
}  // namespace memgate::memory
