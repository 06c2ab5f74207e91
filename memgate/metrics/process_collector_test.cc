#include "memgate/metrics/process_collector.h"

#include <gtest/gtest.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "memgate/metrics/metrics.h"
#include "memgate/metrics/parsed_exposition.h"

namespace memgate::metrics {
namespace {

const std::string kData = MEMGATE_METRICS_TESTDATA;

TEST(ProcessCollector, ReadsEveryFigureFromFixtureFiles) {
  Result<ProcessSnapshot> s = read_process_snapshot({kData + "/proc/self", kData + "/proc/stat"});
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 400 / ticks);  // utime 250 + stime 150
  EXPECT_EQ(s->resident_bytes, 25600u * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(s->virtual_bytes, 818380800u);
  EXPECT_DOUBLE_EQ(s->start_time_seconds, 1700000000 + 12345 / ticks);
  EXPECT_EQ(s->threads, 9u);
  EXPECT_EQ(s->open_fds, 4u);
  EXPECT_EQ(s->max_fds, 1024u);
}

TEST(ProcessCollector, ACommandNameWithSpacesAndParenthesesDoesNotShiftFields) {
  // The fixture's comm is "mem gate) (x": counting from the last ')' is what works.
  Result<ProcessSnapshot> s = read_process_snapshot({kData + "/proc/self", kData + "/proc/stat"});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->threads, 9u);
}

TEST(ProcessCollector, AMissingStatFileIsUnavailableAndCollectsNothing) {
  ProcessPaths missing{"/nonexistent/self", "/nonexistent/stat"};
  EXPECT_EQ(read_process_snapshot(missing).status().code(), Code::kUnavailable);
  EXPECT_TRUE(make_process_collector(missing)->Collect().empty());
}

TEST(ProcessCollector, ExposesTheStandardNamesWithPlausibleValuesForThisProcess) {
  Metrics metrics;
  metrics.own_collectable(make_process_collector());
  const std::string text = metrics.serialize();
  ParsedExposition p = parse_exposition(text);
  ASSERT_TRUE(p.error.empty()) << p.error;

  EXPECT_EQ(p.types["process_cpu_seconds_total"], "counter");
  for (const char* gauge : {"process_resident_memory_bytes", "process_virtual_memory_bytes",
                            "process_start_time_seconds", "process_open_fds", "process_max_fds", "process_threads"}) {
    EXPECT_EQ(p.types[gauge], "gauge") << gauge << "\n" << text;
  }
  EXPECT_GE(p.only("process_cpu_seconds_total").value_or(-1), 0);
  EXPECT_GT(p.only("process_resident_memory_bytes").value_or(0), 1 << 20);
  EXPECT_GE(p.only("process_virtual_memory_bytes").value_or(0), p.only("process_resident_memory_bytes").value_or(0));
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double start = p.only("process_start_time_seconds").value_or(0);
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 86400) << "started within the last day";
  EXPECT_GE(p.only("process_open_fds").value_or(0), 3);  // stdin, stdout, stderr
  EXPECT_GE(p.only("process_max_fds").value_or(0), p.only("process_open_fds").value_or(0));
  EXPECT_GE(p.only("process_threads").value_or(0), 1);
}

}  // namespace
}  // namespace memgate::metrics
