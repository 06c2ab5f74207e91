// Test fixture for coord's integration tests: a real redis-server per test (or,
// in a TopologyTest, the topology the test is instantiated for), a scratch
// directory, coordinators with test-sized timeouts, and the path of
// memgate_coord_tool for multi-process tests.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "memgate/coord/cluster_router.h"
#include "memgate/coord/connection.h"
#include "memgate/coord/coordinator.h"
#include "memgate/coord/redis_link.h"
#include "tests/support/redis_server.h"
#include "tests/support/redis_topology.h"

namespace memgate::coord {

// raw() on a cluster: keyed commands routed as the backend routes them (KEYS
// with a tagged pattern lands on the tag's node too), keyless ones (FLUSHALL)
// sent to every master.
class RawClusterLink final : public RedisLink {
 public:
  RawClusterLink(const RedisSettings& cluster, const std::vector<std::string>& node_urls, CoordMetrics* metrics)
      : router_(cluster, metrics) {
    for (auto& url : node_urls) {
      auto s = parse_redis_url(url);
      if (s.ok()) nodes_.push_back(Connection::create(*s, metrics, false));
    }
  }
  Status wait_connected(std::chrono::milliseconds timeout) override {
    for (auto& n : nodes_)
      if (Status st = n->wait_connected(timeout); !st.ok()) return st;
    return router_.wait_connected(timeout);
  }
  bool connected() const override { return router_.connected(); }
  std::string last_error() const override { return router_.last_error(); }
  void async_command(const std::vector<std::string_view>& args, ReplyCallback cb) override {
    router_.async_command(args, std::move(cb));
  }
  void async_eval(const Script& script, const std::vector<std::string_view>& keys,
                  const std::vector<std::string_view>& args, ReplyCallback cb) override {
    router_.async_eval(script, keys, args, std::move(cb));
  }
  Result<Reply> command(const std::vector<std::string_view>& args) override {
    if (args.size() > 1) return router_.command(args);
    Result<Reply> last = Internal("no node");
    for (auto& n : nodes_) {
      last = n->command(args);
      if (!last.ok() || last->is_error()) return last;
    }
    return last;
  }
  Result<Reply> eval(const Script& script, const std::vector<std::string_view>& keys,
                     const std::vector<std::string_view>& args) override {
    return router_.eval(script, keys, args);
  }
  Result<Reply> command_near(std::string_view key, const std::vector<std::string_view>& args) override {
    return router_.command_near(key, args);
  }

 private:
  ClusterRouter router_;
  std::vector<std::unique_ptr<Connection>> nodes_;
};

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override { start_redis({}); }
  void TearDown() override {
    raw_.reset();
    server_.reset();
    topology_.reset();
    testing::remove_tree(dir_);
  }

  void start_redis(testing::RedisOptions options) {
    raw_.reset();
    server_.reset();
    auto s = testing::RedisServer::start(options);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = std::move(*s);
    if (dir_.empty()) dir_ = testing::temp_dir("memgate-coord-test");
  }

  // Runs the test against `kind` instead of the one server (see TopologyTest).
  void start_topology(testing::TopologyKind kind) {
    raw_.reset();
    server_.reset();
    auto t = testing::RedisTopology::start(kind);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    topology_ = std::move(*t);
    if (dir_.empty()) dir_ = testing::temp_dir("memgate-coord-test");
  }

  // What a coordinator or the tool is given as REDIS_URL.
  std::string url() const { return topology_ ? topology_->url() : server_->url(); }
  std::string ca_file() const { return topology_ ? topology_->ca_file() : server_->ca_file(); }

  // "Redis is down" and "it came back without its data", for whichever
  // topology runs (redis_topology.h says what each means there).
  void kill_redis() {
    raw_.reset();
    if (topology_) topology_->kill_data();
    else server_->kill();
  }
  Status restart_redis_empty() {
    raw_.reset();
    return topology_ ? topology_->restart_empty() : server_->restart();
  }

