// A fleet through a Sentinel failover, with the real binary: a master, a
// replica and three sentinels (tests/support/redis_sentinel.h, down-after
// 400 ms), four memgate instances with one fleet step (test-heavy-1, a build of
// a few seconds) on REDIS_URL=redis-sentinel://... The master is SIGKILLed
// while one instance builds under the lock and three wait for it.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <optional>
#include <thread>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"
#include "tests/support/redis_sentinel.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
namespace json = boost::json;

constexpr int kInstances = 4;
constexpr const char* kModule = "test-heavy-1";

// What an instance's /metrics says of its Redis: the master it uses and
// whether its command connection is up.
struct CoordView {
  std::string master;  // "127.0.0.1:port", empty when not reported
  int state = -1;      // 0 disconnected, 1 connecting, 2 connected
};

CoordView coord_view(uint16_t admin_port) {
  CoordView v;
  HttpReply r = http_request(admin_port, "GET", "/metrics", "", {}, 2s);
  if (r.status != 200) return v;
  std::smatch m;
  static const std::regex master(R"re(memgate_coord_redis_master\{address="([0-9.:]+)"\} 1)re");
  static const std::regex state(R"re(memgate_coord_redis_connection_state ([0-9]))re");
  if (std::regex_search(r.body, m, master)) v.master = m[1];
  if (std::regex_search(r.body, m, state)) v.state = std::stoi(m[1]);
  return v;
}

double ms_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

class FleetFailover : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.down_after_ms = 400;
    options_.failover_timeout_ms = 2000;
    auto g = SentinelGroup::start(options_);
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    group_ = std::move(*g);
  }
  ServerProcess::Env env(int i, int build_ms) {
    return {{"REDIS_URL", group_->url()},
            {"INSTANCE_ID", "inst-" + std::to_string(i)},
            {"MEMGATE_TEST_ROUTES", "1"},
            {"MEMGATE_TEST_HEAVY_MODULES", "1"},
            {"MEMGATE_TEST_BUILD_MB", "8"},
            {"MEMGATE_TEST_KEEP_MB", "1"},
            {"MEMGATE_TEST_BUILD_MS", std::to_string(build_ms)},
            {"ENABLE_AI_ROUTES", "false"},
            {"STAGE_DELAY", "0s"},
            {"REDIS_CONNECT_TIMEOUT", "1s"},
            {"REDIS_COMMAND_TIMEOUT", "1s"}};
  }
  std::string cli(uint16_t port, const std::vector<std::string>& args) {
    std::string out = group_->redis_cli(port, args);
    return out.substr(0, out.find('\n'));
  }

  SentinelOptions options_;
  std::unique_ptr<SentinelGroup> group_;
};

TEST_F(FleetFailover, AMasterKilledDuringABuildIsFollowedByEveryInstanceAndTheStepIsPublishedOnce) {
  uint16_t master = group_->first_master().port(), replica = group_->first_replica().port();
  std::string old_address = "127.0.0.1:" + std::to_string(master);
  std::string new_address = "127.0.0.1:" + std::to_string(replica);
  std::vector<std::unique_ptr<ServerProcess>> fleet;
  // The first one takes the lock; the others start once it builds, so they wait.
  fleet.push_back(ServerProcess::start(env(0, 4000)));
  ASSERT_NE(fleet[0], nullptr);
  ASSERT_TRUE(wait_until([&] { return text_of(startup_module(fleet[0]->port(), kModule), "state") == "building"; },
                         10s))
      << fleet[0]->log();
  for (int i = 1; i < kInstances; ++i) {
    fleet.push_back(ServerProcess::start(env(i, 4000)));
    ASSERT_NE(fleet.back(), nullptr);
  }
  for (int i = 1; i < kInstances; ++i) {
    ASSERT_TRUE(wait_until(
        [&] { return text_of(startup_module(fleet[i]->port(), kModule), "state") == "waiting_for_lock"; }, 10s))
        << fleet[i]->log();
  }
  for (auto& p : fleet) ASSERT_EQ(coord_view(p->admin_port()).master, old_address);
  std::string fingerprint = text_of(startup_module(fleet[0]->port(), kModule), "fingerprint");
  std::string task = std::string("init:") + kModule + "@" + fingerprint;
  std::string fence_before = cli(master, {"GET", "{" + task + "}:fence"});
  ASSERT_FALSE(fence_before.empty());

  auto killed = Steady::now();
  group_->first_master().kill();  // SIGKILL, by the pid the harness started
  // The sentinels are asked on a thread of their own (three redis-cli runs a
  // round), so the instances' /metrics are polled at a finer grain.
  std::optional<Steady::time_point> promoted;
  std::thread watcher([&] {
    while (Steady::now() - killed < 30s) {
      if (group_->agreed_master_port() == replica) {
        promoted = Steady::now();
        break;
      }
    }
  });
  std::vector<std::optional<Steady::time_point>> followed(kInstances);
  auto all_followed = [&] {
    for (auto& f : followed)
      if (!f) return false;
    return true;
  };
  while (!all_followed() && Steady::now() - killed < 30s) {
    for (int i = 0; i < kInstances; ++i) {
      if (followed[i]) continue;
      CoordView v = coord_view(fleet[i]->admin_port());
      if (v.master == new_address && v.state == 2) followed[i] = Steady::now();
    }
  }
  watcher.join();
  ASSERT_TRUE(promoted) << "the sentinels did not promote the replica";
  double failover_ms = ms_between(killed, *promoted);
  double bound_ms = 2.0 * options_.down_after_ms + failover_ms;
  for (int i = 0; i < kInstances; ++i) {
    ASSERT_TRUE(followed[i]) << "inst-" << i << " did not follow the new master\n" << fleet[i]->log();
    double took = ms_between(killed, *followed[i]);
    EXPECT_LE(took, bound_ms) << "inst-" << i << " followed " << took << " ms after the kill; the sentinels took "
                              << failover_ms << " ms";
    RecordProperty("inst_" + std::to_string(i) + "_followed_ms", static_cast<int>(took));
  }
  RecordProperty("failover_ms", static_cast<int>(failover_ms));

  for (auto& p : fleet) ASSERT_TRUE(wait_for_status(p->port(), "/readyz", 200, 60s)) << p->log();
  // Exactly one instance published; the others loaded what it published.
  std::multiset<std::string> outcomes;
  std::set<std::string> builders;
  for (auto& p : fleet) {
    json::object m = startup_module(p->port(), kModule);
    outcomes.insert(text_of(m, "outcome"));
    builders.insert(text_of(m, "built_by"));
    EXPECT_EQ(http_get(p->port(), std::string("/api/") + kModule).status, 200);
  }
  size_t published = outcomes.count("built") + outcomes.count("took_over") + outcomes.count("rebuilt_bad_artifact");
  EXPECT_EQ(published, 1u) << "outcomes: " << json::serialize(json::value_from(std::vector<std::string>(
                                                  outcomes.begin(), outcomes.end())));
  EXPECT_EQ(outcomes.count("waited") + outcomes.count("loaded"), static_cast<size_t>(kInstances - 1));
  EXPECT_EQ(builders.size(), 1u) << "every instance names the same builder";
  // The done flag is on the new master, under a fence no smaller than the one
  // the builder held when the master died (larger if someone took over).
  std::string done = group_->redis_cli(replica, {"GET", "{" + task + "}:done"});
  ASSERT_NE(done.find("\"fence\""), std::string::npos) << done;
  int64_t done_fence = json::parse(done).at("fence").to_number<int64_t>();
  EXPECT_GE(done_fence, std::stoll(fence_before));
}

}  // namespace
}  // namespace memgate::testing
