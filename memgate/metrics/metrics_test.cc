#include "memgate/metrics/metrics.h"

#include <gtest/gtest.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "memgate/metrics/families.h"
#include "memgate/metrics/parsed_exposition.h"

namespace memgate::metrics {
namespace {

class OneGauge final : public prometheus::Collectable {
 public:
  explicit OneGauge(double v) : v_(v) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    auto f = gauge_family("memgate_test_hand_made", "A hand-made gauge.");
    add_gauge(f, v_);
    return {f};
  }

 private:
  double v_;
};

TEST(Metrics, SerializesTheRegistryAndTheAddedCollectables) {
  Metrics metrics;
  auto& family = prometheus::BuildCounter().Name("memgate_test_events_total").Help("Events.").Register(metrics.registry());
  family.Add({{"kind", "a"}}).Increment(3);
  auto gauge = std::make_shared<OneGauge>(42);
  metrics.add_collectable(gauge);

  ParsedExposition p = parse_exposition(metrics.serialize());
  ASSERT_TRUE(p.error.empty()) << p.error;
  EXPECT_EQ(p.types["memgate_test_events_total"], "counter");
  EXPECT_EQ(p.at("memgate_test_events_total{kind=\"a\"}"), 3);
  EXPECT_EQ(p.types["memgate_test_hand_made"], "gauge");
  EXPECT_EQ(p.at("memgate_test_hand_made"), 42);
}

TEST(Metrics, ACollectableIsForgottenOnceItsOwnerDropsIt) {
  Metrics metrics;
  auto gauge = std::make_shared<OneGauge>(1);
  metrics.add_collectable(gauge);
  EXPECT_TRUE(parse_exposition(metrics.serialize()).at("memgate_test_hand_made").has_value());
  gauge.reset();
  EXPECT_FALSE(parse_exposition(metrics.serialize()).at("memgate_test_hand_made").has_value());
}

TEST(Metrics, AnOwnedCollectableLivesAsLongAsTheMetrics) {
  Metrics metrics;
  std::weak_ptr<prometheus::Collectable> watch;
  {
    auto gauge = std::make_shared<OneGauge>(5);
    watch = gauge;
    metrics.own_collectable(std::move(gauge));
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(parse_exposition(metrics.serialize()).at("memgate_test_hand_made"), 5);
}

TEST(Metrics, SerializingWhileOtherThreadsAddAndDropCollectablesIsSafe) {
  Metrics metrics;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        auto gauge = std::make_shared<OneGauge>(1);
        metrics.add_collectable(gauge);
      }  // dropped at once: serialize() must skip or prune it
    });
  }
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(parse_exposition(metrics.serialize()).error.empty());
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(metrics.serialize(), "");
}

TEST(Metrics, AnEmptyRegistrySerializesToNothing) {
  Metrics metrics;
  EXPECT_EQ(metrics.serialize(), "");
}

}  // namespace
}  // namespace memgate::metrics
