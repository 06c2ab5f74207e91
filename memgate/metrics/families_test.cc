#include "memgate/metrics/families.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <vector>

#include "memgate/metrics/parsed_exposition.h"

namespace memgate::metrics {
namespace {

TEST(Families, CounterAndGaugeSamplesCarryTheirLabels) {
  auto requests = counter_family("memgate_test_requests_total", "Requests.");
  add_counter(requests, 7, {{"method", "GET"}});
  add_counter(requests, 2, {{"method", "POST"}});
  auto depth = gauge_family("memgate_test_queue_depth", "Depth.");
  add_gauge(depth, 3.5);

  ParsedExposition p = parse_exposition(prometheus::TextSerializer().Serialize({requests, depth}));
  ASSERT_TRUE(p.error.empty()) << p.error;
  EXPECT_EQ(p.types["memgate_test_requests_total"], "counter");
  EXPECT_EQ(p.types["memgate_test_queue_depth"], "gauge");
  EXPECT_EQ(p.at("memgate_test_requests_total{method=\"GET\"}"), 7);
  EXPECT_EQ(p.at("memgate_test_requests_total{method=\"POST\"}"), 2);
  EXPECT_EQ(p.at("memgate_test_queue_depth"), 3.5);
}

TEST(Families, HistogramBucketsAreCumulativeAndEndWithInfCountAndSum) {
  auto latency = histogram_family("memgate_test_latency_seconds", "Latency.");
  const std::vector<double> bounds = {0.001, 0.01, 0.1};
  const std::vector<uint64_t> counts = {5, 3, 0, 2};  // the last is above 0.1
  ASSERT_TRUE(add_histogram(latency, bounds, counts, 0.75, {{"route", "/kb"}}).ok());

  ASSERT_EQ(latency.metric.size(), 1u);
  const auto& h = latency.metric[0].histogram;
  ASSERT_EQ(h.bucket.size(), 4u);
  EXPECT_EQ(h.bucket[0].cumulative_count, 5u);
  EXPECT_EQ(h.bucket[1].cumulative_count, 8u);
  EXPECT_EQ(h.bucket[2].cumulative_count, 8u);
  EXPECT_EQ(h.bucket[3].cumulative_count, 10u);
  EXPECT_TRUE(std::isinf(h.bucket[3].upper_bound));
  EXPECT_EQ(h.sample_count, 10u);
  EXPECT_EQ(h.sample_sum, 0.75);

  const std::string text = prometheus::TextSerializer().Serialize({latency});
  ParsedExposition p = parse_exposition(text);
  ASSERT_TRUE(p.error.empty()) << p.error;
  EXPECT_EQ(p.types["memgate_test_latency_seconds"], "histogram");
  EXPECT_EQ(p.at("memgate_test_latency_seconds_bucket{route=\"/kb\",le=\"0.001\"}"), 5) << text;
  EXPECT_EQ(p.at("memgate_test_latency_seconds_bucket{route=\"/kb\",le=\"0.01\"}"), 8) << text;
  EXPECT_EQ(p.at("memgate_test_latency_seconds_bucket{route=\"/kb\",le=\"0.1\"}"), 8) << text;
  EXPECT_EQ(p.at("memgate_test_latency_seconds_bucket{route=\"/kb\",le=\"+Inf\"}"), 10) << text;
  EXPECT_EQ(p.at("memgate_test_latency_seconds_count{route=\"/kb\"}"), 10) << text;
  EXPECT_EQ(p.at("memgate_test_latency_seconds_sum{route=\"/kb\"}"), 0.75) << text;
  // +Inf appears once, not once from us and once from the serializer.
  EXPECT_EQ(text.find("le=\"+Inf\""), text.rfind("le=\"+Inf\"")) << text;
}

TEST(Families, HistogramWithoutBoundsHasOnlyTheInfBucket) {
  auto f = histogram_family("memgate_test_sizes_bytes", "Sizes.");
  const std::vector<uint64_t> counts = {4};
  ASSERT_TRUE(add_histogram(f, {}, counts, 100).ok());
  ASSERT_EQ(f.metric[0].histogram.bucket.size(), 1u);
  EXPECT_EQ(f.metric[0].histogram.bucket[0].cumulative_count, 4u);
  EXPECT_EQ(f.metric[0].histogram.sample_count, 4u);
}

TEST(Families, HistogramRejectsMismatchedCountsAndUnorderedBounds) {
  auto f = histogram_family("memgate_test_bad", "Bad.");
  const std::vector<double> bounds = {1, 2};
  const std::vector<uint64_t> too_few = {1, 2};
  EXPECT_EQ(add_histogram(f, bounds, too_few, 0).code(), Code::kInvalidArgument);
  const std::vector<double> unordered = {2, 1};
  const std::vector<uint64_t> counts = {1, 2, 3};
  EXPECT_EQ(add_histogram(f, unordered, counts, 0).code(), Code::kInvalidArgument);
  const std::vector<double> with_inf = {1, INFINITY};
  EXPECT_EQ(add_histogram(f, with_inf, counts, 0).code(), Code::kInvalidArgument);
  EXPECT_TRUE(f.metric.empty());
}

}  // namespace
}  // namespace memgate::metrics
