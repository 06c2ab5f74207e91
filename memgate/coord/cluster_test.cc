// Redis Cluster, for real: three cluster-enabled redis-servers joined by
// redis-cli (tests/support/redis_cluster.h), coordinators given
// redis-cluster:// URLs, and slots moved by hand while they work.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "memgate/coord/cluster_router.h"
#include "memgate/coord/coord_test_env.h"
#include "memgate/coord/coordinator.h"
#include "memgate/coord/key_layout.h"
#include "memgate/coord/redis_backend.h"
#include "tests/support/redis_cluster.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

class Cluster : public FleetFixture<::testing::Test> {
 protected:
  void SetUp() override {
    auto c = testing::RedisCluster::start();
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    cluster_ = std::move(*c);
    dir_ = testing::temp_dir("memgate-cluster-test");
  }
  void TearDown() override {
    cluster_.reset();
    testing::remove_tree(dir_);
  }

  CoordinatorOptions options(std::string url = "") {
    CoordinatorOptions o;
    o.redis_url = url.empty() ? cluster_->url() : url;
    o.connect_timeout = 2s;
    o.command_timeout = 2s;
    o.local_dir = dir_ + "/local";
    o.metrics = &metrics_;
    return o;
  }
  std::unique_ptr<Coordinator> coordinator(CoordinatorOptions o) {
    auto c = Coordinator::create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? std::move(*c) : nullptr;
  }
  std::unique_ptr<Coordinator> coordinator() { return coordinator(options()); }

  // A task name whose slot is on node `node` (names "<prefix>-0", "-1", ...).
  std::string name_on(size_t node, const std::string& prefix) {
    for (int i = 0; i < 10000; ++i) {
      std::string name = prefix + "-" + std::to_string(i);
      if (cluster_->owner_of(key_slot(task_keys(name).lock)) == static_cast<int>(node)) return name;
    }
    ADD_FAILURE() << "no name found on node " << node;
    return prefix;
  }

  std::string get_on(size_t node, const std::string& key) {
    std::string out = cluster_->cli(node, {"GET", key});
    return out.substr(0, out.find('\n'));
  }

  CoordMetrics metrics_;
  std::unique_ptr<testing::RedisCluster> cluster_;
  std::string dir_;
};

TEST_F(Cluster, TheCoordinatorConnectsThroughAnyOneSeedAndLocksLandOnTheSlotsOwner) {
  for (size_t seed = 0; seed < cluster_->size(); ++seed) {
    auto c = coordinator(options(cluster_->url_with_seeds({seed})));
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->backend(), "redis") << "seed " << seed;
    for (size_t node = 0; node < cluster_->size(); ++node) {
      std::string name = name_on(node, "seed" + std::to_string(seed));
      auto lease = c->acquire(name, 10s, 0ms);
      ASSERT_TRUE(lease.ok()) << lease.status().to_string();
      // The lock is on the node that owns its slot, holding our token.
      EXPECT_EQ(get_on(node, task_keys(name).lock), lease->token);
      ASSERT_TRUE(*c->release(*lease));
    }
  }
  auto nodes = metrics_.cluster_nodes();
  ASSERT_EQ(nodes.size(), 3u);
  uint32_t slots = 0;
  for (auto& n : nodes) slots += n.slots;
  EXPECT_EQ(slots, 16384u);
  EXPECT_GE(metrics_.cluster_slot_map_refreshes.load(), 3u);
  EXPECT_EQ(metrics_.cluster_redirects_moved.load(), 0u);
}

TEST_F(Cluster, ABadSeedIsPassedOver) {
  std::string url = "redis-cluster://127.0.0.1:" + std::to_string(testing::free_port()) +
                    ",127.0.0.1:" + std::to_string(cluster_->port(1));
  auto c = coordinator(options(url));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->backend(), "redis");
  auto lease = c->acquire("task:after-a-bad-seed", 5s, 0ms);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
}

TEST_F(Cluster, FourProcessesStartedTogetherBuildOnceAndTheOthersLoad) {
  std::vector<std::unique_ptr<testing::Subprocess>> procs;
  for (int i = 0; i < 4; ++i) {
    auto p = testing::Subprocess::start(
        {MEMGATE_COORD_TOOL, "fleet", "--url", cluster_->url(), "--name", "task:cluster-fleet", "--lock-ttl-ms", "2000",
         "--done-ttl-ms", "60000", "--build-ms", "300", "--size", "300000", "--chunk-size", "65536"},
        {}, dir_ + "/fleet-" + std::to_string(i) + ".log");
    ASSERT_TRUE(p.ok());
    procs.push_back(std::move(*p));
  }
  std::map<std::string, int> outcomes;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(procs[i]->wait_for(60s), 0) << testing::read_file(dir_ + "/fleet-" + std::to_string(i) + ".log");
    std::string log = testing::read_file(dir_ + "/fleet-" + std::to_string(i) + ".log");
    auto at = log.find("outcome=");
    ASSERT_NE(at, std::string::npos) << log;
    outcomes[log.substr(at + 8, log.find('\n', at) - at - 8)]++;
  }
  EXPECT_EQ(outcomes["built"], 1);
  EXPECT_EQ(outcomes["loaded"] + outcomes["waited"], 3);
}

