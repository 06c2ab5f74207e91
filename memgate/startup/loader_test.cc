#include "memgate/startup/loader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <latch>
#include <map>
#include <mutex>
#include <stdexcept>

#include "memgate/memory/fake_probe.h"

namespace memgate::startup {
namespace {

using namespace std::chrono_literals;

// A module whose steps a test writes as lambdas.
class TestModule final : public Module {
 public:
  TestModule(std::string name, int stage) : name_(std::move(name)), stage_(stage) {}
  std::string name() const override { return name_; }
  int stage() const override { return stage_; }
  FlagSpec flag() const override { return flag_; }
  std::optional<SizeSpec> memory_gate() const override { return gate_; }
  std::vector<RouteDecl> routes() const override { return {{http::Method::kGet, "/api/" + name_}}; }
  Result<std::string> build(ModuleContext& ctx) override {
    if (on_build) return on_build(ctx);
    return std::string("artifact of " + name_);
  }
  Status load(std::string_view artifact, ModuleContext& ctx) override {
    if (on_load) on_load(ctx);
    loaded_artifact = std::string(artifact);
    std::string body = R"({"module":")" + name_ + R"("})";
    (void)ctx.router.add(http::Method::kGet, "/api/" + name_,
                         [body](const http::Request&) { return http::Response::json(200, body); });
    return Status::Ok();
  }
  void stop() override { stopped = true; }

  std::function<Result<std::string>(ModuleContext&)> on_build;
  std::function<void(ModuleContext&)> on_load;
  FlagSpec flag_;
  std::optional<SizeSpec> gate_;
  std::string loaded_artifact;
  std::atomic<bool> stopped{false};

 private:
  std::string name_;
  int stage_;
};

class LoaderTest : public ::testing::Test {
 protected:
  LoaderTest() : workers_(4) {
    options_.stage_delay = 5s;
    options_.gate_retry_interval = 30s;
    options_.gate_retries = 3;
    options_.instance_id = "test-instance";
    options_.env = [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    options_.reset_peak = false;
    probe_.set_allocated(100 << 20);
  }

  std::shared_ptr<TestModule> add(const std::string& name, int stage) {
    auto m = std::make_shared<TestModule>(name, stage);
    modules_.push_back(m);
    return m;
  }

  std::unique_ptr<StagedLoader> make() {
    return std::make_unique<StagedLoader>(modules_, options_, config_, router_, workers_, probe_, clock_, fleet_);
  }

  ModuleState state_of(const StagedLoader& loader, const std::string& name) {
    for (auto& m : loader.modules())
      if (m.name == name) return m.state;
    ADD_FAILURE() << "no module " << name;
    return ModuleState::kFailed;
  }

  http::Endpoint::Kind route_kind(const std::string& path) {
    auto match = router_.snapshot()->find(http::Method::kGet, path);
    EXPECT_NE(match.endpoint, nullptr) << path;
    return match.endpoint ? match.endpoint->kind : http::Endpoint::Kind::kSync;
  }

  Config config_;
  http::Router router_;
  WorkerPool workers_;
  memory::FakeMemoryProbe probe_;
  FakeClock clock_;
  LocalFleetRunner fleet_;
  LoaderOptions options_;
  ModuleList modules_;
  std::map<std::string, std::string> env_;
};

TEST_F(LoaderTest, StagesRunInOrderAndWaitTheirDelayBetweenThem) {
  std::mutex mu;
  std::vector<std::string> order;
  for (auto [name, stage] : {std::pair{"c", 3}, {"a", 1}, {"b", 2}}) {
    auto m = add(name, stage);
    m->on_build = [&, name = std::string(name)](ModuleContext&) -> Result<std::string> {
      std::lock_guard lock(mu);
      order.push_back(name);
      return std::string("x");
    };
  }
  auto loader = make();
  loader->start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));  // after stage 1, in the delay
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(order, std::vector<std::string>{"a"});
  }
  EXPECT_EQ(state_of(*loader, "b"), ModuleState::kPending);
  clock_.advance(4s);
  EXPECT_EQ(clock_.sleepers(), 1);  // still waiting: the delay is 5 s
  clock_.advance(1s);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));  // after stage 2
  clock_.advance(5s);
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_EQ(loader->stages().size(), 3u);
  EXPECT_EQ(loader->stages()[1].modules, std::vector<std::string>{"b"});
  EXPECT_GE(probe_.purge_count(), 3) << "the allocator is purged after every stage";
  EXPECT_TRUE(loader->ready());
}

