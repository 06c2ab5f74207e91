#include "memgate/startup/loader.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <atomic>
#include <cstring>
#include <latch>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

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
  std::string input_fingerprint() const override {
    std::lock_guard lock(mu_);
    return inputs_;
  }
  PeakEstimate estimate_peaks() const override { return estimate_; }
  Result<ChunkedBytes> build(ModuleContext& ctx) override {
    budgets.push_back(ctx.memory_budget);
    Result<std::string> bytes = on_build ? on_build(ctx) : Result<std::string>("artifact of " + name_);
    if (!bytes.ok()) return bytes.status();
    return ChunkedBytes::from_string(std::move(*bytes));
  }
  Status load(ByteSource& bytes, ModuleContext& ctx) override {
    auto whole = read_artifact(bytes, 1 << 20);
    if (!whole.ok()) return whole.status();
    std::string_view artifact = *whole;
    if (on_load) on_load(ctx);
    channel = ctx.artifacts;
    loaded_artifact = std::string(artifact);
    std::string body = R"({"module":")" + name_ + R"("})";
    (void)ctx.router.add(http::Method::kGet, "/api/" + name_,
                         [body](const http::Request&) { return http::Response::json(200, body); });
    return Status::Ok();
  }
  void stop() override { stopped = true; }

  void set_inputs(std::string inputs) {
    std::lock_guard lock(mu_);
    inputs_ = std::move(inputs);
  }

  std::function<Result<std::string>(ModuleContext&)> on_build;
  std::function<void(ModuleContext&)> on_load;
  FlagSpec flag_;
  std::optional<SizeSpec> gate_;
  PeakEstimate estimate_;
  std::optional<FleetSpec> fleet_;
  std::string loaded_artifact;
  std::vector<uint64_t> budgets;  // ctx.memory_budget of each build
  ArtifactChannel* channel = nullptr;
  std::atomic<bool> stopped{false};

  std::optional<FleetSpec> fleet() const override { return fleet_; }

 private:
  std::string name_;
  int stage_;
  mutable std::mutex mu_;
  std::string inputs_;
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

