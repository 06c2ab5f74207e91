// The hash-tagged key layout against real servers: what is written, the
// migration window's reads of the old names, and every script on a node of a
// Redis Cluster (which refuses a script whose keys are in different slots).
#include <thread>

#include "memgate/coord/coord_test_env.h"
#include "memgate/coord/key_layout.h"
#include "memgate/coord/redis_backend.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;

class KeyLayoutTest : public RedisTest {
 protected:
  BuildFn build(std::string bytes) {
    return [this, bytes](const CancelSignal&) -> Result<std::string> {
      ++builds_;
      return bytes;
    };
  }
  LoadFn load() {
    return [this](std::string_view bytes) {
      loaded_.emplace_back(bytes);
      return Status::Ok();
    };
  }
  bool exists(const std::string& key) { return raw().command({"EXISTS", key})->integer == 1; }

  // What a version before hash tags left behind: done flag, meta and chunks
  // under "<name>:...", published under `fence`.
  void publish_the_old_way(const std::string& name, const std::string& bytes, int64_t fence, size_t chunk_size) {
    std::vector<std::string_view> chunks;
    ChunkedBytes pieces = ChunkedBytes::copy_of(bytes);
    ArtifactMeta meta = describe_artifact(pieces, "1", fence, chunk_size, &chunks);
    meta.builder = "old-version";
    for (size_t i = 0; i < chunks.size(); ++i)
      ASSERT_TRUE(raw().command({"SET", name + ":artifact:" + std::to_string(fence) + ":" + std::to_string(i),
                                 chunks[i], "PX", "60000"}).ok());
    ASSERT_TRUE(raw().command({"SET", name + ":artifact", meta.to_json(), "PX", "60000"}).ok());
    std::string done = "{\"fence\":" + std::to_string(fence) + ",\"instance\":\"old\",\"at_unix_ms\":1}";
    ASSERT_TRUE(raw().command({"SET", name + ":done", done, "PX", "60000"}).ok());
  }

  int builds_ = 0;
  std::vector<std::string> loaded_;
};

TEST_F(KeyLayoutTest, OnlyTheHashTaggedNamesAreWrittenEvenDuringTheMigrationWindow) {
  auto o = options();
  o.legacy_keys_for = 10min;
  o.chunk_size = 4;
  auto c = coordinator(o);
  const std::string name = "init:mcp-kb@3fa9c1d2e4b5a697";
  auto r = c->fleet_once(name, 1s, 30s, build("0123456789"), load());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  c->record_peak(name, false, 1234, 30s);
  auto meta = c->read_meta(name, "1");
  ASSERT_TRUE(meta.ok());
  const std::string tag = "{" + name + "}";
  EXPECT_TRUE(exists(tag + ":fence"));
  EXPECT_TRUE(exists(tag + ":done"));
  EXPECT_TRUE(exists(tag + ":artifact"));
  EXPECT_TRUE(exists(tag + ":artifact:" + std::to_string(meta->fence) + ":2"));
  EXPECT_TRUE(exists(tag + ":peaks"));
  EXPECT_FALSE(exists(tag)) << "released";
  // Nothing under the old names: the lock's old name was taken and released with it.
  auto old = raw().command({"KEYS", name + "*"});
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->elements.empty()) << old->elements.size() << " keys, first " << old->elements[0].str;
  EXPECT_EQ(c->fleet_peaks(name).load, 1234u);
}

TEST_F(KeyLayoutTest, AnArtifactPublishedUnderTheOldNamesIsLoadedDuringTheWindow) {
  const std::string name = "init:mcp-kb@00112233aabbccdd";
  publish_the_old_way(name, "published by an older version", 7, 8);
  auto o = options();
  o.legacy_keys_for = 10min;
  o.chunk_size = 8;
  auto c = coordinator(o);
  auto r = c->fleet_once(name, 1s, 30s, build("built here"), load());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kLoaded);
  EXPECT_EQ(builds_, 0);
  ASSERT_EQ(loaded_.size(), 1u);
  EXPECT_EQ(loaded_[0], "published by an older version");
  EXPECT_FALSE(exists("{" + name + "}:done")) << "loading writes nothing";
}

TEST_F(KeyLayoutTest, ABadArtifactUnderTheOldNamesIsRebuiltUnderTheNewOnes) {
  const std::string name = "task:old-bad";
  publish_the_old_way(name, "0123456789abcdef", 7, 4);
  ASSERT_TRUE(raw().command({"DEL", name + ":artifact:7:1"}).ok());
  auto o = options();
  o.legacy_keys_for = 10min;
  auto c = coordinator(o);
  auto r = c->fleet_once(name, 1s, 30s, build("fresh"), load());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact);
  EXPECT_TRUE(exists("{" + name + "}:done"));
}

TEST_F(KeyLayoutTest, AfterTheWindowTheOldNamesAreNotRead) {
  const std::string name = "task:old-late";
  publish_the_old_way(name, "old bytes", 7, 8);
  auto c = coordinator();  // legacy_keys_for = 0: the window is over
  auto r = c->fleet_once(name, 1s, 30s, build("new bytes"), load());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  ASSERT_EQ(loaded_.size(), 0u);
}

