// REDIS_WAIT_REPLICAS against a real master and replica: an acquire and a
// fenced publish count only once the replicas acknowledged them.
#include <signal.h>

#include "memgate/coord/coord_test_env.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;

class WaitReplicasTest : public RedisTest {
 protected:
  void start_replica() {
    // A master that starts the replica's full sync at once (diskless, no 5 s delay).
    testing::RedisOptions m;
    m.extra_args = {"--repl-diskless-sync-delay", "0"};
    start_redis(m);
    testing::RedisOptions o;
    o.extra_args = {"--replicaof", "127.0.0.1", std::to_string(server_->port())};
    auto r = testing::RedisServer::start(o);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    replica_ = std::move(*r);
    ASSERT_TRUE(testing::wait_until(
        [&] {
          auto info = raw().command({"INFO", "replication"});
          return info.ok() && info->str.find("state=online") != std::string::npos;
        },
        10s));
  }
  CoordinatorOptions waiting(int n) {
    auto o = options();
    o.wait_replicas = n;
    o.command_timeout = 2000ms;  // WAIT gets half of it
    return o;
  }
  std::unique_ptr<testing::RedisServer> replica_;
};

TEST_F(WaitReplicasTest, WithoutAReplicaNoLockIsTakenAndNothingIsLeftBehind) {
  auto c = coordinator(waiting(1));
  auto lease = c->acquire("lock:w", 5s, 0ms);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().code(), Code::kUnavailable);
  EXPECT_NE(lease.status().message().find("acknowledged by 0 of the 1 replicas"), std::string::npos)
      << lease.status().message();
  EXPECT_TRUE(raw().command({"GET", "{lock:w}"})->is_nil()) << "the unreplicated lock was undone";
  EXPECT_EQ(metrics_.unreplicated_writes.load(), 1u);
}

TEST_F(WaitReplicasTest, WithTheReplicaUpLocksAndPublishesAreAcknowledged) {
  start_replica();
  auto c = coordinator(waiting(1));
  auto r = c->fleet_once("task:w", 2s, 30s, [](const CancelSignal&) -> Result<std::string> { return std::string("b"); },
                         [](std::string_view) { return Status::Ok(); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  EXPECT_EQ(metrics_.unreplicated_writes.load(), 0u);
}

TEST_F(WaitReplicasTest, APublishTheReplicaDidNotAcknowledgeIsNotPublished) {
  start_replica();
  auto c = coordinator(waiting(1));
  auto lease = c->acquire("task:p", 5s, 0ms);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  replica_->signal(SIGSTOP);
  Status st = c->publish_artifact(*lease, "task:p", "bytes", "1", 30s);
  replica_->signal(SIGCONT);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.to_string();
  EXPECT_NE(st.message().find("the publish of task:p"), std::string::npos) << st.message();
  EXPECT_GE(metrics_.unreplicated_writes.load(), 1u);
}

}  // namespace
}  // namespace memgate::coord