TEST_F(LoaderTest, AFailingModuleDoesNotStopTheOthers) {
  options_.stage_delay = 0s;
  add("good1", 1);
  auto bad = add("bad", 1);
  bad->on_build = [](ModuleContext&) -> Result<std::string> { throw std::runtime_error("disk on fire"); };
  auto failing = add("failing", 1);
  failing->on_build = [](ModuleContext&) -> Result<std::string> { return Unavailable("upstream gone"); };
  add("good2", 2);
  auto loader = make();
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(state_of(*loader, "good1"), ModuleState::kReady);
  EXPECT_EQ(state_of(*loader, "good2"), ModuleState::kReady);
  EXPECT_EQ(state_of(*loader, "bad"), ModuleState::kFailed);
  EXPECT_EQ(state_of(*loader, "failing"), ModuleState::kFailed);
  for (auto& m : loader->modules()) {
    if (m.name == "bad") {
      EXPECT_NE(m.reason.find("disk on fire"), std::string::npos) << m.reason;
    }
  }
  std::vector<std::string> missing;
  EXPECT_FALSE(loader->ready(&missing));
  EXPECT_EQ(missing.size(), 2u);
  EXPECT_EQ(route_kind("/api/bad"), http::Endpoint::Kind::kPending);
  EXPECT_EQ(route_kind("/api/good1"), http::Endpoint::Kind::kSync);
}

TEST_F(LoaderTest, PendingRoutesAnswer503UntilTheModuleIsReady) {
  options_.stage_delay = 0s;
  auto m = add("kb", 1);
  std::latch building(1), release(1);
  m->on_build = [&](ModuleContext&) -> Result<std::string> {
    building.count_down();
    release.wait();
    return std::string("index");
  };
  auto loader = make();
  // From construction, before the plan even starts: pending, never 404.
  EXPECT_EQ(route_kind("/api/kb"), http::Endpoint::Kind::kPending);
  loader->start();
  building.wait();
  auto match = router_.snapshot()->find(http::Method::kGet, "/api/kb");
  ASSERT_NE(match.endpoint, nullptr);
  ASSERT_EQ(match.endpoint->kind, http::Endpoint::Kind::kPending);
  EXPECT_EQ(match.endpoint->pending->status, 503);
  EXPECT_NE(match.endpoint->pending->body.find("building"), std::string::npos) << match.endpoint->pending->body;
  bool has_retry_after = false;
  for (auto& [k, v] : match.endpoint->pending->headers) has_retry_after |= (k == "Retry-After");
  EXPECT_TRUE(has_retry_after);
  EXPECT_FALSE(loader->ready());
  release.count_down();
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(route_kind("/api/kb"), http::Endpoint::Kind::kSync);
  EXPECT_TRUE(loader->ready());
  EXPECT_EQ(m->loaded_artifact, "index");
  auto mods = loader->modules();
  EXPECT_EQ(mods[0].built_by, "test-instance");
  EXPECT_EQ(mods[0].outcome, "local");
}

TEST_F(LoaderTest, AGatedModuleIsRetriedAndLoadsOnceMemoryAllows) {
  options_.stage_delay = 0s;
  auto m = add("kb", 1);
  m->gate_ = SizeSpec::Bytes(1536ull << 20);
  probe_.set_allocated(2ull << 30);  // above the 1.5 GB gate
  auto loader = make();
  loader->start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));  // waiting to retry
  EXPECT_EQ(state_of(*loader, "kb"), ModuleState::kGated);
  EXPECT_EQ(route_kind("/api/kb"), http::Endpoint::Kind::kPending);
  EXPECT_FALSE(loader->ready());
  clock_.advance(30s);  // first retry: still too high
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_EQ(state_of(*loader, "kb"), ModuleState::kGated);
  probe_.set_allocated(1ull << 30);  // memory came down
  clock_.advance(30s);
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(state_of(*loader, "kb"), ModuleState::kReady);
  EXPECT_EQ(loader->modules()[0].gate_attempts, 3);
}

