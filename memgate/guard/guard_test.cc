#include "memgate/guard/memory_guard.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "memgate/base/worker_pool.h"
#include "memgate/jobs/scheduler.h"
#include "memgate/memory/fake_probe.h"
#include "memgate/startup/loader.h"

namespace memgate::guard {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kGiB = 1ull << 30;

class RecordingSink final : public SnapshotSink {
 public:
  std::string_view name() const override { return "recording"; }
  void write(const boost::json::object& s) override { snapshots.push_back(s); }
  std::vector<boost::json::object> snapshots;
};

class GuardTest : public ::testing::Test {
 protected:
  GuardTest() { probe_.set_allocated(1 * kGiB); }

  std::unique_ptr<MemoryGuard> make(std::vector<TriggerSpec> triggers, size_t history_size = 360) {
    GuardOptions o;
    o.history_size = history_size;
    o.event_size = history_size;
    o.interval = 30s;
    o.triggers = std::move(triggers);
    o.instance_id = "inst-1";
    o.profile_interval = 10min;
    GuardHooks h;
    h.set_shedding = [this](bool on) { shed_calls_.push_back(on); };
    h.set_keepalive_disabled = [this](bool on) { keepalive_calls_.push_back(on); };
    h.top_routes = [] { return boost::json::array{boost::json::object{{"route", "/api/hog"}, {"allocated", 123}}}; };
    h.dump_profile = [this](const std::string& path) -> Result<std::string> {
      ++profiles_;
      return path;
    };
    auto g = std::make_unique<MemoryGuard>(o, clock_, probe_, h);
    g->add_sink(sink_);
    return g;
  }

