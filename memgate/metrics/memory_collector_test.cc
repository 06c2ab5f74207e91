#include "memgate/metrics/memory_collector.h"

#include <gtest/gtest.h>

#include <string>

#include "memgate/memory/fake_probe.h"
#include "memgate/metrics/metrics.h"
#include "memgate/metrics/parsed_exposition.h"

namespace memgate::metrics {
namespace {

memory::MemorySample limited_sample() {
  memory::MemorySample s;
  s.allocator.available = true;
  s.allocator.allocator = "jemalloc";
  s.allocator.allocated = 100;
  s.allocator.active = 200;
  s.allocator.resident = 300;
  s.allocator.mapped = 400;
  s.allocator.retained = 500;
  s.allocator.metadata = 60;
  s.process.rss = 1000;
  s.process.peak_rss = 2000;
  s.cgroup.version = 2;
  s.cgroup.limit = 4096;
  s.cgroup.usage = 3000;
  return s;
}

TEST(MemoryCollector, ExposesEveryGaugeFromTheProbeWithTheAllocatorLabel) {
  memory::FakeMemoryProbe probe;
  probe.set_sample(limited_sample());
  Metrics metrics;
  metrics.own_collectable(make_memory_collector(probe));
  const std::string text = metrics.serialize();
  ParsedExposition p = parse_exposition(text);
  ASSERT_TRUE(p.error.empty()) << p.error;

  EXPECT_EQ(p.at("memgate_allocator_allocated_bytes{allocator=\"jemalloc\"}"), 100) << text;
  EXPECT_EQ(p.at("memgate_allocator_active_bytes{allocator=\"jemalloc\"}"), 200);
  EXPECT_EQ(p.at("memgate_allocator_resident_bytes{allocator=\"jemalloc\"}"), 300);
  EXPECT_EQ(p.at("memgate_allocator_mapped_bytes{allocator=\"jemalloc\"}"), 400);
  EXPECT_EQ(p.at("memgate_allocator_retained_bytes{allocator=\"jemalloc\"}"), 500);
  EXPECT_EQ(p.at("memgate_allocator_metadata_bytes{allocator=\"jemalloc\"}"), 60);
  EXPECT_EQ(p.at("memgate_process_peak_resident_memory_bytes"), 2000);
  EXPECT_EQ(p.at("memgate_cgroup_memory_limit_bytes"), 4096);
  EXPECT_EQ(p.at("memgate_cgroup_memory_usage_bytes"), 3000);
  EXPECT_FALSE(p.at("memgate_cgroup_memory_peak_bytes").has_value());
  for (const auto& [name, type] : p.types) EXPECT_EQ(type, "gauge") << name;
  EXPECT_EQ(probe.sample_count(), 1);
}

TEST(MemoryCollector, LeavesTheLimitOutWhenTheCgroupHasNone) {
  memory::FakeMemoryProbe probe;
  memory::MemorySample s = limited_sample();
  s.cgroup.limit.reset();
  s.cgroup.peak = 3500;
  probe.set_sample(s);
  Metrics metrics;
  metrics.own_collectable(make_memory_collector(probe));
  ParsedExposition p = parse_exposition(metrics.serialize());
  EXPECT_EQ(p.types.count("memgate_cgroup_memory_limit_bytes"), 0u);
  EXPECT_EQ(p.at("memgate_cgroup_memory_usage_bytes"), 3000);
  EXPECT_EQ(p.at("memgate_cgroup_memory_peak_bytes"), 3500);
}

TEST(MemoryCollector, ReadsTheRealAllocatorThroughTheSystemProbe) {
  memory::SystemMemoryProbe probe;
  Metrics metrics;
  metrics.own_collectable(make_memory_collector(probe));
  const std::string text = metrics.serialize();
  ParsedExposition p = parse_exposition(text);
  ASSERT_TRUE(p.error.empty()) << p.error;
  const std::string label = "{allocator=\"" + std::string(memory::allocator_name()) + "\"}";
  EXPECT_GT(p.at("memgate_allocator_allocated_bytes" + label).value_or(0), 0) << text;
  EXPECT_GT(p.at("memgate_allocator_resident_bytes" + label).value_or(0), 0) << text;
  EXPECT_GT(p.at("memgate_process_peak_resident_memory_bytes").value_or(0), 0) << text;
}

}  // namespace
}  // namespace memgate::metrics
