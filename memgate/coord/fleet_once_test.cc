#include <signal.h>

#include <atomic>
#include <map>
#include <thread>

#include "memgate/coord/coord_test_env.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

class FleetOnce : public RedisTest {
 protected:
  // A build that counts itself and returns `bytes`; a load that records what it saw.
  BuildFn builder(std::string bytes, std::chrono::milliseconds take = 0ms) {
    return [this, bytes, take](const CancelSignal& cancel) -> Result<std::string> {
      builds_.fetch_add(1);
      if (take.count() > 0 && cancel.wait_for(take)) return Aborted("cancelled");
      return bytes;
    };
  }
  LoadFn loader() {
    return [this](std::string_view bytes) {
      std::lock_guard lock(mu_);
      loaded_.emplace_back(bytes);
      return Status::Ok();
    };
  }
  std::atomic<int> builds_{0};
  std::mutex mu_;
  std::vector<std::string> loaded_;
};

TEST_F(FleetOnce, TheDefaultTasksOfTheGuideAreNamedConstants) {
  EXPECT_EQ(kAiRoutesInit.lock_key, "init:ai-routes");
  EXPECT_EQ(kAiRoutesInit.lock_ttl, 15s);
  EXPECT_EQ(kAiRoutesInit.done_key, "init:ai-routes:done");
  EXPECT_EQ(kAiRoutesInit.done_ttl, 5min);
  EXPECT_EQ(kMcpKbInit.lock_key, "init:mcp-kb");
  EXPECT_EQ(kMcpKbInit.lock_ttl, 20s);
  EXPECT_EQ(kMcpKbInit.done_key, "init:mcp-kb:done");
  EXPECT_EQ(kMcpKbInit.done_ttl, 10min);
}

TEST_F(FleetOnce, BuildsOnceThenLoadsTheArtifact) {
  auto c = coordinator();
  auto first = c->fleet_once("task:a", 1s, 30s, builder("artifact-a"), loader());
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(*first, FleetOutcome::kBuilt);
  auto second = c->fleet_once("task:a", 1s, 30s, builder("other"), loader());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, FleetOutcome::kLoaded);
  EXPECT_EQ(builds_.load(), 1);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], "artifact-a");
  EXPECT_TRUE(raw().command({"GET", "task:a"})->is_nil());  // released
  auto ttl = raw().command({"PTTL", "task:a:done"});
  EXPECT_GT(ttl->integer, 25000);
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kBuilt), 1u);
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kLoaded), 1u);
}

TEST_F(FleetOnce, LargeArtifactsAreChunkedAndExpireWithTheDoneFlag) {
  auto o = options();
  o.chunk_size = 1000;
  auto c = coordinator(o);
  std::string big(10'500, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  ASSERT_EQ(*c->fleet_once("task:big", 1s, 20s, builder(big), loader()), FleetOutcome::kBuilt);
  auto keys = raw().command({"KEYS", "task:big:artifact:*"});
  EXPECT_EQ(keys->elements.size(), 11u);
  for (auto& k : keys->elements) {
    auto ttl = raw().command({"PTTL", k.str});
    EXPECT_GT(ttl->integer, 15000) << k.str;
    EXPECT_LE(ttl->integer, 20000) << k.str;
  }
  ASSERT_EQ(*c->fleet_once("task:big", 1s, 20s, builder("no"), loader()), FleetOutcome::kLoaded);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], big);
}

TEST_F(FleetOnce, AnExpiredDoneFlagMeansOneRebuild) {
  auto c = coordinator();
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 300ms, builder("v1"), loader()), FleetOutcome::kBuilt);
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 300ms, builder("v1"), loader()), FleetOutcome::kLoaded);
  // Redis expires keys in real time: nothing to fake here.
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "task:exp:done"})->integer == 0; }, 2s));
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 30s, builder("v2"), loader()), FleetOutcome::kBuilt);
  EXPECT_EQ(builds_.load(), 2);
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 30s, builder("v3"), loader()), FleetOutcome::kLoaded);
  EXPECT_EQ(loaded_.back(), "v2");
}

TEST_F(FleetOnce, ACorruptedChunkMeansARebuildNotALoad) {
  auto o = options();
  o.chunk_size = 100;
  auto c = coordinator(o);
  std::string good(1000, 'g');
  ASSERT_EQ(*c->fleet_once("task:bad", 1s, 30s, builder(good), loader()), FleetOutcome::kBuilt);
  auto keys = raw().command({"KEYS", "task:bad:artifact:*:3"});
  ASSERT_EQ(keys->elements.size(), 1u);
  ASSERT_TRUE(raw().command({"SET", keys->elements[0].str, std::string(100, 'X'), "KEEPTTL"}).ok());
  ASSERT_EQ(*c->fleet_once("task:bad", 1s, 30s, builder(good), loader()), FleetOutcome::kRebuiltBadArtifact);
  EXPECT_TRUE(loaded_.empty());
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kRebuiltBadArtifact), 1u);
  // The rebuilt artifact loads.
  ASSERT_EQ(*c->fleet_once("task:bad", 1s, 30s, builder(good), loader()), FleetOutcome::kLoaded);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], good);
}

