// The lock-safety suite runs once per topology (LeaseLock.X/Single against one
// redis-server, LeaseLock.X/Sentinel through three sentinels to a master with a
// replica, LeaseLock.X/Cluster through a three-master Redis Cluster): the same exclusion, fencing, watchdog and kill/stop guarantees must
// hold through either. JSON values are topology-blind and run on one server.
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "memgate/coord/coord_test_env.h"
#include "memgate/coord/redis_backend.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

class LeaseLock : public TopologyTest {};
class JsonValues : public RedisTest {};

INSTANTIATE_TEST_SUITE_P(, LeaseLock, ::testing::ValuesIn(testing::all_topologies()), topology_test_name);

TEST_P(LeaseLock, EachNewHolderGetsAHigherFencingNumber) {
  auto c = coordinator();
  ASSERT_EQ(c->backend(), "redis");
  EXPECT_EQ(metrics_.backend.load(), 1);
  int64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    auto lease = c->acquire("lock:a", 1s, 0ms);
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    EXPECT_GT(lease->fence, last);
    EXPECT_EQ(lease->token.size(), 32u);
    last = lease->fence;
    EXPECT_EQ(raw().command({"GET", "{lock:a}"})->str, lease->token);
    ASSERT_TRUE(*c->release(*lease));
  }
  EXPECT_TRUE(raw().command({"GET", "{lock:a}"})->is_nil());
}

TEST_P(LeaseLock, AHeldLockMakesOthersWaitUntilTheirWaitRunsOut) {
  auto c = coordinator();
  auto first = c->acquire("lock:b", 2s, 0ms);
  ASSERT_TRUE(first.ok());
  auto start = Steady::now();
  auto second = c->acquire("lock:b", 2s, 150ms);
  auto waited = Steady::now() - start;
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kDeadlineExceeded);
  EXPECT_NE(second.status().message().find("held by another holder"), std::string::npos);
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 1s);
  ASSERT_TRUE(*c->release(*first));
  // A waiter gets the lock soon after the release.
  std::thread releaser;
  auto third = c->acquire("lock:b", 2s, 0ms);
  ASSERT_TRUE(third.ok());
  releaser = std::thread([&] {
    std::this_thread::sleep_for(100ms);
    (void)c->release(*third);
  });
  auto fourth = c->acquire("lock:b", 2s, 2s);
  releaser.join();
  ASSERT_TRUE(fourth.ok());
  EXPECT_GT(fourth->fence, third->fence);
}

TEST_P(LeaseLock, ReleaseAndExtendAreNoOpsWhenTheTokenNoLongerMatches) {
  auto c = coordinator();
  auto old = c->acquire("lock:c", 300ms, 0ms);
  ASSERT_TRUE(old.ok());
  auto fresh = c->acquire("lock:c", 5s, 2s);  // waits for the expiry
  ASSERT_TRUE(fresh.ok());
  EXPECT_GT(fresh->fence, old->fence);
  EXPECT_FALSE(*c->release(*old));
  EXPECT_FALSE(*c->extend(*old, 5s));
  EXPECT_EQ(raw().command({"GET", "{lock:c}"})->str, fresh->token);
  EXPECT_EQ(c->publish_artifact(*old, "lock:c", "x", "1", 10s).code(), Code::kAborted);
  EXPECT_TRUE(*c->extend(*fresh, 5s));
  EXPECT_TRUE(*c->release(*fresh));
}

TEST_P(LeaseLock, SixteenThreadsNeverHoldTogetherAndSeeIncreasingFences) {
  auto c = coordinator();
  std::mutex mu;
  std::vector<int64_t> fences;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 15; ++i) {
        Status st = c->with_lock(
            "lock:threads", 2s,
            [&](const Lease& lease, const CancelSignal&) {
              if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
              {
                std::lock_guard lock(mu);
                fences.push_back(lease.fence);
              }
              std::this_thread::sleep_for(200us);
              inside.fetch_sub(1);
              return Status::Ok();
            },
            10s);
        EXPECT_TRUE(st.ok()) << st.to_string();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  ASSERT_EQ(fences.size(), 16u * 15u);
  for (size_t i = 1; i < fences.size(); ++i) ASSERT_GT(fences[i], fences[i - 1]);
  EXPECT_EQ(metrics_.acquire_wait.snapshot().count, 16u * 15u);
  EXPECT_EQ(metrics_.hold_time.snapshot().count, 16u * 15u);
}