TEST_F(KeyLayoutTest, DuringTheWindowALockHeldUnderItsOldNameExcludesAndOursTakesItToo) {
  auto o = options();
  o.legacy_keys_for = 10min;
  auto c = coordinator(o);
  // An older instance claimed this period's job under the old name.
  ASSERT_TRUE(raw().command({"SET", "job:reindex:7", "old-token", "PX", "5000"}).ok());
  auto held = c->acquire("job:reindex:7", 5s, 0ms);
  ASSERT_FALSE(held.ok());
  EXPECT_EQ(held.status().code(), Code::kDeadlineExceeded);
  EXPECT_FALSE(exists("{job:reindex:7}")) << "nothing of ours left behind";
  ASSERT_TRUE(raw().command({"DEL", "job:reindex:7"}).ok());
  auto lease = c->acquire("job:reindex:7", 5s, 0ms);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  EXPECT_EQ(raw().command({"GET", "{job:reindex:7}"})->str, lease->token);
  EXPECT_EQ(raw().command({"GET", "job:reindex:7"})->str, lease->token) << "an older instance sees it held";
  ASSERT_TRUE(c->extend(*lease, 9s).ok());
  EXPECT_GT(raw().command({"PTTL", "job:reindex:7"})->integer, 6000);
  ASSERT_TRUE(*c->release(*lease));
  EXPECT_FALSE(exists("{job:reindex:7}"));
  EXPECT_FALSE(exists("job:reindex:7"));
}

// A one-node Redis Cluster that owns every slot: it refuses (CROSSSLOT) any
// script whose keys are in different slots, so running the whole protocol on
// it shows that every multi-key script stays in one slot.
class ClusterNodeTest : public RedisTest {
 protected:
  void SetUp() override {
    testing::RedisOptions o;
    // The cluster bus port is port + 10000 unless given: give a free one.
    o.extra_args = {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port",
                    std::to_string(testing::free_port())};
    start_redis(o);
    auto added = raw().command({"CLUSTER", "ADDSLOTSRANGE", "0", "16383"});
    ASSERT_TRUE(added.ok() && !added->is_error()) << describe_reply_error(added);
    ASSERT_TRUE(testing::wait_until(
        [&] {
          auto info = raw().command({"CLUSTER", "INFO"});
          return info.ok() && info->str.find("cluster_state:ok") != std::string::npos;
        },
        10s));
  }
};

TEST_F(ClusterNodeTest, EveryScriptOfLocksAndFleetOnceRunsOnAClusterNode) {
  auto o = options();
  o.chunk_size = 4;  // several chunks: the publish and chunk-read scripts get many keys
  auto builder = coordinator(o);
  auto loader = coordinator(o);
  const std::string name = "init:mcp-kb@3fa9c1d2e4b5a697";
  int builds = 0;
  std::string loaded;
  auto r = builder->fleet_once(
      name, 1s, 30s, [&](const CancelSignal&) -> Result<std::string> { return ++builds, std::string("0123456789abcdef"); },
      [](std::string_view) { return Status::Ok(); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, FleetOutcome::kBuilt);
  auto l = loader->fleet_once(
      name, 1s, 30s, [&](const CancelSignal&) -> Result<std::string> { return ++builds, std::string("x"); },
      [&](std::string_view bytes) {
        loaded = std::string(bytes);
        return Status::Ok();
      });
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_EQ(*l, FleetOutcome::kLoaded);
  EXPECT_EQ(loaded, "0123456789abcdef");
  EXPECT_EQ(builds, 1);

  Status locked = builder->with_lock("job:reindex:7", 1s, [](const Lease& lease, const CancelSignal&) {
    return lease.fence > 0 ? Status::Ok() : Internal("no fence");
  });
  EXPECT_TRUE(locked.ok()) << locked.to_string();
  auto lease = builder->acquire("job:reindex:8", 2s, 0ms);
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  auto ext = builder->extend(*lease, 3s);
  ASSERT_TRUE(ext.ok()) << ext.status().to_string();
  EXPECT_TRUE(*ext);
  auto rel = builder->release(*lease);
  ASSERT_TRUE(rel.ok()) << rel.status().to_string();
  EXPECT_TRUE(*rel);
  builder->record_peak(name, true, 99, 30s);
  EXPECT_EQ(loader->fleet_peaks(name).build, 99u);
  // (Error replies were only the first EVALSHA of each script: NOSCRIPT, then EVAL.)

  // The migration window's lock scripts also take the lock's old name K, whose
  // slot is {K}'s (the tag is all of K): they run on a cluster node too.
  auto m = options();
  m.legacy_keys_for = 10min;
  auto migrating = coordinator(m);
  auto both = migrating->acquire("job:reindex:9", 2s, 0ms);
  ASSERT_TRUE(both.ok()) << both.status().to_string();
  EXPECT_EQ(key_slot("job:reindex:9"), key_slot("{job:reindex:9}:fence"));
  EXPECT_TRUE(*migrating->release(*both));

  // The control: this node does refuse a script whose keys are in two slots.
  auto crossed = raw().command({"EVAL", "return 1", "2", "{a}x", "{b}x"});
  ASSERT_TRUE(crossed.ok());
  ASSERT_TRUE(crossed->is_error());
  EXPECT_EQ(crossed->str.rfind("CROSSSLOT", 0), 0u) << crossed->str;
}

TEST_F(ClusterNodeTest, OurSlotFunctionAgreesWithTheServer) {
  for (std::string key : {"123456789", "{init:mcp-kb@3fa9c1d2e4b5a697}:artifact:17:0", "{job:reindex:7}:fence",
                          "plain-key", "foo{}{bar}", "foo{{bar}}zap"}) {
    auto slot = raw().command({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.ok());
    EXPECT_EQ(slot->integer, key_slot(key)) << key;
  }
}

}  // namespace
}  // namespace memgate::coord