TEST_F(FleetOnce, AMissingChunkOrAnotherVersionMeansARebuild) {
  auto o = options();
  o.chunk_size = 100;
  auto c = coordinator(o);
  ASSERT_EQ(*c->fleet_once("task:gone", 1s, 30s, builder(std::string(450, 'a')), loader()), FleetOutcome::kBuilt);
  auto keys = raw().command({"KEYS", "task:gone:artifact:*:2"});
  ASSERT_EQ(keys->elements.size(), 1u);
  ASSERT_TRUE(raw().command({"DEL", keys->elements[0].str}).ok());
  ASSERT_EQ(*c->fleet_once("task:gone", 1s, 30s, builder(std::string(450, 'a')), loader()),
            FleetOutcome::kRebuiltBadArtifact);
  FleetOnceOptions v2;
  v2.artifact_version = "2";
  ASSERT_EQ(*c->fleet_once("task:gone", 1s, 30s, builder("new format"), loader(), v2),
            FleetOutcome::kRebuiltBadArtifact);
  EXPECT_TRUE(loaded_.empty());
  ASSERT_EQ(*c->fleet_once("task:gone", 1s, 30s, builder("x"), loader(), v2), FleetOutcome::kLoaded);
  EXPECT_EQ(loaded_.at(0), "new format");
}

TEST_F(FleetOnce, AWaiterWakesOnTheCompletionMessageNotTheSlowPoll) {
  auto builder_side = coordinator();
  auto waiter_side = coordinator();
  std::thread b([&] {
    auto r = builder_side->fleet_once("task:msg", 2s, 30s, builder("built", 400ms), loader());
    EXPECT_EQ(*r, FleetOutcome::kBuilt);
  });
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "task:msg"})->integer == 1; }, 2s));
  FleetOnceOptions slow;
  slow.poll = 10s;
  auto start = Steady::now();
  auto r = waiter_side->fleet_once("task:msg", 2s, 30s, builder("never"), loader(), slow);
  auto took = Steady::now() - start;
  b.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kWaited);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(builds_.load(), 1);
}

TEST_F(FleetOnce, EightProcessesStartedTogetherBuildOnceAndLoadSevenTimes) {
  std::vector<std::unique_ptr<testing::Subprocess>> procs;
  for (int i = 0; i < 8; ++i) {
    auto p = testing::Subprocess::start({tool(), "fleet", "--url", url(), "--name", "task:fleet", "--lock-ttl-ms",
                                         "1000", "--done-ttl-ms", "60000", "--build-ms", "300", "--size", "200000",
                                         "--chunk-size", "65536"},
                                        {}, dir_ + "/fleet-" + std::to_string(i) + ".log");
    ASSERT_TRUE(p.ok());
    procs.push_back(std::move(*p));
  }
  std::map<std::string, int> outcomes;
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(procs[i]->wait_for(30s), 0);
    std::string log = testing::read_file(dir_ + "/fleet-" + std::to_string(i) + ".log");
    auto at = log.find("outcome=");
    ASSERT_NE(at, std::string::npos) << log;
    outcomes[log.substr(at + 8, log.find('\n', at) - at - 8)]++;
  }
  EXPECT_EQ(outcomes["built"], 1);
  EXPECT_EQ(outcomes["loaded"] + outcomes["waited"], 7);
}

TEST_F(FleetOnce, AWaiterTakesOverWhenTheBuilderDies) {
  std::string log = dir_ + "/dying-builder.log";
  auto b = testing::Subprocess::start({tool(), "fleet", "--url", url(), "--name", "task:dies", "--lock-ttl-ms", "600",
                                       "--build-ms", "30000"},
                                      {}, log);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "task:dies"})->integer == 1; }, 5s));
  (*b)->signal(SIGKILL);
  auto c = coordinator();
  auto start = Steady::now();
  auto r = c->fleet_once("task:dies", 600ms, 30s, builder("mine"), loader());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kTookOver);
  EXPECT_LT(Steady::now() - start, 2s);
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kTookOver), 1u);
}

TEST_F(FleetOnce, ABuildLongerThanTheLockTtlKeepsItsLeaseAndNobodyTakesOver) {
  auto builder_side = coordinator();
  auto waiter_side = coordinator();
  std::thread b([&] {
    auto r = builder_side->fleet_once("task:long", 500ms, 30s, builder("slow build", 1200ms), loader());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(*r, FleetOutcome::kBuilt);
  });
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "task:long"})->integer == 1; }, 2s));
  auto r = waiter_side->fleet_once("task:long", 500ms, 30s, builder("must not run"), loader());
  b.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kWaited);
  EXPECT_EQ(builds_.load(), 1);
  EXPECT_EQ(metrics_.lost_leases.load(), 0u);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], "slow build");
}

TEST_F(FleetOnce, ABuildThatFailsReleasesTheLockAndReportsTheError) {
  auto c = coordinator();
  auto r = c->fleet_once(
      "task:fails", 1s, 30s, [](const CancelSignal&) -> Result<std::string> { return Internal("boom"); }, loader());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("boom"), std::string::npos);
  EXPECT_TRUE(raw().command({"GET", "task:fails"})->is_nil());
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kFailed), 1u);
}

TEST_F(FleetOnce, AWaiterGivesUpAfterItsWaitBound) {
  auto c = coordinator();
  auto holder = c->acquire("task:stuck", 5s, 0ms);
  ASSERT_TRUE(holder.ok());
  FleetOnceOptions o;
  o.wait_bound = 300ms;
  auto r = c->fleet_once("task:stuck", 5s, 30s, builder("x"), loader(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  EXPECT_EQ(builds_.load(), 0);
}

}  // namespace
}  // namespace memgate::coord