  CoordinatorOptions options() {
    CoordinatorOptions o;
    o.redis_url = url();
    o.tls_ca = ca_file();
    o.connect_timeout = std::chrono::milliseconds(1000);
    o.command_timeout = std::chrono::milliseconds(1000);
    o.local_dir = dir_ + "/local";
    o.metrics = &metrics_;
    o.legacy_keys_for = std::chrono::milliseconds(0);  // the migration tests turn it on
    return o;
  }

  std::unique_ptr<Coordinator> coordinator(CoordinatorOptions o) {
    auto c = Coordinator::create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return c.ok() ? std::move(*c) : nullptr;
  }
  std::unique_ptr<Coordinator> coordinator() { return coordinator(options()); }

  // A plain connection for looking at (and tampering with) keys: to the
  // server, or the master the topology has now (made again after a kill); on
  // a cluster, a RawClusterLink.
  RedisLink& raw() {
    if (!raw_) {
      bool cluster = topology_ && topology_->kind() == testing::TopologyKind::kCluster;
      auto s = parse_redis_url(cluster || !topology_ ? url() : topology_->master_url());
      EXPECT_TRUE(s.ok());
      s->tls_ca = ca_file();
      if (cluster) raw_ = std::make_unique<RawClusterLink>(*s, topology_->node_urls(), &raw_metrics_);
      else raw_ = link_to_connection(Connection::create(*s, &raw_metrics_, false));
      EXPECT_TRUE(raw_->wait_connected(std::chrono::seconds(2)).ok());
    }
    return *raw_;
  }

  static std::string tool() { return MEMGATE_COORD_TOOL; }

  static std::vector<std::string> lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  CoordMetrics metrics_;
  CoordMetrics raw_metrics_;
  std::unique_ptr<testing::RedisServer> server_;
  std::unique_ptr<testing::RedisTopology> topology_;
  std::unique_ptr<RedisLink> raw_;
  std::string dir_;
};

// fleet_once over any fixture `Base`: builds that count themselves, loads that
// record what they saw.
template <class Base>
class FleetFixture : public Base {
 protected:
  // A build that counts itself and returns `bytes`; a load that records what it saw.
  BuildFn builder(std::string bytes, std::chrono::milliseconds take = std::chrono::milliseconds(0)) {
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

// A suite run once per topology: `class LeaseLock : public TopologyTest {};`
// then INSTANTIATE_TEST_SUITE_P(, LeaseLock, ::testing::ValuesIn(
// testing::all_topologies()), topology_test_name) gives LeaseLock.X/Single,
// LeaseLock.X/Sentinel, ...
class TopologyTest : public RedisTest, public ::testing::WithParamInterface<testing::TopologyKind> {
 protected:
  void SetUp() override { start_topology(GetParam()); }
};

}  // namespace memgate::coord

namespace memgate::testing {
// How gtest prints a parameter: its name, not its bytes.
inline void PrintTo(TopologyKind kind, std::ostream* os) { *os << topology_name(kind); }
}  // namespace memgate::testing

namespace memgate::coord {

inline std::string topology_test_name(const ::testing::TestParamInfo<testing::TopologyKind>& info) {
  return testing::topology_name(info.param);
}

// Checks the lines "fence start_ns end_ns pid" that holders appended under the
// lock: fences strictly increase in append order, and no two holds overlap.
inline void expect_exclusive_history(const std::vector<std::string>& lines, size_t expected) {
  ASSERT_EQ(lines.size(), expected);
  int64_t last_fence = 0, last_end = 0;
  for (const auto& line : lines) {
    std::istringstream in(line);
    int64_t fence = 0, start = 0, end = 0, pid = 0;
    in >> fence >> start >> end >> pid;
    ASSERT_GT(fence, last_fence) << line;
    ASSERT_GE(start, last_end) << "holds overlap: " << line;
    ASSERT_GE(end, start);
    last_fence = fence;
    last_end = end;
  }
}

}  // namespace memgate::coord
