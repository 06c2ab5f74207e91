// fleet_once. The suites about coordination (FleetOnce, FleetStepRedisDown)
// run once per topology (X/Single, X/Sentinel, X/Cluster: redis_topology.h); the ones
// about what an artifact may hold (FleetArtifact, FleetStepTest) are
// topology-blind and run against one server.
#include <signal.h>

#include <atomic>
#include <map>
#include <thread>

#include "memgate/coord/coord_test_env.h"
#include "memgate/coord/redis_backend.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

class FleetOnce : public FleetFixture<TopologyTest> {};
class FleetArtifact : public FleetFixture<RedisTest> {};

INSTANTIATE_TEST_SUITE_P(, FleetOnce, ::testing::ValuesIn(testing::all_topologies()), topology_test_name);

TEST_F(FleetArtifact, TheDefaultTasksOfTheGuideAreNamedConstants) {
  EXPECT_EQ(kAiRoutesInit.lock_key, "init:ai-routes");
  EXPECT_EQ(kAiRoutesInit.lock_ttl, 15s);
  EXPECT_EQ(kAiRoutesInit.done_key, "init:ai-routes:done");
  EXPECT_EQ(kAiRoutesInit.done_ttl, 5min);
  EXPECT_EQ(kMcpKbInit.lock_key, "init:mcp-kb");
  EXPECT_EQ(kMcpKbInit.lock_ttl, 20s);
  EXPECT_EQ(kMcpKbInit.done_key, "init:mcp-kb:done");
  EXPECT_EQ(kMcpKbInit.done_ttl, 10min);
}

TEST_P(FleetOnce, BuildsOnceThenLoadsTheArtifact) {
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
  EXPECT_TRUE(raw().command({"GET", "{task:a}"})->is_nil());  // released
  auto ttl = raw().command({"PTTL", "{task:a}:done"});
  EXPECT_GT(ttl->integer, 25000);
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kBuilt), 1u);
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kLoaded), 1u);
}

TEST_F(FleetArtifact, LargeArtifactsAreChunkedAndExpireWithTheDoneFlag) {
  auto o = options();
  o.chunk_size = 1000;
  auto c = coordinator(o);
  std::string big(10'500, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  ASSERT_EQ(*c->fleet_once("task:big", 1s, 20s, builder(big), loader()), FleetOutcome::kBuilt);
  auto keys = raw().command({"KEYS", "{task:big}:artifact:*"});
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

TEST_F(FleetArtifact, AnExpiredDoneFlagMeansOneRebuild) {
  auto c = coordinator();
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 300ms, builder("v1"), loader()), FleetOutcome::kBuilt);
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 300ms, builder("v1"), loader()), FleetOutcome::kLoaded);
  // Redis expires keys in real time: nothing to fake here.
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "{task:exp}:done"})->integer == 0; }, 2s));
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 30s, builder("v2"), loader()), FleetOutcome::kBuilt);
  EXPECT_EQ(builds_.load(), 2);
  ASSERT_EQ(*c->fleet_once("task:exp", 1s, 30s, builder("v3"), loader()), FleetOutcome::kLoaded);
  EXPECT_EQ(loaded_.back(), "v2");
}

TEST_F(FleetArtifact, ACorruptedChunkMeansARebuildNotALoad) {
  auto o = options();
  o.chunk_size = 100;
  auto c = coordinator(o);
  std::string good(1000, 'g');
  ASSERT_EQ(*c->fleet_once("task:bad", 1s, 30s, builder(good), loader()), FleetOutcome::kBuilt);
  auto keys = raw().command({"KEYS", "{task:bad}:artifact:*:3"});
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

TEST_F(FleetArtifact, AMissingChunkOrAnotherVersionMeansARebuild) {
  auto o = options();
  o.chunk_size = 100;
  auto c = coordinator(o);
  ASSERT_EQ(*c->fleet_once("task:gone", 1s, 30s, builder(std::string(450, 'a')), loader()), FleetOutcome::kBuilt);
  auto keys = raw().command({"KEYS", "{task:gone}:artifact:*:2"});
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

TEST_P(FleetOnce, AWaiterWakesOnTheCompletionMessageNotTheSlowPoll) {
  auto builder_side = coordinator();
  auto waiter_side = coordinator();
  std::thread b([&] {
    auto r = builder_side->fleet_once("task:msg", 2s, 30s, builder("built", 400ms), loader());
    EXPECT_EQ(*r, FleetOutcome::kBuilt);
  });
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "{task:msg}"})->integer == 1; }, 2s));
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