  FakeClock clock_;
  memory::FakeMemoryProbe probe_;
  std::shared_ptr<RecordingSink> sink_ = std::make_shared<RecordingSink>();
  std::vector<bool> shed_calls_, keepalive_calls_;
  int profiles_ = 0;
};

TEST(Trigger, FiresAtItsThresholdAndClearsOnlyBelowTheHysteresisBand) {
  Trigger t({"heap", Resource::kHeap, SizeSpec::Bytes(3 * kGiB), 0.1, {Action::kAlert}});
  memory::MemorySample s;
  s.allocator.available = true;
  auto at = [&](double gib) {
    s.allocator.allocated = static_cast<uint64_t>(gib * static_cast<double>(kGiB));
    return t.update(s, 4 * kGiB);
  };
  EXPECT_EQ(at(2.9), 0);
  EXPECT_EQ(at(3.0), +1);
  EXPECT_TRUE(t.active());
  // Hovering around the threshold does not flap.
  for (double v : {2.95, 3.05, 2.8, 3.1, 2.71}) EXPECT_EQ(at(v), 0) << v;
  EXPECT_TRUE(t.active());
  EXPECT_EQ(at(2.69), -1);  // below 3 GB * 0.9
  EXPECT_FALSE(t.active());
  EXPECT_EQ(t.fired(), 1u);
}

TEST(Trigger, AShareIsOfTheLimitAndACgroupShareOfTheCgroupsLimit) {
  Trigger heap({"h", Resource::kHeap, SizeSpec::Share(0.75), 0.1, {}});
  Trigger cg({"c", Resource::kCgroup, SizeSpec::Share(0.9), 0.1, {}});
  memory::MemorySample s;
  s.allocator.available = true;
  s.allocator.allocated = 3 * kGiB;
  EXPECT_EQ(heap.update(s, 4 * kGiB), +1);  // 75% of 4 GiB
  EXPECT_EQ(cg.update(s, 4 * kGiB), 0) << "no cgroup: a cgroup trigger never fires";
  s.cgroup.limit = 2 * kGiB;
  s.cgroup.usage = static_cast<uint64_t>(1.85 * static_cast<double>(kGiB));
  EXPECT_EQ(cg.update(s, 4 * kGiB), +1);
  EXPECT_EQ(cg.on_bytes(), static_cast<uint64_t>(0.9 * 2 * static_cast<double>(kGiB)));
}

TEST_F(GuardTest, ActionsComeIntoForceAndLiftWithTheirTriggers) {
  auto g = make(default_triggers(SizeSpec::Bytes(3 * kGiB), SizeSpec::Bytes(3584ull << 20), SizeSpec::Share(0.9), 0.1));
  g->tick();
  for (int i = 0; i < kActionCount; ++i) EXPECT_FALSE(g->in_force(static_cast<Action>(i)));
  probe_.set_allocated(3 * kGiB + 1);  // alert + purge + shed the first routes, not yet shed all
  g->tick();
  EXPECT_TRUE(g->in_force(Action::kAlert));
  EXPECT_TRUE(g->in_force(Action::kPurge));
  EXPECT_TRUE(g->in_force(Action::kShedFirst));
  EXPECT_FALSE(g->in_force(Action::kShed));
  EXPECT_EQ(g->purges(), 1u);
  probe_.set_allocated(3800ull << 20);  // over the shed threshold too
  g->tick();
  EXPECT_TRUE(g->in_force(Action::kShed));
  EXPECT_TRUE(g->refuse_optional_init());
  EXPECT_TRUE(g->in_force(Action::kDisableKeepalive));
  EXPECT_EQ(shed_calls_, std::vector<bool>{true});
  EXPECT_EQ(keepalive_calls_, std::vector<bool>{true});
  EXPECT_EQ(g->purges(), 2u) << "purge runs at every sample while in force";
  probe_.set_allocated(1 * kGiB);  // memory released
  g->tick();
  for (int i = 0; i < kActionCount; ++i) EXPECT_FALSE(g->in_force(static_cast<Action>(i)));
  EXPECT_EQ(shed_calls_, (std::vector<bool>{true, false}));
  EXPECT_EQ(keepalive_calls_, (std::vector<bool>{true, false}));
  EXPECT_EQ(g->action_changes(Action::kShed), 1u);
  EXPECT_EQ(g->purges(), 2u);
}

TEST_F(GuardTest, AnAlertWritesOneSnapshotPerRisingEdgeNamingItsProfile) {
  auto g = make({{"heap_alert", Resource::kHeap, SizeSpec::Bytes(3 * kGiB), 0.1, {Action::kAlert, Action::kPurge}}});
  probe_.set_allocated(3 * kGiB);
  g->tick();
  g->tick();  // still above: no second alert
  ASSERT_EQ(sink_->snapshots.size(), 1u);
  const auto& snap = sink_->snapshots[0];
  EXPECT_EQ(snap.at("instance"), "inst-1");
  EXPECT_EQ(snap.at("trigger"), "heap_alert");
  EXPECT_EQ(snap.at("memory").at("allocator").at("allocated").to_number<uint64_t>(), 3 * kGiB);
  EXPECT_EQ(snap.at("top_routes").as_array()[0].at("route"), "/api/hog");
  EXPECT_TRUE(snap.at("heap_profile").is_string());
  bool has_alert = false;
  for (auto& a : snap.at("actions").as_array()) has_alert |= a == "alert";
  EXPECT_TRUE(has_alert);
  EXPECT_EQ(g->recent_snapshots(10).size(), 1u);

  // Cleared and fired again within the profile interval: a snapshot, no profile.
  probe_.set_allocated(1 * kGiB);
  g->tick();
  clock_.advance(1min);
  probe_.set_allocated(3 * kGiB);
  g->tick();
  ASSERT_EQ(sink_->snapshots.size(), 2u);
  EXPECT_TRUE(sink_->snapshots[1].at("heap_profile").is_null());
  EXPECT_EQ(profiles_, 1);
  // After the interval, the next alert dumps again.
  probe_.set_allocated(1 * kGiB);
  g->tick();
  clock_.advance(10min);
  probe_.set_allocated(3 * kGiB);
  g->tick();
  EXPECT_EQ(profiles_, 2);
  EXPECT_EQ(g->alerts(), 3u);
}

TEST_F(GuardTest, TheGuardSamplesEveryIntervalOnItsOwnThread) {
  auto g = make({});
  g->start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_EQ(g->samples(), 1u);
  clock_.advance(30s);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_EQ(g->samples(), 2u);
  g->stop();
}

TEST_F(GuardTest, TheLoaderAndSchedulerGatesFollowRefuseOptionalInit) {
  auto g = make(default_triggers(SizeSpec::Bytes(3 * kGiB), SizeSpec::Bytes(3584ull << 20), SizeSpec::Share(0.9), 0.1));
  probe_.set_allocated(3800ull << 20);
  g->tick();
  ASSERT_TRUE(g->refuse_optional_init());

  // A scheduler whose own gate is generous still skips while the guard refuses.
  WorkerPool workers(2);
  jobs::LocalJobClaimer claimer;
  jobs::SchedulerOptions so;
  so.heap_gate = SizeSpec::Bytes(64 * kGiB);
  so.refuse_optional_init = [&] { return g->refuse_optional_init(); };
  FakeClock job_clock;
  jobs::Scheduler scheduler(so, job_clock, workers, probe_, claimer);
  scheduler.add({"j", 1s, [](std::stop_token) { return Status::Ok(); }});
  scheduler.start();
  ASSERT_TRUE(job_clock.wait_for_sleepers(1));
  EXPECT_FALSE(scheduler.running()) << "the scheduler does not start while optional work is refused";

  // A module without a memory gate of its own is gated by the guard alone.
  class Plain final : public startup::Module {
   public:
    std::string name() const override { return "plain"; }
    Result<ChunkedBytes> build(startup::ModuleContext&) override { return ChunkedBytes::from_string("x"); }
    Status load(ByteSource&, startup::ModuleContext&) override { return Status::Ok(); }
  };
  Config config;
  http::Router router;
  FakeClock load_clock;
  startup::LocalFleetRunner fleet;
  startup::LoaderOptions lo;
  lo.stage_delay = 0s;
  lo.refuse_optional_init = [&] { return g->refuse_optional_init(); };
  startup::StagedLoader loader({std::make_shared<Plain>()}, lo, config, router, workers, probe_, load_clock, fleet);
  loader.start();
  ASSERT_TRUE(load_clock.wait_for_sleepers(1));
  EXPECT_EQ(loader.modules()[0].state, startup::ModuleState::kGated);

  probe_.set_allocated(1 * kGiB);
  g->tick();
  ASSERT_FALSE(g->refuse_optional_init());
  load_clock.advance(30s);
  ASSERT_TRUE(loader.wait_finished(10s));
  EXPECT_EQ(loader.modules()[0].state, startup::ModuleState::kReady);
  job_clock.advance(30s);
  for (int i = 0; i < 1000 && !scheduler.running(); ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(scheduler.running());
}

TEST_F(GuardTest, StateJsonShowsTriggersAndActions) {
  auto g = make({{"heap_alert", Resource::kHeap, SizeSpec::Bytes(3 * kGiB), 0.1, {Action::kAlert}}});
  probe_.set_allocated(3 * kGiB);
  g->tick();
  auto s = g->state_json();
  EXPECT_EQ(s.at("actions").at("alert"), true);
  EXPECT_EQ(s.at("actions").at("shed"), false);
  EXPECT_EQ(s.at("triggers").as_array()[0].at("active"), true);
  EXPECT_EQ(s.at("samples").to_number<uint64_t>(), 1u);
}

TEST_F(GuardTest, TheHistoryKeepsTheNewestSamplesAndEveryActionChangeOldestFirst) {
  auto g = make({{"heap_alert", Resource::kHeap, SizeSpec::Bytes(3 * kGiB), 0.1, {Action::kAlert, Action::kPurge}}},
                /*history_size=*/3);
  memory::MemorySample s;
  s.allocator.available = true;
  s.process.rss = 5 * kGiB;
  s.cgroup.usage = 6 * kGiB;
  for (uint64_t gib : {1, 2, 3, 1}) {
    s.allocator.allocated = gib * kGiB;
    s.allocator.resident = gib * kGiB + 7;
    probe_.set_sample(s);
    g->tick();
    clock_.advance(30s);
  }
  std::vector<HistoryPoint> points = g->recent_samples(100);
  ASSERT_EQ(points.size(), 3u) << "bounded by history_size";
  EXPECT_EQ(points[0].heap, 2 * kGiB) << "the oldest sample went first";
  EXPECT_EQ(points[1].heap, 3 * kGiB);
  EXPECT_EQ(points[1].resident, 3 * kGiB + 7);
  EXPECT_EQ(points[1].rss, 5 * kGiB);
  EXPECT_EQ(points[1].cgroup_usage, std::optional<uint64_t>(6 * kGiB));
  EXPECT_EQ(points[2].ts_ms - points[1].ts_ms, 30'000);
  EXPECT_EQ(points[1].actions, (1u << static_cast<int>(Action::kAlert)) | (1u << static_cast<int>(Action::kPurge)));
  EXPECT_EQ(points[2].actions, 0u);
  EXPECT_EQ(g->recent_samples(1).at(0).heap, 1 * kGiB) << "max keeps the newest";

  boost::json::array events = g->events_json(100);
  ASSERT_EQ(events.size(), 3u) << "purge and alert on; then (3 kept) alert and purge off" << events;
  std::vector<std::string> seen;
  for (auto& e : events)
    seen.push_back(std::string(e.at("action").as_string()) + (e.at("in_force").as_bool() ? "+" : "-"));
  EXPECT_EQ(seen, (std::vector<std::string>{"alert+", "purge-", "alert-"}));
  EXPECT_EQ(events[0].at("trigger"), "heap_alert");
  EXPECT_EQ(events[0].at("ts_ms").to_number<int64_t>(), points[1].ts_ms) << "an event carries its sample's time";

  boost::json::array samples = g->samples_json(2);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].at("heap").to_number<uint64_t>(), 3 * kGiB);
  EXPECT_EQ(samples[0].at("cgroup_usage").to_number<uint64_t>(), 6 * kGiB);
  EXPECT_EQ(samples[0].at("actions").as_array().size(), 2u);
  s.cgroup.usage.reset();
  probe_.set_sample(s);
  g->tick();
  EXPECT_TRUE(g->samples_json(1)[0].at("cgroup_usage").is_null()) << "no cgroup: null, not 0";
}

}  // namespace
}  // namespace memgate::guard