TEST_F(LoaderTest, ProgressNotesNameTheStageTheStepAndABuildsPercentageAtMostOnceASecond) {
  std::mutex mu;
  std::vector<ProgressNote> notes;
  options_.stage_delay = 0ms;
  options_.on_progress = [&](const ProgressNote& n) {
    std::lock_guard lock(mu);
    notes.push_back(n);
  };
  auto a = add("a", 1);
  a->on_build = [this](ModuleContext& ctx) -> Result<std::string> {
    ctx.progress(10);
    ctx.progress(20);  // within the same second: not passed on
    clock_.advance(1s);
    ctx.progress(20);
    ctx.progress(20);  // no change: not passed on
    return std::string("x");
  };
  add("b", 2);
  auto loader = make();
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  loader->stop();
  std::lock_guard lock(mu);
  std::vector<std::string> texts;
  for (auto& n : notes) texts.push_back(n.text);
  EXPECT_EQ(texts, (std::vector<std::string>{"stage 1/2: a", "stage 1/2: a building", "stage 1/2: a building, 10%",
                                             "stage 1/2: a building, 20%", "stage 1/2: a loading_artifact",
                                             "stage 1/2: a ready", "stage 2/2: b", "stage 2/2: b building",
                                             "stage 2/2: b loading_artifact", "stage 2/2: b ready",
                                             "start-up plan finished: a ready, b ready"}));
  ASSERT_EQ(notes.size(), texts.size());
  EXPECT_FALSE(notes[0].long_step);
  EXPECT_TRUE(notes[1].long_step) << "a build asks a supervisor for time";
  EXPECT_TRUE(notes[2].long_step);
  EXPECT_FALSE(notes[5].long_step);
  EXPECT_TRUE(notes.back().finished);
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

TEST_F(LoaderTest, EveryStateChangeIsAPhaseMarkOnTheLoadersTimeAxis) {
  options_.stage_delay = 0s;
  auto m = add("kb", 1);
  m->gate_ = SizeSpec::Bytes(1536ull << 20);
  probe_.set_allocated(2ull << 30);  // gated first
  auto loader = make();
  loader->start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  probe_.set_allocated(1ull << 30);
  clock_.advance(30s);
  ASSERT_TRUE(loader->wait_finished(10s));
  std::vector<PhaseMark> phases = loader->modules()[0].phases;
  std::vector<ModuleState> states;
  for (const PhaseMark& p : phases) states.push_back(p.state);
  EXPECT_EQ(states, (std::vector<ModuleState>{ModuleState::kGated, ModuleState::kBuilding,
                                              ModuleState::kLoadingArtifact, ModuleState::kReady}));
  ASSERT_EQ(phases.size(), 4u);
  EXPECT_EQ(phases[0].at_ms, 0);
  EXPECT_EQ(phases[1].at_ms, 30'000) << "the retry came after the gate retry interval";
  EXPECT_EQ(phases[3].at_ms, 30'000);
  boost::json::object z = loader->startupz();
  const auto& marks = z.at("modules").as_array()[0].at("phases").as_array();
  ASSERT_EQ(marks.size(), 4u);
  EXPECT_EQ(marks[0].at("state"), "gated");
  EXPECT_EQ(marks[1].at("at_ms").to_number<int64_t>(), 30'000);
  EXPECT_EQ(marks[3].at("state"), "ready");
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

// A fleet of our own making for the loader's side of the contract: published
// artifacts by key name, and optionally a peer that publishes when asked to wait.
class InMemoryFleet final : public FleetRunner {
 public:
  Result<FleetOutcome> run(const FleetKey& key, const FleetCallbacks& cb) override {
    std::lock_guard lock(mu_);
    keys.push_back(key.name());
    auto load_published = [&](FleetOutcome o) -> Result<FleetOutcome> {
      ArtifactInfo info{"peer", published[key.name()].size(), 0};
      if (cb.may_load) {
        if (Status st = cb.may_load(info); !st.ok()) return st;
      }
      auto source = view_source(published[key.name()]);
      if (Status st = cb.load(*source, info, false); !st.ok()) return st;
      return o;
    };
    if (published.count(key.name())) return load_published(FleetOutcome::kLoaded);
    if (cb.may_build) {
      Status may = cb.may_build();
      if (may.code() == Code::kUnavailable) {
        if (!peer_artifact) return ResourceExhausted(may.message());  // the wait ran out
        published[key.name()] = *peer_artifact;
        return load_published(FleetOutcome::kWaited);
      }
      if (!may.ok()) return may;
    }
    uint64_t peak = 0;
    auto built = cb.build(&peak);
    if (!built.ok()) return built.status();
    published[key.name()] = built->flatten();
    auto source = take_source(std::move(*built));
    if (Status st = cb.load(*source, {"me", 0, peak}, true); !st.ok()) return st;
    return FleetOutcome::kBuilt;
  }
  FleetView view(const FleetKey& key) override {
    std::lock_guard lock(mu_);
    FleetView v;
    v.published = published.count(key.name()) > 0;
    v.measured_build = measured_build;
    return v;
  }
  void record_peak(const FleetKey&, bool build, uint64_t bytes,
                   std::optional<std::chrono::milliseconds> took) override {
    std::lock_guard lock(mu_);
    if (!build || bytes) (build ? build_records : load_records).push_back(bytes);  // builds send their duration alone
    (build ? build_took : load_took).push_back(took);
  }
  bool has_peers() const override { return peers; }

  std::recursive_mutex mu_;  // load() inside run() records its peak
  std::map<std::string, std::string> published;
  std::vector<std::string> keys;
  std::optional<std::string> peer_artifact;
  std::vector<uint64_t> build_records, load_records;
  std::vector<std::optional<std::chrono::milliseconds>> build_took, load_took;
  uint64_t measured_build = 0;
  bool peers = false;
};

class LoaderMemoryTest : public LoaderTest {
 protected:
  LoaderMemoryTest() {
    // A 100 MiB container with 40 MiB used and no margin: 60 MiB of headroom.
    memory::MemorySample s;
    s.allocator.available = true;
    s.allocator.allocated = 30ull << 20;
    s.process.rss = 40ull << 20;
    s.cgroup.version = 2;
    s.cgroup.limit = 100ull << 20;
    s.cgroup.usage = 40ull << 20;
    probe_.set_sample(s);
    options_.memory_margin = SizeSpec::Bytes(0);
    options_.gate_retries = 0;
  }
  std::shared_ptr<TestModule> add_fleet_module(const std::string& name, PeakEstimate estimate) {
    auto m = add(name, 1);
    m->fleet_ = FleetSpec{"init:" + name, 15s, "init:" + name + ":done", 5min, "1"};
    m->estimate_ = estimate;
    m->set_inputs("corpus A");
    return m;
  }
  std::unique_ptr<StagedLoader> make_on(FleetRunner& fleet) {
    return std::make_unique<StagedLoader>(modules_, options_, config_, router_, workers_, probe_, clock_, fleet);
  }
  ModuleReport report_of(const StagedLoader& loader, const std::string& name) {
    for (auto& m : loader.modules())
      if (m.name == name) return m;
    ADD_FAILURE() << "no module " << name;
    return {};
  }
  static constexpr uint64_t kMiB = 1ull << 20;
};

TEST_F(LoaderMemoryTest, AModuleWhoseBuildDoesNotFitIsSkippedWithBothNumbersAndNeverBuilds) {
  auto m = add_fleet_module("kb", {150 * kMiB, 20 * kMiB, 0});
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  ModuleReport r = report_of(*loader, "kb");
  EXPECT_EQ(r.state, ModuleState::kSkippedMemory);
  EXPECT_NE(r.reason.find("build needs ~150.0 MiB, headroom 60.0 MiB"), std::string::npos) << r.reason;
  EXPECT_EQ(r.memory_refusals, 1);
  EXPECT_TRUE(m->budgets.empty());
  EXPECT_EQ(route_kind("/api/kb"), http::Endpoint::Kind::kPending);
}

TEST_F(LoaderMemoryTest, HowLongTheBuildAndTheLoadTookGoesToTheFleetOnTheLoadersClock) {
  auto m = add_fleet_module("kb", {10 * kMiB, 5 * kMiB, 0});
  m->on_build = [&](ModuleContext&) -> Result<std::string> {
    clock_.advance(6s);
    return std::string("index");
  };
  m->on_load = [&](ModuleContext&) { clock_.advance(800ms); };
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(report_of(*loader, "kb").state, ModuleState::kReady);
  EXPECT_EQ(fleet.build_took, (std::vector<std::optional<std::chrono::milliseconds>>{6000ms}));
  EXPECT_EQ(fleet.load_took, (std::vector<std::optional<std::chrono::milliseconds>>{800ms}));
  EXPECT_TRUE(fleet.build_records.empty()) << "a build's peak travels with its artifact, not as a record";
}

TEST_F(LoaderMemoryTest, FleetArtifactsAreTheFleetSharedModulesArtifactsAsTheFleetSeesThem) {
  add_fleet_module("kb", {10 * kMiB, 5 * kMiB, 0});
  add("plain", 1);  // builds locally: no fleet artifact
  InMemoryFleet fleet;
  fleet.measured_build = 12 * kMiB;
  auto loader = make_on(fleet);
  EXPECT_TRUE(loader->fleet_artifacts().empty()) << "no fleet step yet";
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  std::vector<ArtifactReport> artifacts = loader->fleet_artifacts();
  ASSERT_EQ(artifacts.size(), 1u);
  const ArtifactReport& a = artifacts[0];
  EXPECT_EQ(a.module, "kb");
  EXPECT_EQ(a.fingerprint, report_of(*loader, "kb").fingerprint);
  EXPECT_EQ(a.name, "init:kb@" + a.fingerprint);
  EXPECT_EQ(a.inputs, "corpus A");
  EXPECT_TRUE(a.serving);
  EXPECT_TRUE(a.view.published);
  EXPECT_EQ(a.view.measured_build, 12 * kMiB);
}

TEST_F(LoaderMemoryTest, ABuildThatDoesNotFitUnboundedGetsTheHeadroomAsItsBudget) {
  auto m = add_fleet_module("kb", {150 * kMiB, 20 * kMiB, 16 * kMiB});
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  ModuleReport r = report_of(*loader, "kb");
  EXPECT_EQ(r.state, ModuleState::kReady) << r.reason;
  ASSERT_EQ(m->budgets.size(), 1u);
  EXPECT_EQ(m->budgets[0], 60 * kMiB);
  EXPECT_EQ(r.decision, "build within budget");
  // A budgeted build's peak is not what an unbounded build costs: not published as one.
  EXPECT_TRUE(fleet.build_records.empty());
}

TEST_F(LoaderMemoryTest, AnInstanceWithPeersWaitsForAPeersArtifactInsteadOfBuilding) {
  auto m = add_fleet_module("kb", {150 * kMiB, 20 * kMiB, 16 * kMiB});
  InMemoryFleet fleet;
  fleet.peers = true;
  fleet.peer_artifact = "the peer's index";
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  ModuleReport r = report_of(*loader, "kb");
  EXPECT_EQ(r.state, ModuleState::kReady) << r.reason;
  EXPECT_EQ(r.outcome, "waited");
  EXPECT_EQ(r.built_by, "peer");
  EXPECT_TRUE(m->budgets.empty()) << "it must not have built";
  EXPECT_EQ(m->loaded_artifact, "the peer's index");
  EXPECT_EQ(fleet.load_records.size(), 1u);
}

TEST_F(LoaderMemoryTest, WithoutAPeersArtifactAfterTheWaitItBuildsWithinABudget) {
  auto m = add_fleet_module("kb", {150 * kMiB, 20 * kMiB, 16 * kMiB});
  InMemoryFleet fleet;
  fleet.peers = true;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  EXPECT_EQ(report_of(*loader, "kb").state, ModuleState::kReady);
  ASSERT_EQ(m->budgets.size(), 1u);
  EXPECT_EQ(m->budgets[0], 60 * kMiB);
}

TEST_F(LoaderMemoryTest, APublishedArtifactWhoseLoadDoesNotFitIsNotLoaded) {
  auto m = add_fleet_module("kb", {30 * kMiB, 80 * kMiB, 0});
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  ModuleReport r = report_of(*loader, "kb");
  EXPECT_EQ(r.state, ModuleState::kSkippedMemory);
  EXPECT_NE(r.reason.find("load needs ~80.0 MiB, headroom 60.0 MiB"), std::string::npos) << r.reason;
  EXPECT_TRUE(m->loaded_artifact.empty());
}

TEST_F(LoaderMemoryTest, TheFleetsMeasurementRaisesALowEstimate) {
  add_fleet_module("kb", {30 * kMiB, 10 * kMiB, 0});
  InMemoryFleet fleet;
  fleet.measured_build = 90 * kMiB;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  ModuleReport r = report_of(*loader, "kb");
  EXPECT_EQ(r.predicted_build, 90 * kMiB);
  EXPECT_EQ(r.state, ModuleState::kSkippedMemory) << "90 MiB does not fit in 60";
}

TEST_F(LoaderMemoryTest, DifferentInputsAreDifferentArtifactsAndTheSameInputsTheSameOne) {
  auto m = add_fleet_module("kb", {});
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  ASSERT_EQ(fleet.keys.size(), 1u);
  EXPECT_EQ(fleet.keys[0].rfind("init:kb@", 0), 0u) << fleet.keys[0];
  EXPECT_EQ(fleet.keys[0], make_fleet_key(*m->fleet_, "corpus A").name());
  EXPECT_NE(make_fleet_key(*m->fleet_, "corpus A").name(), make_fleet_key(*m->fleet_, "corpus B").name());
  FleetSpec v2 = *m->fleet_;
  v2.version = "2";
  EXPECT_NE(make_fleet_key(*m->fleet_, "corpus A").name(), make_fleet_key(v2, "corpus A").name());
}

TEST_F(LoaderMemoryTest, ARefreshLoadsTheArtifactOfTheNewInputsAndUnchangedInputsDoNothing) {
  auto m = add_fleet_module("kb", {});
  int builds = 0;
  m->on_build = [&](ModuleContext&) -> Result<std::string> { return "index " + std::to_string(++builds); };
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  ASSERT_NE(m->channel, nullptr);
  EXPECT_EQ(m->channel->serving(), "corpus A");
  auto same = m->channel->refresh({});
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(*same);
  EXPECT_EQ(builds, 1);

  m->set_inputs("corpus B");
  auto changed = m->channel->refresh({});
  ASSERT_TRUE(changed.ok()) << changed.status().to_string();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(m->loaded_artifact, "index 2");
  EXPECT_EQ(m->channel->serving(), "corpus B");
  ModuleReport r = report_of(*loader, "kb");
  EXPECT_EQ(r.state, ModuleState::kReady);
  EXPECT_EQ(r.refreshes, 1);

  // Back to A: the fleet has A's artifact, so it is loaded, not built again.
  m->set_inputs("corpus A");
  ASSERT_TRUE(m->channel->refresh({}).ok());
  EXPECT_EQ(builds, 2);
  EXPECT_EQ(m->loaded_artifact, "index 1");
}

TEST_F(LoaderMemoryTest, ModulesOfAStageRunTogetherOnlyWhileTheirPeaksFitTheBudget) {
  options_.batch_size = 8;
  // 40 MiB held (the fake sample's RSS) plus 50 MiB for the modules.
  options_.startup_budget = SizeSpec::Bytes(90 * kMiB);
  std::atomic<int> running{0}, most{0};
  for (const char* name : {"a", "b", "c"}) {
    auto m = add_fleet_module(name, {20 * kMiB, 1 * kMiB, 0});
    m->on_build = [&](ModuleContext&) -> Result<std::string> {
      int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      // Hold the slot until a second module could have joined.
      for (int i = 0; i < 200 && running.load() < 2; ++i) std::this_thread::yield();
      --running;
      return std::string("x");
    };
  }
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  loader->start();
  ASSERT_TRUE(loader->wait_finished(10s));
  for (const char* name : {"a", "b", "c"}) EXPECT_EQ(state_of(*loader, name), ModuleState::kReady);
  EXPECT_LE(most.load(), 2) << "two 20 MiB builds fit in the 50 MiB left, three do not";
}

TEST_F(LoaderMemoryTest, PlanShowsInputsPredictionsHeadroomAndTheDecision) {
  add_fleet_module("kb", {150 * kMiB, 20 * kMiB, 16 * kMiB});
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  std::string plan = loader->plan_text();
  EXPECT_NE(plan.find(make_fleet_key(*modules_[0]->fleet(), "corpus A").fingerprint), std::string::npos) << plan;
  EXPECT_NE(plan.find("~150.0 MiB (estimate)"), std::string::npos) << plan;
  EXPECT_NE(plan.find("60.0 MiB"), std::string::npos) << plan;
  EXPECT_NE(plan.find("build within budget"), std::string::npos) << plan;
}

TEST_F(LoaderMemoryTest, AnAbsoluteGateAboveTheContainerLimitIsReportedByItsVariable) {
  auto m = add_fleet_module("kb", {});
  m->gate_ = SizeSpec::Bytes(1536 * kMiB);
  InMemoryFleet fleet;
  auto loader = make_on(fleet);
  auto warnings = loader->setting_warnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("1.5GB"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("container"), std::string::npos) << warnings[0];
}

// Real memory, the real probe: a module that builds a large temporary table and
// keeps a small one leaves the heap near the small one once the stage is purged.
class RealMemoryModule final : public Module {
 public:
  std::string name() const override { return "real"; }
  Result<ChunkedBytes> build(ModuleContext&) override {
    std::vector<char> scratch(kScratch);
    std::memset(scratch.data(), 7, scratch.size());  // touch it: resident for real
    return ChunkedBytes::copy_of(std::string(kKept, 'k'));  // what we keep
  }
  Status load(ByteSource& artifact, ModuleContext&) override {
    kept_.reserve(kKept);
    for (;;) {
      auto piece = artifact.next();
      if (!piece.ok()) return piece.status();
      if (piece->empty()) return Status::Ok();
      kept_.insert(kept_.end(), piece->begin(), piece->end());
    }
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