TEST_F(Cluster, FourCoordinatorsInThreadsBuildOnceAndAWaiterWakesOnTheCompletionMessage) {
  std::vector<std::unique_ptr<Coordinator>> cs;
  for (int i = 0; i < 4; ++i) cs.push_back(coordinator());
  FleetOnceOptions slow;
  slow.poll = 10s;  // a waiter that finishes sooner was woken by the message
  std::vector<Result<FleetOutcome>> results(4, Internal("not run"));
  std::vector<Steady::duration> took(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto start = Steady::now();
      results[i] = cs[i]->fleet_once("task:threads", 5s, 60s, builder("built once", 400ms), loader(), slow);
      took[i] = Steady::now() - start;
    });
  }
  for (auto& t : threads) t.join();
  int built = 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status().to_string();
    if (*results[i] == FleetOutcome::kBuilt) ++built;
    EXPECT_LT(took[i], 4s) << "instance " << i;
  }
  EXPECT_EQ(built, 1);
  EXPECT_EQ(builds_.load(), 1);
  ASSERT_EQ(loaded_.size(), 3u);
  for (auto& l : loaded_) EXPECT_EQ(l, "built once");
}

// A slot halfway through a migration: the artifact's keys are on the target
// already, the source answers ASK, and a coordinator that still has the old map
// loads the artifact from the target.
TEST_F(Cluster, AnArtifactWhoseSlotIsBeingMigratedIsLoadedThroughAsk) {
  std::string name = name_on(0, "ask");
  uint16_t slot = key_slot(task_keys(name).lock);
  auto builder_side = coordinator();
  auto o = options();
  o.chunk_size = 1000;
  auto small_chunks = coordinator(o);
  std::string bytes(5000, 'a');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>('a' + i % 26);
  ASSERT_EQ(*small_chunks->fleet_once(name, 2s, 60s, builder(bytes), loader()), FleetOutcome::kBuilt);
  auto reader = coordinator();  // its map says node 0 holds the slot
  ASSERT_TRUE(reader->read_meta(name, "1").ok());

  ASSERT_TRUE(cluster_->begin_migration(slot, 0, 1).ok());
  TaskKeys k = task_keys(name);
  std::vector<std::string> moved = {k.done, k.meta};
  auto meta = reader->read_meta(name, "1");
  ASSERT_TRUE(meta.ok());
  for (uint64_t i = 0; i < meta->meta.chunks; ++i) moved.push_back(k.chunk(meta->fence, i));
  ASSERT_TRUE(cluster_->migrate_keys(slot, 0, 1, moved).ok());  // the fence stays on node 0 for now

  uint64_t asks = metrics_.cluster_redirects_ask.load();
  loaded_.clear();
  auto r = reader->fleet_once(name, 2s, 60s, builder("must not build"), loader());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kLoaded);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], bytes);
  EXPECT_EQ(builds_.load(), 1);
  EXPECT_GE(metrics_.cluster_redirects_ask.load(), asks + 3);  // done, meta, and the chunk reads
  EXPECT_EQ(metrics_.cluster_redirects_moved.load(), 0u);

  ASSERT_TRUE(cluster_->migrate_keys(slot, 0, 1).ok());
  ASSERT_TRUE(cluster_->finish_migration(slot, 1).ok());
  EXPECT_EQ(*builder_side->fleet_once(name, 2s, 60s, builder("must not build"), loader()), FleetOutcome::kLoaded);
}

// A resharding: the slot now belongs to another node on every node; a
// coordinator with the old map gets MOVED, asks for the map again, and its lock
// and fence carry on on the new owner.
TEST_F(Cluster, AReshardedSlotIsFollowedThroughMoved) {
  auto c = coordinator();
  std::string name = name_on(2, "moved");
  uint16_t slot = key_slot(task_keys(name).lock);
  auto first = c->acquire(name, 10s, 0ms);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  ASSERT_TRUE(*c->release(*first));
  uint64_t refreshes = metrics_.cluster_slot_map_refreshes.load();

  ASSERT_TRUE(cluster_->move_slot(slot, 2, 0).ok());
  ASSERT_EQ(cluster_->owner_of(slot), 0);

  auto second = c->acquire(name, 10s, 0ms);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_GT(second->fence, first->fence);  // the fence counter moved with the slot
  EXPECT_EQ(get_on(0, task_keys(name).lock), second->token);
  EXPECT_GE(metrics_.cluster_redirects_moved.load(), 1u);
  EXPECT_GT(metrics_.cluster_slot_map_refreshes.load(), refreshes);
  auto owner = c->redis()->cluster()->owner_of(slot);
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(owner->port, cluster_->port(0));
  // Once refreshed, no more redirects.
  uint64_t moved = metrics_.cluster_redirects_moved.load();
  ASSERT_TRUE(*c->release(*second));
  EXPECT_EQ(metrics_.cluster_redirects_moved.load(), moved);
}

