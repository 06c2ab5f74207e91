// The Prometheus side of a live memgate (issue 15): its /metrics passes
// `promtool check metrics`, and every metric deploy/prometheus/memgate-rules.yml
// uses is one it serves, so a renamed metric breaks this test instead of
// silently disabling an alert. The real promtool (Debian's prometheus package);
// without it the tests skip and say so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;

// A memgate whose /metrics has every family the rules read: a module (ready),
// the guard, coordination, a request counted by route; in `cgroup` when given
// (the container limit's family exists only under a limit).
std::unique_ptr<ServerProcess> start_full_server(const MemoryCgroup* cgroup = nullptr) {
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"},
                                      {"MEMGATE_TEST_HEAVY_MODULES", "1"},
                                      {"MEMGATE_TEST_BUILD_MB", "4"},
                                      {"MEMGATE_TEST_KEEP_MB", "1"},
                                      {"MEMGATE_TEST_BUILD_MS", "50"},
                                      {"MONITOR_INTERVAL", "100ms"},
                                      {"COORD_LOCAL_DIR", temp_dir("memgate-prom-coord")}},
                                     {}, cgroup);
  if (!server) return nullptr;
  EXPECT_TRUE(wait_for_status(server->port(), "/readyz", 200, 20s)) << server->log();
  EXPECT_EQ(http_get(server->port(), "/api/test-heavy-1").status, 200);
  return server;
}

TEST(PrometheusLive, PromtoolCheckMetricsAcceptsALiveMetricsPage) {
  std::string promtool = find_on_path("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool not found (Debian package prometheus; scripts/deps test installs it)";
  auto server = start_full_server();
  ASSERT_NE(server, nullptr);
  HttpReply metrics = http_get(server->admin_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.error;
  std::string dir = temp_dir("memgate-promtool");
  {
    std::ofstream(dir + "/metrics.txt") << metrics.body;
  }
  // promtool reads the page on stdin; its verdict and lint findings go to the log.
  RunResult check;
  auto proc = Subprocess::start({"sh", "-c", "exec \"$0\" check metrics < \"$1\"", promtool, dir + "/metrics.txt"}, {},
                                dir + "/promtool.log");
  ASSERT_TRUE(proc.ok()) << proc.status().to_string();
  std::optional<int> code = (*proc)->wait_for(30s);
  ASSERT_TRUE(code.has_value()) << "promtool did not finish";
  EXPECT_EQ(*code, 0) << read_file(dir + "/promtool.log");
  remove_tree(dir);
}

TEST(PrometheusLive, EveryMetricTheRulesUseIsServed) {
  std::string rules = read_file(std::string(MEMGATE_SOURCE_ROOT) + "/deploy/prometheus/memgate-rules.yml");
  ASSERT_FALSE(rules.empty());
  // Metric names in the expressions and the annotations (comments aside):
  // memgate's own prefix and process_; recording rules' names have a colon and do not match.
  std::set<std::string> used;
  std::regex name(R"((^|[^:A-Za-z0-9_])((?:memgate|process)_[a-z_]+)(?![:A-Za-z0-9_]))");
  std::stringstream lines(rules);
  for (std::string line; std::getline(lines, line);) {
    if (size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    for (std::sregex_iterator it(line.begin(), line.end(), name), end; it != end; ++it) used.insert((*it)[2]);
  }
  ASSERT_GE(used.size(), 10u);

  // Under a real memory limit when this machine lets a test make one.
  auto cgroup = MemoryCgroup::create(512ull << 20);
  std::set<std::string> conditional;
  if (!cgroup.ok()) {
    conditional.insert("memgate_cgroup_memory_limit_bytes");
    std::cout << "no memory cgroup (" << cgroup.status().message()
              << "): memgate_cgroup_memory_limit_bytes not checked\n";
  }
  auto server = start_full_server(cgroup.ok() ? cgroup->get() : nullptr);
  ASSERT_NE(server, nullptr);
  HttpReply metrics = http_get(server->admin_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.error;
  for (const std::string& metric : used) {
    if (conditional.count(metric)) continue;
    EXPECT_NE(metrics.body.find("\n# TYPE " + metric + " "), std::string::npos)
        << metric << " is used by a rule but memgate does not serve it";
  }
}

// One naming scheme (docs/operations.md, "Metric names"): every family on a
// live page is memgate_<part>_... or one of the standard process_* families.
TEST(PrometheusLive, EveryFamilyIsNamedMemgateOrTheStandardProcess) {
  auto server = start_full_server();
  ASSERT_NE(server, nullptr);
  HttpReply metrics = http_get(server->admin_port(), "/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.error;
  std::stringstream lines(metrics.body);
  size_t families = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::string family = line.substr(7, line.find(' ', 7) - 7);
    ++families;
    EXPECT_TRUE(family.rfind("memgate_", 0) == 0 || family.rfind("process_", 0) == 0)
        << family << " is outside the naming scheme";
  }
  EXPECT_GE(families, 30u) << metrics.body;
}

}  // namespace
}  // namespace memgate::testing
