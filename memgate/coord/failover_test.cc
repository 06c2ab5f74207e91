// Fences across a Sentinel failover, against real processes (a master, a
// replica and three sentinels: tests/support/redis_sentinel.h). A failover
// hands the lock keys to a replica whose copy may lag the dead master's: the
// fence a new holder gets there must still be larger than every fence the old
// master gave out, including the ones it never replicated.
#include <signal.h>

#include <atomic>

#include "memgate/coord/sentinel_test_env.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;

class Failover : public SentinelFixture {
 protected:
  void SetUp() override {
    dir_ = testing::temp_dir("memgate-failover-test");
    start_group();
  }
  // Acquires and releases `key` n times; the last fence.
  int64_t take_turns(Coordinator& c, const std::string& key, int n) {
    int64_t last = 0;
    for (int i = 0; i < n; ++i) {
      auto lease = c.acquire(key, 2s, 0ms);
      EXPECT_TRUE(lease.ok()) << lease.status().to_string();
      if (!lease.ok()) return last;
      EXPECT_GT(lease->fence, last);
      last = lease->fence;
      EXPECT_TRUE(*c.release(*lease));
    }
    return last;
  }
  std::string cli(uint16_t port, const std::vector<std::string>& args) {
    std::string out = group_->redis_cli(port, args);
    return out.substr(0, out.find('\n'));
  }
};

TEST_F(Failover, FencesStayStrictlyIncreasingAcrossAFailover) {
  auto c = coordinator(sentinel_options());
  ASSERT_NE(c, nullptr);
  int64_t last = take_turns(*c, "lock:f", 5);
  uint16_t master = group_->first_master().port(), replica = group_->first_replica().port();
  ASSERT_EQ(cli(master, {"WAIT", "1", "2000"}), "1") << "the replica has every acquisition";
  group_->first_master().kill();
  ASSERT_TRUE(group_->wait_master_is(replica, 30s)) << "the sentinels did not fail over";
  ASSERT_TRUE(c->ensure_connected(10s).ok());
  auto after = c->acquire("lock:f", 2s, 0ms);
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_GT(after->fence, last);
  EXPECT_EQ(metrics_.master_address(), "127.0.0.1:" + std::to_string(replica));
}

// The replica is cut off (its link closed by the master while it is stopped)
// before three more acquisitions, then the master dies: the promoted replica's
// counter is three behind. Its next fence still beats all of them.
TEST_F(Failover, FencesStayStrictlyIncreasingWhenTheFailoverLostTheLastAcquisitions) {
  auto c = coordinator(sentinel_options());
  ASSERT_NE(c, nullptr);
  uint16_t master = group_->first_master().port(), replica = group_->first_replica().port();
  take_turns(*c, "lock:lost", 3);
  ASSERT_EQ(cli(master, {"WAIT", "1", "2000"}), "1");
  group_->first_replica().signal(SIGSTOP);
  ASSERT_EQ(cli(master, {"CLIENT", "KILL", "TYPE", "replica"}), "1") << "the replication link is closed";
  int64_t lost = take_turns(*c, "lock:lost", 3);
  group_->first_master().kill();
  group_->first_replica().signal(SIGCONT);
  ASSERT_TRUE(group_->wait_master_is(replica, 30s)) << "the sentinels did not fail over";
  std::string counter = cli(replica, {"GET", "{lock:lost}:fence"});
  ASSERT_FALSE(counter.empty());
  ASSERT_LT(std::stoll(counter), lost) << "the promoted replica never saw the last acquisitions";
  ASSERT_TRUE(c->ensure_connected(10s).ok());
  auto after = c->acquire("lock:lost", 2s, 0ms);
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_GT(after->fence, lost);
  // And it keeps growing from there.
  ASSERT_TRUE(*c->release(*after));
  EXPECT_GT(take_turns(*c, "lock:lost", 1), after->fence);
}

// The +switch-master hint reaches connections the dead master left, which wait
// out a reconnect backoff (up to reconnect_max): reconnect() makes them try at
// once rather than after the wait.
TEST(FailoverConnection, AReconnectRequestDuringABackoffConnectsAtOnce) {
  auto server = testing::RedisServer::start();
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  std::atomic<uint16_t> port{testing::free_port()};  // nobody listens there yet
  std::atomic<int> asked{0};
  RedisSettings s;
  s.connect_timeout = 500ms;
  s.command_timeout = 500ms;
  s.reconnect_min = 5000ms;  // the first backoff is 2.5..5 s (equal jitter)
  s.reconnect_max = 5000ms;
  CoordMetrics m;
  auto conn = Connection::create(s, &m, true, [&]() -> Result<Endpoint> {
    asked.fetch_add(1);
    return Endpoint{"127.0.0.1", port.load()};
  });
  ASSERT_TRUE(testing::wait_until(
      [&] { return asked.load() == 1 && conn->state() == ConnectionState::kDisconnected; }, 2s))
      << conn->last_error();
  port = (*server)->port();
  auto start = std::chrono::steady_clock::now();
  conn->reconnect("sentinel announced +switch-master");
  ASSERT_TRUE(conn->wait_connected(2s).ok()) << "still waiting out the backoff: " << conn->last_error();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(asked.load(), 2) << "one attempt for the request, none left over from the backoff";
  auto r = conn->command({"PING"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->str, "PONG");
}

}  // namespace
}  // namespace memgate::coord
