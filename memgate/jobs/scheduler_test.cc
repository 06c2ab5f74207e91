#include "memgate/jobs/scheduler.h"

#include <gtest/gtest.h>

#include <latch>
#include <map>
#include <set>

#include "memgate/memory/fake_probe.h"

namespace memgate::jobs {
namespace {

using namespace std::chrono_literals;

// A claimer shared by several "instances": the first claim of a period wins.
class SharedClaimer final : public JobClaimer {
 public:
  Result<bool> claim(const std::string& job, int64_t index, std::chrono::milliseconds) override {
    std::lock_guard lock(mu_);
    return claimed_.insert({job, index}).second;
  }
  std::mutex mu_;
  std::set<std::pair<std::string, int64_t>> claimed_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : workers_(2) { probe_.set_allocated(100 << 20); }

  // Advances the clock by `d` once the scheduler sleeps, then lets the runs finish.
  void step(Duration d) {
    ASSERT_TRUE(clock_.wait_for_sleepers(1));
    clock_.advance(d);
  }
  void settle(Scheduler& s, const std::string& job, uint64_t runs) {
    for (int i = 0; i < 2000; ++i) {
      for (auto& r : s.report())
        if (r.name == job && r.runs >= runs && !r.running) return;
      std::this_thread::sleep_for(1ms);  // waiting for a worker thread, not a timer
    }
  }

  FakeClock clock_;
  WorkerPool workers_;
  memory::FakeMemoryProbe probe_;
};

TEST_F(SchedulerTest, AJobRunsOncePerPeriod) {
  LocalJobClaimer claimer;
  Scheduler s({}, clock_, workers_, probe_, claimer);
  std::atomic<int> runs{0};
  s.add({"tick", 1s, [&](std::stop_token) { ++runs; return Status::Ok(); }});
  s.start();
  for (int i = 1; i <= 3; ++i) {
    step(1s);
    settle(s, "tick", i);
  }
  EXPECT_EQ(runs.load(), 3);
  EXPECT_TRUE(s.running());
}

TEST_F(SchedulerTest, TwoInstancesSharingAClaimerRunEachPeriodOnce) {
  SharedClaimer claimer;
  Scheduler a({}, clock_, workers_, probe_, claimer);
  Scheduler b({}, clock_, workers_, probe_, claimer);
  std::mutex mu;
  std::map<int64_t, int> per_period;
  auto job = [&](std::stop_token) {
    std::lock_guard lock(mu);
    ++per_period[clock_.unix_millis() / 1000];
    return Status::Ok();
  };
  a.add({"sync", 1s, job});
  b.add({"sync", 1s, job});
  a.start();
  b.start();
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(clock_.wait_for_sleepers(2));
    clock_.advance(1s);
    auto total = [&] {
      uint64_t n = 0;
      for (auto* s : {&a, &b})
        for (auto& r : s->report()) n += r.runs + r.skipped_claimed;
      return n;
    };
    for (int k = 0; k < 2000 && total() < static_cast<uint64_t>(2 * i); ++k) std::this_thread::sleep_for(1ms);
  }
  a.stop();
  b.stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(per_period.size(), 5u);
  for (auto& [period, n] : per_period) EXPECT_EQ(n, 1) << "period " << period;
  uint64_t claimed_elsewhere = a.report()[0].skipped_claimed + b.report()[0].skipped_claimed;
  EXPECT_EQ(claimed_elsewhere, 5u);
}

TEST_F(SchedulerTest, ARunIsSkippedAndCountedWhileMemoryIsUnderPressure) {
  LocalJobClaimer claimer;
  SchedulerOptions o;
  o.heap_gate = SizeSpec::Bytes(1ull << 30);
  Scheduler s(o, clock_, workers_, probe_, claimer);
  std::atomic<int> runs{0};
  s.add({"tick", 1s, [&](std::stop_token) { ++runs; return Status::Ok(); }});
  s.start();
  step(1s);
  settle(s, "tick", 1);
  probe_.set_allocated(2ull << 30);  // pressure
  step(1s);
  step(1s);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  probe_.set_allocated(100 << 20);
  step(1s);
  settle(s, "tick", 2);
  s.stop();
  EXPECT_EQ(runs.load(), 2);
  EXPECT_EQ(s.report()[0].skipped_memory, 2u);
}

TEST_F(SchedulerTest, TheSchedulerStartsOnlyOnceTheHeapIsUnderItsGate) {
  LocalJobClaimer claimer;
  SchedulerOptions o;
  o.heap_gate = SizeSpec::Bytes(2ull << 30);
  o.gate_check_interval = 30s;
  probe_.set_allocated(3ull << 30);
  Scheduler s(o, clock_, workers_, probe_, claimer);
  s.add({"tick", 1s, [](std::stop_token) { return Status::Ok(); }});
  s.start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_FALSE(s.running());
  clock_.advance(30s);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_FALSE(s.running());
  probe_.set_allocated(1ull << 30);
  clock_.advance(30s);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));  // now sleeping towards the first period
  EXPECT_TRUE(s.running());
}

TEST_F(SchedulerTest, TheGuardsRefusalSkipsRuns) {
  LocalJobClaimer claimer;
  SchedulerOptions o;
  std::atomic<bool> refuse{false};
  o.refuse_optional_init = [&] { return refuse.load(); };
  Scheduler s(o, clock_, workers_, probe_, claimer);
  s.add({"tick", 1s, [](std::stop_token) { return Status::Ok(); }});
  s.start();
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  refuse = true;
  clock_.advance(1s);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_EQ(s.report()[0].skipped_memory, 1u);
  EXPECT_EQ(s.report()[0].runs, 0u);
}

TEST_F(SchedulerTest, ASlowRunIsNotStartedAgainOnTopOfItself) {
  LocalJobClaimer claimer;
  Scheduler s({}, clock_, workers_, probe_, claimer);
  std::latch started(1), release(1);
  s.add({"slow", 1s, [&](std::stop_token) {
           started.count_down();
           release.wait();
           return Status::Ok();
         }});
  s.start();
  step(1s);
  started.wait();
  step(1s);
  ASSERT_TRUE(clock_.wait_for_sleepers(1));
  EXPECT_EQ(s.report()[0].skipped_overlap, 1u);
  release.count_down();
  settle(s, "slow", 1);
  EXPECT_EQ(s.report()[0].runs, 1u);
}

TEST_F(SchedulerTest, FailuresAreCountedAndTheJobRunsAgain) {
  LocalJobClaimer claimer;
  Scheduler s({}, clock_, workers_, probe_, claimer);
  s.add({"flaky", 1s, [](std::stop_token) -> Status { return Unavailable("nope"); }});
  s.start();
  step(1s);
  settle(s, "flaky", 1);
  step(1s);
  settle(s, "flaky", 2);
  EXPECT_EQ(s.report()[0].failures, 2u);
}

}  // namespace
}  // namespace memgate::jobs