// During a migration a script over two keys where one has moved and one has
// not gets TRYAGAIN: the router waits and sends it again, and once the
// migration is done the acquire goes through with the next fence.
TEST_F(Cluster, AnAcquireDuringAMigrationIsRetriedAfterTryAgain) {
  auto c = coordinator();
  std::string name = name_on(1, "tryagain");
  uint16_t slot = key_slot(task_keys(name).lock);
  auto first = c->acquire(name, 10s, 0ms);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  ASSERT_TRUE(*c->release(*first));  // the fence stays, the lock is gone

  ASSERT_TRUE(cluster_->begin_migration(slot, 1, 2).ok());
  Result<Lease> second = Internal("not run");
  std::thread t([&] { second = c->acquire(name, 10s, 0ms); });
  bool retried = testing::wait_until([&] { return metrics_.cluster_retries_tryagain.load() > 0; }, 5s);
  ASSERT_TRUE(cluster_->migrate_keys(slot, 1, 2).ok());
  ASSERT_TRUE(cluster_->finish_migration(slot, 2).ok());
  t.join();
  ASSERT_TRUE(retried);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_GT(second->fence, first->fence);
  EXPECT_EQ(get_on(2, task_keys(name).lock), second->token);
}

TEST_F(Cluster, CompletionMessagesUseShardedPubSubOnRedisSeven) {
  auto c = coordinator();
  ASSERT_NE(c->redis()->cluster(), nullptr);
  EXPECT_TRUE(c->redis()->cluster()->sharded_pubsub());
}

// Two nodes that each say the other holds a slot: the command fails after the
// redirect bound instead of bouncing between them for ever.
TEST_F(Cluster, ASlotBothNodesSayTheOtherHoldsFailsAfterTheRedirectBound) {
  auto c = coordinator();
  std::string name = name_on(0, "loop");
  uint16_t slot = key_slot(task_keys(name).lock);
  std::string s = std::to_string(slot);
  ASSERT_EQ(cluster_->cli(0, {"CLUSTER", "SETSLOT", s, "NODE", cluster_->node_id(1)}).substr(0, 2), "OK");
  // Node 1 still believes node 0 holds it (it was never told otherwise).
  ASSERT_NE(cluster_->cli(1, {"GET", task_keys(name).lock}).find("MOVED"), std::string::npos);
  auto start = Steady::now();
  auto r = c->acquire(name, 5s, 0ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
  EXPECT_NE(r.status().message().find("redirects"), std::string::npos) << r.status().to_string();
  EXPECT_LT(Steady::now() - start, 10s);
  EXPECT_GE(metrics_.cluster_redirects_moved.load(), static_cast<uint64_t>(ClusterRouter::kMaxRedirects));
}

// A cluster whose servers lack SPUBLISH (renamed away here, as on Redis 6):
// completion messages go out with PUBLISH, over the cluster bus to every node,
// and a waiter still wakes on them rather than on its slow poll.
TEST(ClusterWithoutShardedPubSub, CompletionMessagesFallBackToPublish) {
  testing::ClusterOptions options;
  options.extra_args = {"--rename-command", "SPUBLISH", ""};
  auto cluster = testing::RedisCluster::start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status().to_string();
  std::string dir = testing::temp_dir("memgate-cluster-test");
  CoordMetrics metrics;
  auto make = [&] {
    CoordinatorOptions o;
    o.redis_url = (*cluster)->url();
    o.local_dir = dir + "/local";
    o.metrics = &metrics;
    auto c = Coordinator::create(o);
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  };
  auto builder_side = make();
  auto waiter_side = make();
  ASSERT_FALSE(waiter_side->redis()->cluster()->sharded_pubsub());
  std::atomic<int> builds{0};
  auto build = [&](const CancelSignal& cancel) -> Result<std::string> {
    builds.fetch_add(1);
    if (cancel.wait_for(500ms)) return Aborted("cancelled");
    return std::string("built");
  };
  std::string loaded;
  auto load = [&](std::string_view bytes) {
    loaded = bytes;
    return Status::Ok();
  };
  std::thread b(
      [&] { EXPECT_EQ(*builder_side->fleet_once("task:plain", 5s, 60s, build, load), FleetOutcome::kBuilt); });
  ASSERT_TRUE(testing::wait_until([&] { return builds.load() == 1; }, 5s));
  FleetOnceOptions slow;
  slow.poll = 10s;
  auto start = Steady::now();
  std::string waiter_loaded;
  auto r = waiter_side->fleet_once(
      "task:plain", 5s, 60s, build,
      [&](std::string_view bytes) {
        waiter_loaded = bytes;
        return Status::Ok();
      },
      slow);
  auto took = Steady::now() - start;
  b.join();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kWaited);
  EXPECT_EQ(waiter_loaded, "built");
  EXPECT_LT(took, 4s);
  EXPECT_EQ(builds.load(), 1);
  builder_side.reset();
  waiter_side.reset();
  testing::remove_tree(dir);
}

