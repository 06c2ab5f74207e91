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

TEST(ProcessStats, TheStartTimeIsField22CountedAfterTheLastParenthesisOfTheName) {
  // A name with spaces and a ')' of its own, as a process may call itself.
  std::string stat = "4242 (mem gate) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 3 0 987654 12345 678";
  EXPECT_EQ(parse_start_ticks(stat), std::optional<uint64_t>(987654));
  EXPECT_EQ(parse_start_ticks("4242 (memgate) S 1 2 3"), std::nullopt) << "too few fields";
  EXPECT_EQ(parse_start_ticks("no parenthesis at all"), std::nullopt);
  EXPECT_EQ(parse_start_ticks("1 (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x"), std::nullopt) << "not a number";
}

TEST(ProcessStats, ThisProcessIsOlderThanZeroAndYoungerThanADay) {
  std::optional<int64_t> age = process_age_ms();
  ASSERT_TRUE(age.has_value());
  EXPECT_GE(*age, 0);
  EXPECT_LT(*age, 86'400'000);
}

}  // namespace
}  // namespace memgate::memory
