// Sentinel against real processes: a master, a replica and three sentinels per
// test (tests/support/redis_sentinel.h), a failover by SIGKILL and one by
// SIGSTOP/SIGCONT of the master the harness started.
#include <signal.h>

#include <atomic>

#include "memgate/coord/sentinel_resolver.h"
#include "memgate/coord/sentinel_test_env.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;

class SentinelTest : public SentinelFixture {
 protected:
  void SetUp() override { dir_ = testing::temp_dir("memgate-sentinel-test"); }
  BuildFn build(std::string bytes) {
    return [bytes](const CancelSignal&) -> Result<std::string> { return bytes; };
  }
  static LoadFn load() {
    return [](std::string_view) { return Status::Ok(); };
  }
  std::string address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }
  std::string role_of(uint16_t port) {
    std::string out = group_->redis_cli(port, {"ROLE"});
    return out.substr(0, out.find('\n'));
  }
};

TEST_F(SentinelTest, TheCoordinatorFindsTheMasterThroughTheSentinels) {
  start_group();
  auto c = coordinator(sentinel_options());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->backend(), "redis");
  auto r = c->fleet_once("task:s", 2s, 30s, build("bytes"), load());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  EXPECT_EQ(group_->redis_cli(group_->first_master().port(), {"EXISTS", "{task:s}:done"}), "1\n");
  EXPECT_EQ(metrics_.master_address(), address(group_->first_master().port()));
  EXPECT_EQ(metrics_.sentinel_failovers.load(), 0u);
}

TEST_F(SentinelTest, ADeadSentinelIsPassedOverAndTheOneThatAnsweredIsAskedFirstNextTime) {
  start_group();
  auto s = parse_redis_url(group_->url());
  ASSERT_TRUE(s.ok());
  Endpoint dead{"127.0.0.1", testing::free_port()};
  s->sentinels.insert(s->sentinels.begin(), dead);
  CoordMetrics m;
  SentinelResolver resolver(*s, &m, 300ms);
  auto master = resolver.resolve();
  ASSERT_TRUE(master.ok()) << master.status().to_string();
  EXPECT_EQ(master->port, group_->first_master().port());
  EXPECT_EQ(resolver.sentinels().front().port, group_->sentinel_port(0)) << "the one that answered moved up";
  EXPECT_EQ(resolver.sentinels()[1], dead);
  EXPECT_EQ(m.sentinel_resolution_errors.load(), 0u);
  // The view /debug/coord shows: the order they are asked in now, no error.
  CoordMetrics::SentinelView view = m.sentinel_view();
  EXPECT_EQ(view.master_name, s->sentinel_master);
  ASSERT_EQ(view.sentinels.size(), s->sentinels.size());
  EXPECT_EQ(view.sentinels.front(), address(group_->sentinel_port(0)));
  EXPECT_EQ(view.sentinels[1], dead.describe());
  EXPECT_EQ(view.last_error, "");

  auto none = *s;
  none.sentinels = {dead};
  none.password = "master-secret";
  SentinelResolver nobody(none, &m, 300ms);
  auto failed = nobody.resolve();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kUnavailable);
  EXPECT_NE(failed.status().message().find(dead.describe()), std::string::npos) << failed.status().message();
  EXPECT_EQ(failed.status().message().find("master-secret"), std::string::npos);
  EXPECT_EQ(m.sentinel_resolution_errors.load(), 1u);
  view = m.sentinel_view();
  EXPECT_NE(view.last_error.find(dead.describe()), std::string::npos) << view.last_error;
  EXPECT_EQ(view.last_error.find("master-secret"), std::string::npos);
}

TEST_F(SentinelTest, SentinelsWithAPasswordAreAskedWithRedisSentinelPassword) {
  testing::SentinelOptions so;
  so.sentinel_password = "sentinel-secret";
  start_group(so);
  auto without = sentinel_options();
  without.connect_timeout = 500ms;
  without.background_switch = false;
  auto local = coordinator(without);
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->backend(), "local") << "no sentinel answers without the password";
  local.reset();
  auto with = sentinel_options();
  with.sentinel_password = "sentinel-secret";
  auto c = coordinator(with);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->backend(), "redis");
  EXPECT_TRUE(c->set_json("k", boost::json::value(1), 0ms).ok());
}