TEST_P(FleetOnce, EightProcessesStartedTogetherBuildOnceAndLoadSevenTimes) {
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

TEST_P(FleetOnce, AWaiterTakesOverWhenTheBuilderDies) {
  std::string log = dir_ + "/dying-builder.log";
  auto b = testing::Subprocess::start({tool(), "fleet", "--url", url(), "--name", "task:dies", "--lock-ttl-ms", "600",
                                       "--build-ms", "30000"},
                                      {}, log);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "{task:dies}"})->integer == 1; }, 5s));
  (*b)->signal(SIGKILL);
  auto c = coordinator();
  auto start = Steady::now();
  auto r = c->fleet_once("task:dies", 600ms, 30s, builder("mine"), loader());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kTookOver);
  EXPECT_LT(Steady::now() - start, 2s);
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kTookOver), 1u);
}

TEST_P(FleetOnce, ABuildLongerThanTheLockTtlKeepsItsLeaseAndNobodyTakesOver) {
  auto builder_side = coordinator();
  auto waiter_side = coordinator();
  std::thread b([&] {
    auto r = builder_side->fleet_once("task:long", 500ms, 30s, builder("slow build", 1200ms), loader());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(*r, FleetOutcome::kBuilt);
  });
  ASSERT_TRUE(testing::wait_until([&] { return raw().command({"EXISTS", "{task:long}"})->integer == 1; }, 2s));
  auto r = waiter_side->fleet_once("task:long", 500ms, 30s, builder("must not run"), loader());
  b.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kWaited);
  EXPECT_EQ(builds_.load(), 1);
  EXPECT_EQ(metrics_.lost_leases.load(), 0u);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], "slow build");
}

TEST_P(FleetOnce, ABuildThatFailsReleasesTheLockAndReportsTheError) {
  auto c = coordinator();
  auto r = c->fleet_once(
      "task:fails", 1s, 30s, [](const CancelSignal&) -> Result<std::string> { return Internal("boom"); }, loader());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("boom"), std::string::npos);
  EXPECT_TRUE(raw().command({"GET", "{task:fails}"})->is_nil());
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kFailed), 1u);
}

// Completion messages on channels nobody here waits for are not kept: a
// publisher cannot grow the subscriber's map one channel name at a time.
TEST_F(FleetArtifact, CompletionMessagesForNamesNobodyWaitsOnAreNotKept) {
  auto c = coordinator();
  RedisBackend* redis = c->redis();
  ASSERT_NE(redis, nullptr);
  uint64_t seen = redis->done_generation("task:mine");
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(raw().command({"PUBLISH", "memgate:done:junk-" + std::to_string(i), "x"}).ok());
  }
  ASSERT_TRUE(raw().command({"PUBLISH", "memgate:done:task:mine", "x"}).ok());
  // One subscriber connection delivers in order: once ours is counted, the
  // 500 before it have been handled.
  redis->wait_done("task:mine", seen, 5s, {});
  EXPECT_EQ(redis->done_generation("task:mine"), seen + 1);
  EXPECT_EQ(redis->tracked_done_channels(), 1u);
}

