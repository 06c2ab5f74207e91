#include "memgate/startup/decision.h"

#include <gtest/gtest.h>

namespace memgate::startup {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

memory::MemorySample sample(uint64_t heap, uint64_t rss, std::optional<uint64_t> limit = std::nullopt,
                            std::optional<uint64_t> usage = std::nullopt,
                            std::optional<uint64_t> inactive_file = std::nullopt) {
  memory::MemorySample s;
  s.allocator.available = true;
  s.allocator.allocated = heap;
  s.process.rss = rss;
  s.cgroup.limit = limit;
  s.cgroup.usage = usage;
  s.cgroup.inactive_file = inactive_file;
  s.cgroup.version = limit ? 2 : 0;
  return s;
}

Headroom room(uint64_t bytes) {
  Headroom h;
  h.bytes = bytes;
  h.heap_side = bytes;
  return h;
}

TEST(Headroom, IsTheHeapSideLessTheMarginWithoutAContainer) {
  Headroom h = compute_headroom(sample(100 * kMiB, 120 * kMiB), 4096 * kMiB, SizeSpec::Bytes(16 * kMiB));
  EXPECT_EQ(h.heap_side, 3996 * kMiB);
  EXPECT_FALSE(h.container_side.has_value());
  EXPECT_EQ(h.bytes, 3980 * kMiB);
}

TEST(Headroom, IsTheContainerSideWhenTheContainerIsTighter) {
  Headroom h = compute_headroom(sample(20 * kMiB, 30 * kMiB, 100 * kMiB, 40 * kMiB), 4096 * kMiB,
                                SizeSpec::Bytes(8 * kMiB));
  ASSERT_TRUE(h.container_side.has_value());
  EXPECT_EQ(*h.container_side, 60 * kMiB);
  EXPECT_EQ(h.bytes, 52 * kMiB);
}

TEST(Headroom, DoesNotCountInactivePageCacheAsUsed) {
  Headroom h = compute_headroom(sample(20 * kMiB, 30 * kMiB, 100 * kMiB, 80 * kMiB, 40 * kMiB), 4096 * kMiB,
                                SizeSpec::Bytes(0));
  EXPECT_EQ(*h.container_side, 60 * kMiB);
}

TEST(Headroom, NeverCountsLessThanTheProcessRssAsUsed) {
  Headroom h = compute_headroom(sample(20 * kMiB, 50 * kMiB, 100 * kMiB, 10 * kMiB), 4096 * kMiB, SizeSpec::Bytes(0));
  EXPECT_EQ(*h.container_side, 50 * kMiB);
}

TEST(Headroom, AShareMarginIsOfTheSmallerLimit) {
  Headroom h = compute_headroom(sample(0, 0, 200 * kMiB, 0), 4096 * kMiB, SizeSpec::Share(0.1));
  EXPECT_EQ(h.margin, 20 * kMiB);
  EXPECT_EQ(h.bytes, 180 * kMiB);
}

TEST(Headroom, IsZeroWhenTheMarginEatsEverything) {
  Headroom h = compute_headroom(sample(0, 95 * kMiB, 100 * kMiB, 95 * kMiB), 4096 * kMiB, SizeSpec::Bytes(8 * kMiB));
  EXPECT_EQ(h.bytes, 0u);
}

TEST(Predict, TakesTheLargerOfTheEstimateAndTheFleetsMeasurements) {
  FleetView f;
  f.measured_build = 150 * kMiB;
  f.build_samples = 3;
  f.measured_load = 10 * kMiB;
  Prediction p = predict({100 * kMiB, 40 * kMiB, 30 * kMiB}, f);
  EXPECT_EQ(p.build, 150 * kMiB);
  EXPECT_EQ(p.build_source, "fleet (3 builds)");
  EXPECT_EQ(p.load, 40 * kMiB);
  EXPECT_EQ(p.load_source, "estimate");
  EXPECT_EQ(p.min_build_budget, 30 * kMiB);
}

TEST(Predict, CountsThePublishedArtifactsOwnBuildPeak) {
  FleetView f;
  f.published = true;
  f.artifact.build_peak = 90 * kMiB;
  Prediction p = predict({50 * kMiB, 0, 0}, f);
  EXPECT_EQ(p.build, 90 * kMiB);
  EXPECT_EQ(p.build_source, "fleet (1 builds)");
}

TEST(Decide, LoadsAPublishedArtifactWhoseLoadFits) {
  Verdict v = decide({150 * kMiB, 40 * kMiB, 0, "", ""}, room(60 * kMiB), true, true, false);
  EXPECT_EQ(v.decision, Decision::kLoad);
}

TEST(Decide, SkipsWithBothNumbersWhenEvenTheLoadDoesNotFit) {
  Verdict v = decide({150 * kMiB, 80 * kMiB, 0, "", ""}, room(60 * kMiB), true, true, false);
  EXPECT_EQ(v.decision, Decision::kSkip);
  EXPECT_EQ(v.reason, "load needs ~80.0 MiB, headroom 60.0 MiB");
}

TEST(Decide, BuildsWhenTheUnboundedBuildFits) {
  Verdict v = decide({50 * kMiB, 20 * kMiB, 0, "", ""}, room(60 * kMiB), false, true, false);
  EXPECT_EQ(v.decision, Decision::kBuild);
}

TEST(Decide, WaitsForAPeerInsteadOfContendingWhenTheBuildDoesNotFit) {
  Verdict v = decide({150 * kMiB, 40 * kMiB, 30 * kMiB, "", ""}, room(60 * kMiB), false, true, false);
  EXPECT_EQ(v.decision, Decision::kWaitForPeer);
  EXPECT_NE(v.reason.find("build needs ~150.0 MiB, headroom 60.0 MiB"), std::string::npos) << v.reason;
}

TEST(Decide, BuildsWithinTheHeadroomOnceThePeerWaitIsOver) {
  Verdict v = decide({150 * kMiB, 40 * kMiB, 30 * kMiB, "", ""}, room(60 * kMiB), false, true, true);
  EXPECT_EQ(v.decision, Decision::kBuildWithinBudget);
  EXPECT_EQ(v.budget, 60 * kMiB);
}

TEST(Decide, BuildsWithinABudgetAtOnceWithoutPeers) {
  Verdict v = decide({150 * kMiB, 40 * kMiB, 30 * kMiB, "", ""}, room(60 * kMiB), false, false, false);
  EXPECT_EQ(v.decision, Decision::kBuildWithinBudget);
}

TEST(Decide, SkipsWhenTheBudgetedBuildDoesNotFitEither) {
  Verdict v = decide({150 * kMiB, 20 * kMiB, 70 * kMiB, "", ""}, room(60 * kMiB), false, false, false);
  EXPECT_EQ(v.decision, Decision::kSkip);
  EXPECT_EQ(v.reason, "build needs ~150.0 MiB, headroom 60.0 MiB (within a budget: at least 70.0 MiB)");
}

TEST(Decide, SkipsAModuleThatCannotBuildWithinABudget) {
  Verdict v = decide({150 * kMiB, 20 * kMiB, 0, "", ""}, room(60 * kMiB), false, false, false);
  EXPECT_EQ(v.decision, Decision::kSkip);
  EXPECT_NE(v.reason.find("cannot build within a budget"), std::string::npos);
}

TEST(Decide, TreatsAnUnknownPeakAsFitting) {
  Verdict v = decide({0, 0, 0, "", ""}, room(0), false, true, false);
  EXPECT_EQ(v.decision, Decision::kBuild);
}

}  // namespace
}  // namespace memgate::startup
