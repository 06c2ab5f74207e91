#include "memgate/memory/process_stats.h"

#include <gtest/gtest.h>

#include <string>

namespace memgate::memory {
namespace {

TEST(ProcessStats, ParsesRssPeakAndVirtualSizeFromAStatusFile) {
  ProcessStats s = read_process_stats(std::string(MEMGATE_MEMORY_TESTDATA) + "/proc_status");
  EXPECT_EQ(s.rss, 102400u * 1024);
  EXPECT_EQ(s.peak_rss, 204800u * 1024);
  EXPECT_EQ(s.virtual_size, 798720u * 1024);
}

TEST(ProcessStats, AMissingFileGivesZeros) {
  ProcessStats s = read_process_stats("/nonexistent/status");
  EXPECT_EQ(s.rss, 0u);
  EXPECT_EQ(s.peak_rss, 0u);
  EXPECT_EQ(s.virtual_size, 0u);
}

TEST(ProcessStats, TheRealProcessHasAnRssNoLargerThanItsPeak) {
  ProcessStats s = read_process_stats();
  EXPECT_GT(s.rss, 0u);
  EXPECT_GE(s.peak_rss, s.rss);
  EXPECT_GE(s.virtual_size, s.rss);
}

}  // namespace
}  // namespace memgate::memory