TEST_P(LeaseLock, EightProcessesNeverHoldTogetherAndSeeIncreasingFences) {
  std::string out = dir_ + "/history";
  std::vector<std::unique_ptr<testing::Subprocess>> procs;
  for (int i = 0; i < 8; ++i) {
    auto p = testing::Subprocess::start({tool(), "lock", "--url", url(), "--key", "lock:procs", "--ttl-ms", "2000",
                                         "--iterations", "25", "--hold-us", "100", "--out", out},
                                        {}, dir_ + "/lock-" + std::to_string(i) + ".log");
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    procs.push_back(std::move(*p));
  }
  for (auto& p : procs) ASSERT_EQ(p->wait_for(60s), 0);
  expect_exclusive_history(lines(out), 8 * 25);
}

TEST_P(LeaseLock, TheWatchdogKeepsALongHoldAlive) {
  auto c = coordinator();
  auto other = coordinator();
  Status st = c->with_lock("lock:long", 500ms, [&](const Lease& lease, const CancelSignal& cancel) {
    for (int i = 0; i < 5; ++i) {
      if (cancel.wait_for(200ms)) return Aborted("cancelled");
      EXPECT_FALSE(other->acquire("lock:long", 500ms, 0ms).ok());
    }
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(metrics_.lost_leases.load(), 0u);
  EXPECT_GE(metrics_.extension_lag.snapshot().count, 5u);
}

TEST_P(LeaseLock, TheWatchdogCancelsTheWorkWhenTheLeaseIsLost) {
  auto c = coordinator();
  bool cancelled = false;
  Status st = c->with_lock("lock:stolen", 600ms, [&](const Lease& lease, const CancelSignal& cancel) {
    // Someone else's token now sits in the lock (as after an expiry and a takeover).
    EXPECT_TRUE(raw().command({"SET", "{lock:stolen}", "another-holder", "PX", "5000"}).ok());
    cancelled = cancel.wait_for(2s);
    return Status::Ok();
  });
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(st.code(), Code::kAborted);
  EXPECT_NE(st.message().find("lost"), std::string::npos) << st.message();
  EXPECT_EQ(metrics_.lost_leases.load(), 1u);
  EXPECT_EQ(raw().command({"GET", "{lock:stolen}"})->str, "another-holder");
}

TEST_P(LeaseLock, AHolderKilledWithSigkillIsReplacedOnceItsTtlPasses) {
  std::string log = dir_ + "/holder.log";
  auto holder = testing::Subprocess::start(
      {tool(), "hold", "--url", url(), "--key", "lock:killed", "--ttl-ms", "800", "--hold-ms", "30000"}, {}, log);
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE(testing::wait_until([&] { return testing::read_file(log).find("acquired") != std::string::npos; }, 5s));
  (*holder)->signal(SIGKILL);
  EXPECT_EQ((*holder)->wait_for(5s), 128 + SIGKILL);
  auto c = coordinator();
  auto start = Steady::now();
  auto lease = c->acquire("lock:killed", 1s, 3s);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  EXPECT_LT(Steady::now() - start, 1500ms);
  std::string held = testing::read_file(log);
  auto at = held.find("acquired fence=");
  ASSERT_NE(at, std::string::npos) << held;
  EXPECT_GT(lease->fence, std::stoll(held.substr(at + 15)));
}

TEST_P(LeaseLock, AHolderStoppedPastItsTtlCanNeitherReleaseNorPublishAfterItContinues) {
  std::string log = dir_ + "/stopped.log";
  auto holder = testing::Subprocess::start(
      {tool(), "hold", "--url", url(), "--key", "lock:stopped", "--ttl-ms", "500", "--hold-ms", "300"}, {}, log);
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE(testing::wait_until([&] { return testing::read_file(log).find("acquired") != std::string::npos; }, 5s));
  (*holder)->signal(SIGSTOP);
  auto c = coordinator();
  auto lease = c->acquire("lock:stopped", 5s, 3s);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  (*holder)->signal(SIGCONT);
  EXPECT_EQ((*holder)->wait_for(10s), 0);
  std::string out = testing::read_file(log);
  EXPECT_NE(out.find("publish=aborted"), std::string::npos) << out;
  EXPECT_NE(out.find("release=false"), std::string::npos) << out;
  EXPECT_EQ(raw().command({"GET", "{lock:stopped}"})->str, lease->token);
  EXPECT_TRUE(raw().command({"GET", "{lock:stopped}:done"})->is_nil());
  EXPECT_TRUE(*c->release(*lease));
}

// Under Sentinel "down" is the master and its replica both killed (the
// sentinels stay, with nothing to promote), and "back" is both started empty.
TEST_P(LeaseLock, CallsFailClearlyWhileRedisIsDownAndWorkAgainAfterItReturns) {
  auto c = coordinator();
  ASSERT_TRUE(c->acquire("lock:down", 1s, 0ms).ok());
  kill_redis();
  auto r = c->acquire("lock:down2", 1s, 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
  EXPECT_EQ(c->get_json("k").status().code(), Code::kUnavailable);
  EXPECT_EQ(c->ensure_connected(100ms).code(), Code::kUnavailable);
  EXPECT_EQ(c->backend(), "redis");  // no fallback once on redis
  ASSERT_TRUE(restart_redis_empty().ok());
  ASSERT_TRUE(c->ensure_connected(5s).ok());
  auto again = c->acquire("lock:down2", 1s, 0ms);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
}

TEST_F(JsonValues, RoundTripAndExpire) {
  auto c = coordinator();
  boost::json::value v = {{"routes", 12}, {"ready", true}};
  ASSERT_TRUE(c->set_json("json:a", v, 200ms).ok());
  auto back = c->get_json("json:a");
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, v);
  auto pttl = raw().command({"PTTL", "json:a"});
  EXPECT_GT(pttl->integer, 0);
  EXPECT_LE(pttl->integer, 200);
  ASSERT_TRUE(raw().command({"SET", "json:bad", "{not json"}).ok());
  EXPECT_EQ(c->get_json("json:bad").status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(c->get_json("json:none")->has_value());
}

TEST_F(JsonValues, AValueAboveOneMebibyteIsRefusedBeforeItIsRead) {
  auto c = coordinator();
  std::string huge = "\"" + std::string(CoordBackend::kMaxJsonValueBytes, 'x') + "\"";
  ASSERT_TRUE(raw().command({"SET", "json:huge", huge}).ok());
  auto r = c->get_json("json:huge");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("json:huge"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("above the bound"), std::string::npos) << r.status().message();
  ASSERT_TRUE(raw().command({"LPUSH", "json:list", "1"}).ok());
  EXPECT_EQ(c->get_json("json:list").status().code(), Code::kInvalidArgument);
  // Just under the bound still reads.
  std::string big = "\"" + std::string(CoordBackend::kMaxJsonValueBytes - 2, 'y') + "\"";
  ASSERT_TRUE(raw().command({"SET", "json:big", big}).ok());
  auto ok = c->get_json("json:big");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->has_value());
}

// Under Sentinel a restart that lost its data is the master and the replica
// both restarted empty: no copy of the counter is left anywhere. (A failover,
// where the promoted replica holds a copy that may lag, is another case,
// tested apart.)
TEST_P(LeaseLock, FencesKeepGrowingAcrossARedisRestartThatLostItsData) {
  auto c = coordinator();
  int64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto lease = c->acquire("lock:restart", 1s, 0ms);
    ASSERT_TRUE(lease.ok()) << lease.status().to_string();
    last = lease->fence;
    ASSERT_TRUE(*c->release(*lease));
  }
  kill_redis();
  ASSERT_TRUE(testing::wait_until([&] { return !c->redis()->connection().connected(); }, 5s));
  ASSERT_TRUE(restart_redis_empty().ok());  // no persistence: every key is gone
  ASSERT_TRUE(c->ensure_connected(5s).ok());
  ASSERT_EQ(raw().command({"EXISTS", "{lock:restart}:fence"})->integer, 0);
  auto after = c->acquire("lock:restart", 1s, 0ms);
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_GT(after->fence, last);
  // FLUSHALL loses the counter the same way.
  ASSERT_TRUE(*c->release(*after));
  ASSERT_TRUE(raw().command({"FLUSHALL"}).ok());
  auto flushed = c->acquire("lock:restart", 1s, 0ms);
  ASSERT_TRUE(flushed.ok());
  EXPECT_GT(flushed->fence, after->fence);
}

}  // namespace
}  // namespace memgate::coord
