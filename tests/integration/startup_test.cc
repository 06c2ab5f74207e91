// The staged start-up of the real binary: pending routes, /readyz and /startupz
// along the way, one build per fleet with a real redis-server, and the scheduler
// running a job once per period across two processes.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

json::object startupz(uint16_t port) {
  HttpReply r = http_get(port, "/startupz");
  EXPECT_EQ(r.status, 200) << r.error;
  return json::parse(r.body).as_object();
}

const json::object* module_in(const json::object& startup, const std::string& name) {
  for (auto& m : startup.at("modules").as_array())
    if (m.at("name").as_string() == name) return &m.as_object();
  return nullptr;
}

TEST(StagedStart, CoreRoutesAnswerAtOnceAndHeavyRoutesAre503UntilReady) {
  std::string dir = temp_dir("memgate-staged");
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"},
                                      {"MEMGATE_TEST_HEAVY_MODULES", "2"},
                                      {"MEMGATE_TEST_BUILD_MB", "32"},
                                      {"MEMGATE_TEST_KEEP_MB", "4"},
                                      {"MEMGATE_TEST_BUILD_MS", "400"},
                                      {"STAGE_DELAY", "300ms"},
                                      {"INSTANCE_ID", "inst-a"},
                                      {"COORD_LOCAL_DIR", dir}});
  ASSERT_NE(server, nullptr);
  // The listener is up while stage 1 is still building.
  HttpReply ready = http_get(server->port(), "/readyz");
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_NE(ready.body.find("test-heavy-2"), std::string::npos) << ready.body;
  HttpReply pending = http_get(server->port(), "/api/test-heavy-2");
  EXPECT_EQ(pending.status, 503) << "a heavy route must be pending, never 404";
  EXPECT_FALSE(pending.header("retry-after").empty());
  auto body = json::parse(pending.body);
  EXPECT_EQ(body.at("error").at("module"), "test-heavy-2");
  EXPECT_EQ(body.at("error").at("state"), "pending");

  ASSERT_TRUE(wait_for_status(server->port(), "/readyz", 200, 20s)) << server->log();
  EXPECT_EQ(http_get(server->port(), "/api/test-heavy-2").status, 200);
  // Ready comes with the last module; the stage's own bookkeeping (purge, figures)
  // follows right after.
  json::object s;
  ASSERT_TRUE(wait_until(
      [&] {
        s = startupz(server->port());
        return s.at("finished").as_bool();
      },
      10s));
  ASSERT_EQ(s.at("stages").as_array().size(), 2u);
  // Stage 2 started only after stage 1 was done and the delay had passed.
  auto& st = s.at("stages").as_array();
  EXPECT_GE(st[1].at("started_ms").to_number<int64_t>(),
            st[0].at("started_ms").to_number<int64_t>() + st[0].at("duration_ms").to_number<int64_t>() + 300);
  for (const char* name : {"test-heavy-1", "test-heavy-2"}) {
    const json::object* m = module_in(s, name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_EQ(m->at("state"), "ready");
    EXPECT_EQ(m->at("built_by"), "inst-a");
    EXPECT_GE(m->at("duration_ms").to_number<int64_t>(), 400);
  }
  // The stage peak saw the 32 MiB scratch table; the heap kept far less.
  EXPECT_GE(st[0].at("peak_rss_bytes").to_number<int64_t>(), 16 << 20);
  // The log has the summary table.
  EXPECT_NE(server->log().find("start-up plan finished"), std::string::npos);
  remove_tree(dir);
}

TEST(StagedStart, ADisabledModulesRouteIsA404NamingTheFlag) {
  auto server = ServerProcess::start({{"ENABLE_EXAMPLE_MODULE", "false"}, {"ENABLE_AI_ROUTES", "false"}});
  ASSERT_NE(server, nullptr);
  HttpReply r = http_get(server->port(), "/api/example/primes?below=10");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("ENABLE_EXAMPLE_MODULE=false"), std::string::npos) << r.body;
  EXPECT_EQ(http_get(server->port(), "/readyz").status, 200);
}