TEST(ClusterSlots, AReplyIsReadIntoMastersAndRanges) {
  auto range = [](int64_t first, int64_t last, std::string host, int64_t port) {
    Reply r;
    r.type = Reply::Type::kArray;
    Reply a, b, m, h, p;
    a.type = b.type = p.type = Reply::Type::kInteger;
    a.integer = first;
    b.integer = last;
    h.type = Reply::Type::kString;
    h.str = std::move(host);
    p.integer = port;
    m.type = Reply::Type::kArray;
    m.elements = {h, p};
    r.elements = {a, b, m};
    return r;
  };
  Reply reply;
  reply.type = Reply::Type::kArray;
  reply.elements = {range(0, 100, "10.0.0.1", 7000), range(101, 16383, "", 7001), range(200, 300, "10.0.0.1", 7000)};
  auto spec = parse_cluster_slots(reply, Endpoint{"10.0.0.9", 7005}, 64);
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  ASSERT_EQ(spec->masters.size(), 2u);
  EXPECT_EQ(spec->masters[1].host, "10.0.0.9");  // empty: the node asked
  EXPECT_EQ(spec->ranges.size(), 3u);

  // Hostile or broken replies are refused, not followed.
  Reply many;
  many.type = Reply::Type::kArray;
  for (int i = 0; i < 65; ++i) many.elements.push_back(range(i, i, "10.0.0.1", 7000 + i));
  EXPECT_FALSE(parse_cluster_slots(many, Endpoint{"h", 1}, 64).ok());
  Reply bad;
  bad.type = Reply::Type::kArray;
  bad.elements = {range(5, 4, "h", 1)};
  EXPECT_FALSE(parse_cluster_slots(bad, Endpoint{"h", 1}, 64).ok());
  bad.elements = {range(0, 16384, "h", 1)};
  EXPECT_FALSE(parse_cluster_slots(bad, Endpoint{"h", 1}, 64).ok());
  bad.elements = {range(0, 10, "h", 70000)};
  EXPECT_FALSE(parse_cluster_slots(bad, Endpoint{"h", 1}, 64).ok());
  bad.elements = {range(0, 10, std::string(300, 'h'), 1)};
  EXPECT_FALSE(parse_cluster_slots(bad, Endpoint{"h", 1}, 64).ok());
  Reply empty;
  empty.type = Reply::Type::kArray;
  EXPECT_FALSE(parse_cluster_slots(empty, Endpoint{"h", 1}, 64).ok());
}

TEST(ClusterSlots, RedirectsAreReadAndAnythingMalformedIsLeftAsAnError) {
  Endpoint from{"10.0.0.2", 7002};
  auto moved = parse_redirect("MOVED 3999 127.0.0.1:6381", from);
  EXPECT_EQ(moved.kind, Redirect::Kind::kMoved);
  EXPECT_EQ(moved.slot, 3999);
  EXPECT_EQ(moved.to, (Endpoint{"127.0.0.1", 6381}));
  auto ask = parse_redirect("ASK 12 :7000", from);
  EXPECT_EQ(ask.kind, Redirect::Kind::kAsk);
  EXPECT_EQ(ask.to, (Endpoint{"10.0.0.2", 7000}));
  EXPECT_EQ(parse_redirect("TRYAGAIN Multiple keys request during rehashing of slot", from).kind,
            Redirect::Kind::kTryAgain);
  EXPECT_EQ(parse_redirect("CLUSTERDOWN The cluster is down", from).kind, Redirect::Kind::kClusterDown);
  EXPECT_EQ(parse_redirect("MOVED 16384 h:1", from).kind, Redirect::Kind::kNone);
  EXPECT_EQ(parse_redirect("MOVED 1 h:0", from).kind, Redirect::Kind::kNone);
  EXPECT_EQ(parse_redirect("MOVED 1 nohostport", from).kind, Redirect::Kind::kNone);
  EXPECT_EQ(parse_redirect("MOVEDX 1 h:1", from).kind, Redirect::Kind::kNone);
  EXPECT_EQ(parse_redirect("ERR wrong number of arguments", from).kind, Redirect::Kind::kNone);
}

}  // namespace
}  // namespace memgate::coord
