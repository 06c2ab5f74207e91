#include "memgate/memory/cgroup.h"

#include <gtest/gtest.h>

#include <string>

namespace memgate::memory {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

CgroupStats read_fixture(const std::string& name) {
  const std::string dir = std::string(MEMGATE_MEMORY_TESTDATA) + "/cgroup/" + name;
  return read_cgroup(dir + "/proc_self_cgroup", dir + "/fs");
}

TEST(Cgroup, V2LimitIsTheSmallestAlongTheAncestors) {
  CgroupStats s = read_fixture("v2_limited");
  EXPECT_EQ(s.version, 2);
  ASSERT_TRUE(s.limit.has_value());
  EXPECT_EQ(*s.limit, 512 * kMiB);
  EXPECT_EQ(s.usage, 123456789u);
  EXPECT_EQ(s.peak, 234567890u);
  EXPECT_TRUE(s.path.ends_with("/fs/system.slice/memgate.service")) << s.path;
}

TEST(Cgroup, V2MaxEverywhereMeansNoLimit) {
  CgroupStats s = read_fixture("v2_max");
  EXPECT_EQ(s.version, 2);
  EXPECT_FALSE(s.limit.has_value());
  EXPECT_EQ(s.usage, 1 * kMiB);
  EXPECT_FALSE(s.peak.has_value()) << "memory.peak is absent before Linux 5.19";
}

TEST(Cgroup, V2LimitOnAParentBindsAChildWithMax) {
  CgroupStats s = read_fixture("v2_parent_limited");
  EXPECT_EQ(s.version, 2);
  EXPECT_EQ(s.limit, 256 * kMiB);
  EXPECT_EQ(s.usage, 50 * kMiB);
}

TEST(Cgroup, V2InANamespacedContainerReadsTheMountRoot) {
  CgroupStats s = read_fixture("v2_namespaced");
  EXPECT_EQ(s.version, 2);
  EXPECT_EQ(s.limit, 2048 * kMiB);
  EXPECT_EQ(s.usage, 70 * kMiB);
}

TEST(Cgroup, V1LimitedOnAHybridHostIsReadFromTheMemoryController) {
  CgroupStats s = read_fixture("v1_limited");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.limit, 768 * kMiB);
  EXPECT_EQ(s.usage, 300 * kMiB);
  EXPECT_EQ(s.peak, 400 * kMiB);
  EXPECT_TRUE(s.path.ends_with("/fs/memory/docker/abc123")) << s.path;
}

TEST(Cgroup, V1HugeLimitMeansNoLimit) {
  CgroupStats s = read_fixture("v1_unlimited");
  EXPECT_EQ(s.version, 1);
  EXPECT_FALSE(s.limit.has_value());
  EXPECT_EQ(s.usage, 3170304u);
  EXPECT_EQ(s.peak, 3944448u);
}

TEST(Cgroup, V1HierarchicalLimitOfAnAncestorIsHonoured) {
  CgroupStats s = read_fixture("v1_parent_limited");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.limit, 128 * kMiB);
}

TEST(Cgroup, V1PathMissingFromTheMountFallsBackToTheMountRoot) {
  CgroupStats s = read_fixture("v1_foreign_path");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.limit, 1024 * kMiB);
  EXPECT_EQ(s.usage, 2048u);
  EXPECT_FALSE(s.peak.has_value());
}

TEST(Cgroup, NoMemoryFilesMeansVersionZeroAndNoFigures) {
  CgroupStats s = read_fixture("none");
  EXPECT_EQ(s.version, 0);
  EXPECT_FALSE(s.limit.has_value());
  EXPECT_FALSE(s.usage.has_value());
  EXPECT_TRUE(s.path.empty());
}

TEST(Cgroup, AMissingProcFileMeansVersionZero) {
  CgroupStats s = read_cgroup("/nonexistent/proc/self/cgroup", "/nonexistent");
  EXPECT_EQ(s.version, 0);
  EXPECT_FALSE(s.limit.has_value());
}

TEST(Cgroup, TheRealSystemAnswersWithoutCrashing) {
  CgroupStats s = read_cgroup();
  if (s.version == 0) GTEST_SKIP() << "no memory cgroup visible here";
  EXPECT_TRUE(s.usage.has_value());
  if (s.limit) {
    EXPECT_GT(*s.limit, 0u);
  }
}

}  // namespace
}  // namespace memgate::memory