TEST(StagedStart, ABadModuleSettingStopsStartUpNamingIt) {
  RunResult r = run_memgate({{"ENABLE_EXAMPLE_MODULE", "true"}, {"EXAMPLE_PRIMES_LIMIT", "lots"},
                             {"PORT", std::to_string(free_port())}, {"ADMIN_PORT", std::to_string(free_port())}},
                            {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("EXAMPLE_PRIMES_LIMIT='lots'"), std::string::npos) << r.output;
}

TEST(StagedStart, PlanPrintsWhatWouldRunWithoutRunningIt) {
  RunResult r = run_memgate({{"ENABLE_EXAMPLE_MODULE", "true"}}, {"plan"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("example-primes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("init:example-primes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ENABLE_EXAMPLE_MODULE=true"), std::string::npos) << r.output;
}

TEST(StagedStart, ABuiltInModulesFlagOnTheCommandLineWinsOverItsVariable) {
  RunResult r = run_memgate({{"ENABLE_AI_ROUTES", "false"}}, {"--enable-ai-routes", "true", "plan"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ENABLE_AI_ROUTES=true"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("no (ENABLE_AI_ROUTES=false)"), std::string::npos) << r.output;
}

class FleetStart : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = RedisServer::start();
    ASSERT_TRUE(redis.ok()) << redis.status().to_string();
    redis_ = std::move(*redis);
  }
  ServerProcess::Env env(const std::string& instance) {
    return {{"REDIS_URL", redis_->url()},
            {"INSTANCE_ID", instance},
            {"ENABLE_EXAMPLE_MODULE", "true"},
            {"EXAMPLE_PRIMES_LIMIT", "60000000"},
            {"STAGE_DELAY", "0s"}};
  }
  std::unique_ptr<RedisServer> redis_;
};

TEST_F(FleetStart, TwoInstancesStartedTogetherBuildOnceAndTheOtherLoads) {
  auto a = ServerProcess::start(env("inst-a"));
  auto b = ServerProcess::start(env("inst-b"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(wait_for_status(a->port(), "/readyz", 200, 60s)) << a->log();
  ASSERT_TRUE(wait_for_status(b->port(), "/readyz", 200, 60s)) << b->log();
  const json::object* ma = nullptr;
  const json::object* mb = nullptr;
  json::object sa = startupz(a->port()), sb = startupz(b->port());
  ma = module_in(sa, "example-primes");
  mb = module_in(sb, "example-primes");
  ASSERT_TRUE(ma && mb);
  std::multiset<std::string> outcomes{std::string(ma->at("outcome").as_string()),
                                      std::string(mb->at("outcome").as_string())};
  EXPECT_EQ(outcomes.count("built"), 1u) << sa << "\n" << sb;
  EXPECT_EQ(outcomes.count("waited") + outcomes.count("loaded"), 1u) << sa << "\n" << sb;
  // Both say who built: the same instance.
  EXPECT_EQ(ma->at("built_by"), mb->at("built_by"));
  std::string builder(ma->at("built_by").as_string());
  EXPECT_TRUE(builder == "inst-a" || builder == "inst-b") << builder;
  // Both answer the same thing.
  HttpReply ra = http_get(a->port(), "/api/example/primes?below=1000000");
  HttpReply rb = http_get(b->port(), "/api/example/primes?below=1000000");
  EXPECT_EQ(ra.status, 200);
  EXPECT_EQ(ra.body, rb.body);
  EXPECT_NE(ra.body.find("\"count\":78498"), std::string::npos) << ra.body;

  // A restart skips the build: the done flag and artifact are in Redis.
  auto c = ServerProcess::start(env("inst-c"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(wait_for_status(c->port(), "/readyz", 200, 60s)) << c->log();
  json::object sc = startupz(c->port());
  const json::object* mc = module_in(sc, "example-primes");
  ASSERT_NE(mc, nullptr);
  EXPECT_EQ(mc->at("outcome"), "loaded") << sc;
  EXPECT_EQ(std::string(mc->at("built_by").as_string()), builder);
}

// `plan --probes` against the fleet: before any start every step is the flat
// 30 s; after one instance built and loaded, the budget is derived from the
// durations it recorded in Redis (2x each), and the sum adds up.
TEST_F(FleetStart, PlanProbesDerivesTheStartupBudgetFromTheFleetsMeasuredTimes) {
  ServerProcess::Env planner = env("planner");
  planner.emplace_back("FLEET_PEER_WAIT", "10s");
  planner.emplace_back("ENABLE_AI_ROUTES", "false");  // the one module the sum is checked for
  RunResult before = run_memgate(planner, {"plan", "--probes"});
  ASSERT_EQ(before.exit_code, 0) << before.output;
  EXPECT_NE(before.output.find("example-primes"), std::string::npos) << before.output;
  EXPECT_NE(before.output.find("build or load 30s, no measured time"), std::string::npos) << before.output;
  EXPECT_EQ(before.output.find("measured ("), std::string::npos) << before.output;

  auto a = ServerProcess::start(env("inst-a"));
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(wait_for_status(a->port(), "/readyz", 200, 60s)) << a->log();
  RunResult after = run_memgate(planner, {"plan", "--probes"});
  ASSERT_EQ(after.exit_code, 0) << after.output;
  // "example-primes 1s (FLEET_PEER_WAIT 0s + build 1s measured (2x 312ms) + load 1s measured (2x 4ms))"
  std::smatch m;
  size_t at = after.output.find("# memgate plan --probes");  // the output also holds the log (stderr)
  ASSERT_NE(at, std::string::npos) << after.output;
  std::string head = after.output.substr(at, after.output.find('\n', at) - at);
  std::regex line(R"(budget (\d+)s = core routes 5s \+ example-primes (\d+)s \(FLEET_PEER_WAIT (\w+) \+ )"
                  R"(build (\d+)s measured \(2x (\d+)(ms|s)\) \+ load (\d+)s measured \(2x (\d+)(ms|s)\)\)$)");
  ASSERT_TRUE(std::regex_search(head, m, line)) << after.output;
  auto doubled = [](const std::string& n, const std::string& unit) {
    int64_t ms = std::stoll(n) * (unit == "s" ? 1000 : 1);
    return std::max<int64_t>(1, (2 * ms + 999) / 1000);
  };
  EXPECT_EQ(std::stoll(m[4]), doubled(m[5], m[6])) << head;
  EXPECT_EQ(std::stoll(m[7]), doubled(m[8], m[9])) << head;
  // The module's step is its peer wait plus both measured parts; the budget adds the core routes.
  EXPECT_EQ(m[3], "10s") << head;
  int64_t step = std::stoll(m[2]);
  EXPECT_EQ(step, 10 + std::stoll(m[4]) + std::stoll(m[7])) << head;
  EXPECT_EQ(std::stoll(m[1]), 5 + step) << head;
  EXPECT_NE(after.output.find("failureThreshold: " + std::to_string((std::stoll(m[1]) + 1) / 2)), std::string::npos)
      << after.output;
  // `plan` shows the same durations beside the predicted peaks.
  RunResult plan = run_memgate(planner, {"plan"});
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_NE(plan.output.find("took up to " + m[5].str() + m[6].str() + " (fleet)"), std::string::npos) << plan.output;
}

TEST_F(FleetStart, AJobWithAOneSecondPeriodRunsOncePerPeriodAcrossTwoProcesses) {
  std::string dir = temp_dir("memgate-jobs");
  std::string log = dir + "/ticks.log";
  auto job_env = [&](const std::string& instance) {
    return ServerProcess::Env{{"REDIS_URL", redis_->url()},  {"INSTANCE_ID", instance},
                              {"MEMGATE_TEST_ROUTES", "1"},   {"MEMGATE_TEST_JOB_LOG", log},
                              {"MEMGATE_TEST_JOB_PERIOD", "1s"}, {"ENABLE_SCHEDULED_JOBS", "true"}};
  };
  auto a = ServerProcess::start(job_env("job-a"));
  auto b = ServerProcess::start(job_env("job-b"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Let about five periods pass (the job itself is what is being watched).
  ASSERT_TRUE(wait_until(
      [&] {
        std::ifstream in(log);
        return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n') >= 5;
      },
      15s));
  a->process().signal(SIGTERM);
  b->process().signal(SIGTERM);
  a->process().wait_for(10s);
  b->process().wait_for(10s);
  std::ifstream in(log);
  std::map<int64_t, std::vector<std::string>> runs;
  int64_t period = 0;
  std::string who;
  while (in >> period >> who) runs[period].push_back(who);
  EXPECT_GE(runs.size(), 5u);
  std::set<std::string> runners;
  for (auto& [p, list] : runs) {
    EXPECT_EQ(list.size(), 1u) << "period " << p << " ran " << list.size() << " times";
    runners.insert(list.begin(), list.end());
  }
  // Consecutive periods: no period in the middle was lost.
  EXPECT_EQ(runs.rbegin()->first - runs.begin()->first + 1, static_cast<int64_t>(runs.size()));
  remove_tree(dir);
}

}  // namespace
}  // namespace memgate::testing

namespace memgate::testing {
namespace {

// A fleet wait observes the stop: SIGTERM ends it and the process exits at once.
TEST_F(FleetStart, SigtermDuringAFleetWaitEndsTheWaitAndExitsCleanlyAtOnce) {
  ServerProcess::Env slow = {{"REDIS_URL", redis_->url()},     {"MEMGATE_TEST_ROUTES", "1"},
                             {"MEMGATE_TEST_HEAVY_MODULES", "1"}, {"MEMGATE_TEST_BUILD_MB", "8"},
                             {"MEMGATE_TEST_KEEP_MB", "1"},      {"MEMGATE_TEST_BUILD_MS", "60000"},
                             {"STAGE_DELAY", "0s"},               {"SHUTDOWN_TIMEOUT", "1s"}};
  ServerProcess::Env builder_env = slow;
  builder_env.push_back({"INSTANCE_ID", "builder"});
  auto builder = ServerProcess::start(builder_env);
  ASSERT_NE(builder, nullptr);
  ASSERT_TRUE(wait_until(
      [&] {
        json::object z = startupz(builder->port());
        const json::object* m = module_in(z, "test-heavy-1");
        return m && m->at("state") == "building";
      },
      10s))
      << builder->log();
  ServerProcess::Env waiter_env = slow;
  waiter_env.push_back({"INSTANCE_ID", "waiter"});
  auto waiter = ServerProcess::start(waiter_env);
  ASSERT_NE(waiter, nullptr);
  ASSERT_TRUE(wait_until(
      [&] {
        json::object z = startupz(waiter->port());
        const json::object* m = module_in(z, "test-heavy-1");
        return m && m->at("state") == "waiting_for_lock";
      },
      10s))
      << waiter->log();
  auto sent = std::chrono::steady_clock::now();
  waiter->process().signal(SIGTERM);
  auto code = waiter->process().wait_for(10s);
  auto took = std::chrono::steady_clock::now() - sent;
  ASSERT_TRUE(code.has_value()) << "still running 10 s after SIGTERM: " << waiter->log();
  // The wait observes the stop: no watchdog needed, a clean exit well within
  // SHUTDOWN_TIMEOUT (the watchdog would have fired at 1 s + 2 s).
  EXPECT_EQ(*code, 0) << waiter->log();
  EXPECT_LT(took, 3s) << waiter->log();
  EXPECT_NE(waiter->log().find("module test-heavy-1: stopped before it was ready (shutting down)"), std::string::npos)
      << waiter->log();
  EXPECT_EQ(waiter->log().find("still running:"), std::string::npos) << waiter->log();
  builder->process().signal(SIGTERM);
  EXPECT_TRUE(builder->process().wait_for(10s).has_value()) << "the build observes the stop";
}

// A step that does not observe the stop (a hung build) cannot hold shutdown
// past SHUTDOWN_TIMEOUT and its grace: the process exits 1 naming it.
TEST_F(FleetStart, AHungBuildCannotHoldShutdownPastItsTimeoutAndIsNamed) {
  ServerProcess::Env env = {{"REDIS_URL", redis_->url()},        {"MEMGATE_TEST_ROUTES", "1"},
                            {"MEMGATE_TEST_HEAVY_MODULES", "1"},  {"MEMGATE_TEST_BUILD_MB", "8"},
                            {"MEMGATE_TEST_KEEP_MB", "1"},        {"MEMGATE_TEST_BUILD_MS", "60000"},
                            {"MEMGATE_TEST_BUILD_IGNORES_STOP", "1"}, {"STAGE_DELAY", "0s"},
                            {"SHUTDOWN_TIMEOUT", "1s"},           {"INSTANCE_ID", "hung"}};
  auto p = ServerProcess::start(env);
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(wait_until(
      [&] {
        json::object z = startupz(p->port());
        const json::object* m = module_in(z, "test-heavy-1");
        return m && m->at("state") == "building";
      },
      10s))
      << p->log();
  auto sent = std::chrono::steady_clock::now();
  p->process().signal(SIGTERM);
  auto code = p->process().wait_for(10s);
  auto took = std::chrono::steady_clock::now() - sent;
  ASSERT_TRUE(code.has_value()) << "still running 10 s after SIGTERM: " << p->log();
  EXPECT_EQ(*code, 1) << p->log();
  EXPECT_LT(took, 6s) << "SHUTDOWN_TIMEOUT is 1s (plus a 2s grace)";
  EXPECT_NE(p->log().find("still running: test-heavy-1 (building)"), std::string::npos) << p->log();
}

}  // namespace
}  // namespace memgate::testing