TEST_F(LoaderTest, AGateGivesUpAfterItsRetriesAndTheSkipIsFinal) {
  options_.stage_delay = 0s;
  options_.gate_retries = 2;
  auto m = add("kb", 1);
  m->gate_ = SizeSpec::Share(0.5);  // half of MEMORY_LIMIT (no cgroup limit in the fake)
  options_.memory_limit = 1ull << 30;
  probe_.set_allocated(600ull << 20);
  auto loader = make();
  loader->start();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(clock_.wait_for_sleepers(1));
    clock_.advance(30s);
  }
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(state_of(*loader, "kb"), ModuleState::kSkippedMemory);
  EXPECT_TRUE(loader->ready()) << "skipped(memory) after the last try is final";
  EXPECT_NE(loader->modules()[0].reason.find("50%"), std::string::npos) << loader->modules()[0].reason;
}

TEST_F(LoaderTest, TheGuardsRefusalGatesLikeMemoryDoes) {
  options_.stage_delay = 0s;
  std::atomic<bool> refuse{true};
  options_.refuse_optional_init = [&] { return refuse.load(); };
  add("coach", 1);
  auto loader = make();
  loader->start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_EQ(state_of(*loader, "coach"), ModuleState::kGated);
  refuse = false;
  clock_.advance(30s);
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(state_of(*loader, "coach"), ModuleState::kReady);
}

TEST_F(LoaderTest, ADisabledModuleIsSkippedAndItsRoutesSayWhy) {
  options_.stage_delay = 0s;
  auto kb = add("kb", 1);
  kb->flag_ = {"ENABLE_KB_SERVICE", false};
  auto ai = add("ai", 1);
  ai->flag_ = {"ENABLE_AI_ROUTES", true};
  env_["ENABLE_AI_ROUTES"] = "false";
  auto on = add("opt", 1);
  on->flag_ = {"ENABLE_OPT", false};
  env_["ENABLE_OPT"] = "yes";
  auto loader = make();
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(state_of(*loader, "kb"), ModuleState::kSkippedFlag);
  EXPECT_EQ(state_of(*loader, "ai"), ModuleState::kSkippedFlag);
  EXPECT_EQ(state_of(*loader, "opt"), ModuleState::kReady);
  auto match = router_.snapshot()->find(http::Method::kGet, "/api/kb");
  ASSERT_NE(match.endpoint, nullptr);
  ASSERT_EQ(match.endpoint->kind, http::Endpoint::Kind::kSync);
  http::RequestBuilder rb;
  rb.method("GET").target("/api/kb");
  http::Response r = match.endpoint->sync(rb.get());
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("ENABLE_KB_SERVICE=false"), std::string::npos);
  EXPECT_TRUE(loader->ready());
  EXPECT_NE(loader->plan_text().find("no (ENABLE_KB_SERVICE=false)"), std::string::npos) << loader->plan_text();
}

TEST_F(LoaderTest, ABatchLoadsItsModulesAtTheSameTime) {
  options_.stage_delay = 0s;
  options_.batch_size = 2;
  std::latch both(2);
  for (const char* name : {"x", "y"}) {
    add(name, 1)->on_build = [&](ModuleContext&) -> Result<std::string> {
      both.arrive_and_wait();  // deadlocks unless the two build at once
      return std::string("ok");
    };
  }
  auto loader = make();
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_TRUE(loader->ready());
}

TEST_F(LoaderTest, StartupzSaysTheTruthAtEachStep) {
  options_.stage_delay = 0s;
  std::latch building(1), release(1);
  auto m = add("kb", 1);
  m->on_build = [&](ModuleContext&) -> Result<std::string> {
    building.count_down();
    release.wait();
    return std::string("data");
  };
  add("later", 2);
  auto loader = make();
  auto doc = loader->startupz();
  EXPECT_EQ(doc.at("finished"), false);
  EXPECT_EQ(doc.at("modules").as_array()[0].at("state"), "pending");
  loader->start();
  building.wait();
  doc = loader->startupz();
  EXPECT_EQ(doc.at("modules").as_array()[0].at("state"), "building");
  EXPECT_EQ(doc.at("modules").as_array()[1].at("state"), "pending");
  EXPECT_EQ(doc.at("ready"), false);
  release.count_down();
  ASSERT_TRUE(loader->wait_finished(10s));
  doc = loader->startupz();
  EXPECT_EQ(doc.at("finished"), true);
  EXPECT_EQ(doc.at("ready"), true);
  EXPECT_EQ(doc.at("stages").as_array().size(), 2u);
  EXPECT_EQ(doc.at("modules").as_array()[0].at("built_by"), "test-instance");
}