TEST_F(SentinelTest, AfterTheMasterIsKilledTheCoordinatorFollowsThePromotedReplica) {
  start_group();
  auto c = coordinator(sentinel_options());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->fleet_once("task:before", 2s, 30s, build("before"), load()).ok());
  uint16_t replica = group_->first_replica().port();
  group_->first_master().kill();  // SIGKILL, by the pid the harness started
  ASSERT_TRUE(group_->wait_master_is(replica, 30s)) << "the sentinels did not fail over";
  ASSERT_TRUE(c->ensure_connected(10s).ok()) << metrics_.master_address();
  auto r = c->fleet_once("task:after", 2s, 30s, build("after"), load());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  EXPECT_EQ(group_->redis_cli(replica, {"EXISTS", "{task:after}:done"}), "1\n");
  EXPECT_EQ(metrics_.master_address(), address(replica));
  EXPECT_GE(metrics_.sentinel_failovers.load(), 1u);
  // The lock scripts too: the fenced acquire runs on the new master.
  auto lease = c->acquire("job:after", 2s, 0ms);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  EXPECT_TRUE(*c->release(*lease));
}

// Sentinel demotes the old master with REPLICAOF and CLIENT KILL TYPE normal in
// one step, so a client still connected to it is disconnected (and re-resolves)
// rather than answered READONLY; the READONLY rule is shown by the next test.
TEST_F(SentinelTest, ADemotedMasterIsLeftAndTheClientFollowsTheNewMaster) {
  start_group();
  auto o = sentinel_options();
  o.sentinel_watch = false;  // no +switch-master hint: only READONLY tells this client
  auto c = coordinator(o);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->set_json("before", boost::json::value(1), 0ms).ok());
  uint16_t old_master = group_->first_master().port(), replica = group_->first_replica().port();
  group_->first_master().signal(SIGSTOP);
  bool failed_over = group_->wait_master_is(replica, 30s);
  group_->first_master().signal(SIGCONT);
  ASSERT_TRUE(failed_over) << "the sentinels did not fail over";
  // Back, the old master is told to replicate the new one.
  ASSERT_TRUE(testing::wait_until([&] { return role_of(old_master) == "slave"; }, 30s)) << role_of(old_master);
  Status st = c->set_json("after", boost::json::value(2), 0ms);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(group_->redis_cli(replica, {"GET", "after"}), "2\n") << "written on the new master";
  EXPECT_TRUE(testing::wait_until([&] { return group_->redis_cli(old_master, {"GET", "after"}) == "2\n"; }, 20s))
      << "the demoted master replicates the new one";
  EXPECT_GE(metrics_.failover_retries.load(), 1u) << "the write was sent again after the disconnect";
  EXPECT_EQ(metrics_.master_address(), address(replica));
  EXPECT_GE(metrics_.sentinel_failovers.load(), 1u);
}

// A connection that follows failovers and lands on a replica (a stale answer, or a
// master demoted without its clients being killed) gets READONLY for a write: it
// hands that answer to the caller, takes no more commands there, reconnects and
// asks its source again.
TEST(FailoverConnection, AReadonlyReplyMakesTheConnectionAskWhereToConnectAgain) {
  auto master = testing::RedisServer::start();
  ASSERT_TRUE(master.ok()) << master.status().to_string();
  testing::RedisOptions ro;
  ro.extra_args = {"--replicaof", "127.0.0.1", std::to_string((*master)->port())};
  auto replica = testing::RedisServer::start(ro);
  ASSERT_TRUE(replica.ok()) << replica.status().to_string();
  std::atomic<int> asked{0};
  uint16_t replica_port = (*replica)->port(), master_port = (*master)->port();
  RedisSettings s;
  s.connect_timeout = 1000ms;
  s.command_timeout = 1000ms;
  s.reconnect_min = 10ms;
  CoordMetrics m;
  auto conn = Connection::create(s, &m, true, [&]() -> Result<Endpoint> {
    return Endpoint{"127.0.0.1", asked.fetch_add(1) == 0 ? replica_port : master_port};
  });
  ASSERT_TRUE(conn->wait_connected(2s).ok());
  auto first = conn->command({"SET", "k", "v"});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->is_error());
  EXPECT_TRUE(is_readonly_error(first->str)) << first->str;
  auto at_once = conn->command({"SET", "k", "v"});
  EXPECT_FALSE(at_once.ok() && !at_once->is_error()) << "no second command goes to the replica";
  ASSERT_TRUE(testing::wait_until([&] { return conn->connected() && asked.load() >= 2; }, 5s));
  auto second = conn->command({"SET", "k", "v"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->str, "OK") << describe_reply_error(second);
  EXPECT_EQ(asked.load(), 2);
  // And out of a script (EVAL on a replica).
  EXPECT_TRUE(is_readonly_error("READONLY You can't write against a read only replica. script: abc"));
}

}  // namespace
}  // namespace memgate::coord