TEST_F(FleetArtifact, AWaiterGivesUpAfterItsWaitBound) {
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

// The step with memory decisions and streamed artifacts.
template <class Base>
class FleetStepFixture : public FleetFixture<Base> {
 protected:
  FleetStep step(std::string bytes) {
    FleetStep s;
    s.build = [this, bytes](const CancelSignal&, PublishInfo* info) -> Result<ChunkedBytes> {
      this->builds_.fetch_add(1);
      info->build_peak = 123 << 20;
      info->inputs = "corpus A";
      return ChunkedBytes::copy_of(bytes, 7);
    };
    s.load = [this](ByteSource& src, const ArtifactMeta& meta, bool fresh) -> Status {
      auto all = read_all(src, meta.size);
      if (!all.ok()) return all.status();
      std::lock_guard lock(this->mu_);
      this->loaded_.push_back(*all);
      fresh_.push_back(fresh);
      builders_.push_back(meta.builder);
      return Status::Ok();
    };
    return s;
  }
  std::vector<bool> fresh_;
  std::vector<std::string> builders_;
};

class FleetStepTest : public FleetStepFixture<RedisTest> {};
class FleetStepRedisDown : public FleetStepFixture<TopologyTest> {};

INSTANTIATE_TEST_SUITE_P(, FleetStepRedisDown, ::testing::ValuesIn(testing::all_topologies()), topology_test_name);

TEST_F(FleetStepTest, PublishesThenLoadsTheFreshPiecesAndAPeerStreamsThemBack) {
  auto o = options();
  o.chunk_size = 5;
  auto c = coordinator(o);
  auto built = c->fleet_once("task:s", 1s, 30s, step("a fairly long artifact"));
  ASSERT_TRUE(built.ok()) << built.status().to_string();
  EXPECT_EQ(*built, FleetOutcome::kBuilt);
  auto loaded = c->fleet_once("task:s", 1s, 30s, step("other"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(*loaded, FleetOutcome::kLoaded);
  ASSERT_EQ(loaded_.size(), 2u);
  EXPECT_EQ(loaded_[0], "a fairly long artifact");
  EXPECT_EQ(loaded_[1], "a fairly long artifact");
  EXPECT_EQ(fresh_, (std::vector<bool>{true, false}));
  auto meta = c->read_meta("task:s", "1");
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->meta.build_peak, 123u << 20);
  EXPECT_EQ(meta->meta.inputs, "corpus A");
  EXPECT_EQ(meta->meta.chunks, 7u);  // 22 bytes in pieces of 7 (7,7,7,1), each cut into chunks of at most 5
}

TEST_F(FleetStepTest, AnInstanceThatMayNotBuildWaitsForAPeersArtifactAndLoadsIt) {
  auto waiter = coordinator();
  auto peer = coordinator();
  FleetStep s = step("never built here");
  s.peer_wait = 10s;
  std::atomic<int> asked{0};
  s.may_build = [&]() -> Status {
    asked.fetch_add(1);
    return Unavailable("build needs ~150 MiB, headroom 60 MiB");
  };
  std::string state;
  s.on_state = [&](std::string_view st) {
    if (state.empty()) state = std::string(st);
  };
  std::thread t([&] {
    while (asked.load() == 0) std::this_thread::yield();
    auto r = peer->fleet_once("task:p", 1s, 30s, builder("the peer's"), loader());
    EXPECT_TRUE(r.ok());
  });
  auto r = waiter->fleet_once("task:p", 1s, 30s, s);
  t.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kWaited);
  EXPECT_EQ(state, "waiting_for_peer");
  EXPECT_EQ(builds_.load(), 1) << "only the peer built";
  EXPECT_EQ(loaded_.back(), "the peer's");
}

TEST_F(FleetStepTest, ThePeerWaitEndsInResourceExhaustedWithTheReason) {
  auto c = coordinator();
  FleetStep s = step("x");
  s.peer_wait = 100ms;
  s.may_build = [] { return Unavailable("build needs ~150 MiB, headroom 60 MiB"); };
  auto r = c->fleet_once("task:w", 1s, 30s, s, FleetOnceOptions{"1", 5min, 20ms});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(r.status().message(), "build needs ~150 MiB, headroom 60 MiB");
  EXPECT_EQ(builds_.load(), 0);
  EXPECT_TRUE(raw().command({"GET", "{task:w}"})->is_nil()) << "it never contended for the lock";
}

// Shutdown ends a wait for another holder's build at once (kCancelled), long
// before the wait bound; raised from the state callback, so no timing.
TEST_F(FleetStepTest, AStopEndsTheWaitForAnotherHoldersBuild) {
  auto c = coordinator();
  auto holder = c->acquire("task:busy", 5s, 0ms);
  ASSERT_TRUE(holder.ok());
  std::stop_source stop;
  FleetStep s = step("x");
  s.stop = stop.get_token();
  s.on_state = [&](std::string_view st) {
    if (st == "waiting_for_lock") stop.request_stop();
  };
  auto r = c->fleet_once("task:busy", 5s, 30s, s, FleetOnceOptions{"1", 3s, 1s});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled) << r.status().to_string();
  EXPECT_EQ(builds_.load(), 0);
}