TEST_F(LoaderTest, StopTellsARunningBuildAndStopsLoadedModules) {
  options_.stage_delay = 0s;
  auto ready = add("ready", 1);
  auto slow = add("slow", 2);
  std::latch started(1);
  slow->on_build = [&](ModuleContext& ctx) -> Result<std::string> {
    started.count_down();
    while (!ctx.stop.stop_requested()) std::this_thread::yield();
    return Cancelled("stopped");
  };
  auto loader = make();
  loader->start();
  started.wait();
  loader->stop();
  EXPECT_TRUE(ready->stopped);
  EXPECT_FALSE(slow->stopped);
}

TEST_F(LoaderTest, ModulesSeeTheMetricsTheLoaderWasGivenAndNullWithoutOne) {
  options_.stage_delay = 0s;
  // The loader only hands the pointer on, never dereferences it: any address
  // stands in for a Metrics here, which keeps this test off the metrics library.
  int stand_in = 0;
  auto* given = reinterpret_cast<metrics::Metrics*>(&stand_in);
  std::atomic<metrics::Metrics*> at_build{nullptr}, at_load{nullptr};
  auto m = add("counted", 1);
  m->on_build = [&](ModuleContext& ctx) -> Result<std::string> {
    at_build = ctx.metrics;
    return std::string("x");
  };
  m->on_load = [&](ModuleContext& ctx) { at_load = ctx.metrics; };
  {
    auto loader = make();
    loader->set_metrics(given);
    loader->start();
    ASSERT_TRUE(loader->wait_finished(10s));
    EXPECT_EQ(at_build.load(), given);
    EXPECT_EQ(at_load.load(), given);
  }

  at_build = given;
  at_load = given;
  auto loader = make();  // set_metrics never called: unit tests, tools
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(at_build.load(), nullptr);
  EXPECT_EQ(at_load.load(), nullptr);
}

// Real memory, the real probe: a module that builds a large temporary table and
// keeps a small one leaves the heap near the small one once the stage is purged.
class RealMemoryModule final : public Module {
 public:
  std::string name() const override { return "real"; }
  Result<std::string> build(ModuleContext&) override {
    std::vector<char> scratch(kScratch);
    std::memset(scratch.data(), 7, scratch.size());  // touch it: resident for real
    return std::string(kKept, 'k');                   // what we keep
  }
  Status load(std::string_view artifact, ModuleContext&) override {
    kept_.assign(artifact.begin(), artifact.end());
    return Status::Ok();
  }
  static constexpr size_t kScratch = 96u << 20;
  static constexpr size_t kKept = 8u << 20;
  std::vector<char> kept_;
};

TEST(StagedLoaderWithRealMemory, AStageKeepsWhatItsModuleKeepsNotWhatItTouched) {
  Config config;
  http::Router router;
  WorkerPool workers(2);
  memory::SystemMemoryProbe probe;
  SteadyClock clock;
  LocalFleetRunner fleet;
  LoaderOptions options;
  options.stage_delay = 0s;
  options.instance_id = "me";
  auto module = std::make_shared<RealMemoryModule>();
  uint64_t heap_before = probe.sample().allocator.allocated;
  StagedLoader loader({module}, options, config, router, workers, probe, clock, fleet);
  loader.start();
  ASSERT_TRUE(loader.wait_finished(30s));
  ASSERT_EQ(loader.stages().size(), 1u);
  const StageReport stage = loader.stages()[0];
  const ModuleReport report = loader.modules()[0];
  EXPECT_EQ(report.state, ModuleState::kReady);
  EXPECT_EQ(report.artifact_bytes, RealMemoryModule::kKept);
  if (!probe.sample().allocator.available) GTEST_SKIP() << "allocator has no stats";
  // The kept table (plus its artifact copies, freed by now) is all that remains.
  EXPECT_LT(stage.heap_after, heap_before + 3 * RealMemoryModule::kKept);
  EXPECT_GE(stage.heap_after, heap_before + RealMemoryModule::kKept / 2);
  EXPECT_LT(report.heap_delta, static_cast<int64_t>(RealMemoryModule::kScratch / 2));
  // The peak saw the scratch table.
  EXPECT_GE(stage.peak_rss, RealMemoryModule::kScratch / 2) << stage.peak_method;
}

}  // namespace
}  // namespace memgate::startup