TEST_F(FleetStepTest, AStopEndsTheWaitForAPeersArtifact) {
  auto c = coordinator();
  std::stop_source stop;
  FleetStep s = step("x");
  s.stop = stop.get_token();
  s.peer_wait = 3s;
  s.may_build = [] { return Unavailable("build needs ~150 MiB, headroom 60 MiB"); };
  s.on_state = [&](std::string_view st) {
    if (st == "waiting_for_peer") stop.request_stop();
  };
  auto r = c->fleet_once("task:pw", 1s, 30s, s, FleetOnceOptions{"1", 5min, 1s});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled) << r.status().to_string();
}

TEST_F(FleetStepTest, ALoadThatDoesNotFitIsRefusedBeforeAByteIsRead) {
  auto c = coordinator();
  ASSERT_TRUE(c->fleet_once("task:l", 1s, 30s, step("published")).ok());
  FleetStep s = step("x");
  s.may_load = [](const ArtifactMeta& meta) {
    return ResourceExhausted("load needs ~" + std::to_string(meta.size) + " bytes");
  };
  auto r = c->fleet_once("task:l", 1s, 30s, s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(builds_.load(), 1);
}

TEST_F(FleetStepTest, AMetaDeclaringMoreThanTheBoundIsABadArtifactAndRebuilt) {
  auto o = options();
  o.max_artifact_bytes = 1 << 20;
  auto c = coordinator(o);
  ArtifactMeta meta = describe_artifact("tiny", "1", 1, 0);
  meta.size = 1ull << 40;
  meta.chunks = 3;
  ASSERT_TRUE(raw().command({"SET", "{task:b}:done", "{}"}).ok());
  ASSERT_TRUE(raw().command({"SET", "{task:b}:artifact", meta.to_json()}).ok());
  auto read = c->read_meta("task:b", "1");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->state, ArtifactState::kBad);
  EXPECT_NE(read->problem.find("above the bound"), std::string::npos) << read->problem;
  auto r = c->fleet_once("task:b", 1s, 30s, step("rebuilt"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact);
}

TEST_F(FleetStepTest, AStreamWithAMissingChunkFailsAtItsEndAndTheLoadIsRebuilt) {
  auto o = options();
  o.chunk_size = 4;
  auto c = coordinator(o);
  ASSERT_TRUE(c->fleet_once("task:m", 1s, 30s, step("0123456789abcdef")).ok());
  auto meta = c->read_meta("task:m", "1");
  ASSERT_TRUE(meta.ok());
  ASSERT_TRUE(raw().command({"DEL", "{task:m}:artifact:" + std::to_string(meta->fence) + ":2"}).ok());
  auto r = c->fleet_once("task:m", 1s, 30s, step("0123456789abcdef"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact);
}

TEST_F(FleetStepTest, PeaksRecordedByInstancesAreReadBackAsTheLargestRecent) {
  auto c = coordinator();
  c->record_peak("task:k", true, 100, 30s);
  c->record_peak("task:k", false, 40, 30s);
  c->record_peak("task:k", true, 150, 30s);
  FleetPeaks p = c->fleet_peaks("task:k");
  EXPECT_EQ(p.build, 150u);
  EXPECT_EQ(p.load, 40u);
  EXPECT_EQ(p.build_samples, 2);
  EXPECT_EQ(p.load_samples, 1);
  // A hostile record: not JSON arrays of numbers, and far too many of them.
  std::string junk = "{\"build\":[";
  for (int i = 0; i < 1000; ++i) junk += std::string(i ? "," : "") + "{\"bytes\":\"x\"}";
  junk += "],\"load\":7}";
  ASSERT_TRUE(raw().command({"SET", "{task:k}:peaks", junk}).ok());
  FleetPeaks q = c->fleet_peaks("task:k");
  EXPECT_EQ(q.build, 0u);
  EXPECT_EQ(q.load, 0u);
}

TEST_F(FleetStepTest, AHugeDoneFlagOrMetaIsRefusedUnreadAndRebuilt) {
  auto c = coordinator();
  std::string huge(2 << 20, 'x');
  ASSERT_TRUE(raw().command({"SET", "{task:h}:done", huge}).ok());
  ASSERT_TRUE(raw().command({"SET", "{task:h}:artifact", "{}"}).ok());
  auto read = c->read_meta("task:h", "1");
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  EXPECT_EQ(read->state, ArtifactState::kBad);
  EXPECT_NE(read->problem.find("above the bound"), std::string::npos) << read->problem;
  ASSERT_TRUE(raw().command({"SET", "{task:h}:done", "{}"}).ok());
  ASSERT_TRUE(raw().command({"SET", "{task:h}:artifact", huge}).ok());
  read = c->read_meta("task:h", "1");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->state, ArtifactState::kBad);
  EXPECT_NE(read->problem.find("{task:h}:artifact"), std::string::npos) << read->problem;
  auto r = c->fleet_once("task:h", 1s, 30s, step("rebuilt"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact);
}

TEST_F(FleetStepTest, AChunkLongerThanItsMetaAllowsIsRefusedUnreadAndRebuilt) {
  auto o = options();
  o.chunk_size = 4;
  auto c = coordinator(o);
  ASSERT_TRUE(c->fleet_once("task:c", 1s, 30s, step("0123456789abcdef")).ok());
  auto meta = c->read_meta("task:c", "1");
  ASSERT_TRUE(meta.ok());
  ASSERT_TRUE(raw().command({"SET", "{task:c}:artifact:" + std::to_string(meta->fence) + ":1", std::string(2 << 20, 'z'),
                             "KEEPTTL"}).ok());
  auto read = c->read_artifact("task:c", "1");
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  EXPECT_EQ(read->state, ArtifactState::kBad);
  EXPECT_NE(read->problem.find("hold more than the 16 bytes"), std::string::npos) << read->problem;
  auto r = c->fleet_once("task:c", 1s, 30s, step("0123456789abcdef"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact);
}

TEST_F(FleetStepTest, KeysOfAnotherTypeOrMalformedMetaAreABadArtifactNotAFailure) {
  auto c = coordinator();
  ASSERT_TRUE(raw().command({"LPUSH", "{task:t}:done", "x"}).ok());
  auto r = c->fleet_once("task:t", 1s, 30s, step("one"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact);
  ASSERT_TRUE(raw().command({"DEL", "{task:t}:artifact"}).ok());
  ASSERT_TRUE(raw().command({"HSET", "{task:t}:artifact", "a", "b"}).ok());
  r = c->fleet_once("task:t", 1s, 30s, step("two"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact);
  for (std::string meta : std::vector<std::string>{"[1,2]", "{\"format\":1e400}", "{\"format\":\"x\",\"size\":-1}",
                           std::string(40, '[') + std::string(40, ']'),
                           "{\"format\":1,\"version\":\"1\",\"fence\":1,\"size\":1e300,\"chunks\":1,\"sha256\":\"\"}"}) {
    ASSERT_TRUE(raw().command({"SET", "{task:t}:artifact", meta, "KEEPTTL"}).ok());
    r = c->fleet_once("task:t", 1s, 30s, step("three"));
    ASSERT_TRUE(r.ok()) << meta << ": " << r.status().to_string();
    EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact) << meta;
  }
}

// Under Sentinel "down" is the master and the replica both killed: the reads
// are retried after the failover wait, then fail the same way.
TEST_P(FleetStepRedisDown, AReadFailureOfThePublishedArtifactStaysUnavailable) {
  auto c = coordinator();
  kill_redis();
  ASSERT_TRUE(testing::wait_until([&] { return !c->redis()->connection().connected(); }, 5s));
  auto r = c->fleet_once("task:u", 1s, 30s, step("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
  EXPECT_EQ(builds_.load(), 0);
}

TEST_P(FleetOnce, ALeaseLostDuringTheBuildIsBuiltAgainNotFailedForGood) {
  auto c = coordinator();
  raw();
  auto build = [&](const CancelSignal&) -> Result<std::string> {
    if (builds_.fetch_add(1) == 0) {
      // Redis loses everything mid-build, the lock included.
      EXPECT_TRUE(raw().command({"FLUSHALL"}).ok());
    }
    return std::string("built after the flush");
  };
  auto r = c->fleet_once("task:flush", 1s, 30s, build, loader());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  EXPECT_EQ(builds_.load(), 2);
  EXPECT_EQ(metrics_.outcomes(FleetOutcome::kFailed), 0u);
  ASSERT_EQ(*c->fleet_once("task:flush", 1s, 30s, builder("not again"), loader()), FleetOutcome::kLoaded);
  EXPECT_EQ(loaded_.at(0), "built after the flush");
}

TEST_P(FleetOnce, ABuildTheWatchdogCancelledForALostLeaseIsBuiltAgain) {
  auto c = coordinator();
  raw();
  std::string reason;
  auto build = [&](const CancelSignal& cancel) -> Result<std::string> {
    if (builds_.fetch_add(1) == 0) {
      EXPECT_TRUE(raw().command({"FLUSHALL"}).ok());
      // The watchdog's next extension (a third of the TTL) finds the lock gone.
      EXPECT_TRUE(cancel.wait_for(5s));
      reason = cancel.reason();
      return Aborted(cancel.reason());
    }
    return std::string("second build");
  };
  auto r = c->fleet_once("task:cancelled", 300ms, 30s, build, loader());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  EXPECT_EQ(builds_.load(), 2);
  EXPECT_EQ(metrics_.lost_leases.load(), 1u);
  EXPECT_NE(reason.find("no longer held by this lease"), std::string::npos) << reason;
  EXPECT_EQ(reason.find("another holder has the lock"), std::string::npos) << reason;
}

TEST_P(FleetOnce, ALeaseLostToAPeerThatPublishedLoadsThePeersArtifact) {
  auto c = coordinator();
  auto peer = coordinator();
  raw();
  auto build = [&](const CancelSignal&) -> Result<std::string> {
    builds_.fetch_add(1);
    // Our lock vanishes; a peer takes it, builds and publishes before we do.
    EXPECT_TRUE(raw().command({"DEL", "{task:peer}"}).ok());
    auto p = peer->fleet_once("task:peer", 1s, 30s, builder("the peer's"), loader());
    EXPECT_TRUE(p.ok() && *p == FleetOutcome::kBuilt);
    return std::string("ours, refused");
  };
  auto r = c->fleet_once("task:peer", 1s, 30s, build, loader());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kWaited);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], "the peer's");
}

TEST_P(FleetOnce, ALeaseLostOnEveryAttemptGivesUpAfterThreeBuilds) {
  auto c = coordinator();
  raw();
  auto build = [&](const CancelSignal&) -> Result<std::string> {
    builds_.fetch_add(1);
    EXPECT_TRUE(raw().command({"FLUSHALL"}).ok());
    return std::string("never published");
  };
  auto r = c->fleet_once("task:always", 1s, 30s, build, loader());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kAborted) << r.status().to_string();
  EXPECT_EQ(builds_.load(), 3);
}

}  // namespace
}  // namespace memgate::coord
