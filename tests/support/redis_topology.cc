// The topologies over the harnesses that start the real processes: RedisServer
// for a single server, SentinelGroup for the Sentinel-managed pair, RedisCluster
// for three cluster masters.
#include "tests/support/redis_topology.h"

#include <chrono>

#include "tests/support/redis_cluster.h"
#include "tests/support/redis_sentinel.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;

std::string plain_url(uint16_t port) { return "redis://127.0.0.1:" + std::to_string(port); }

class SingleTopology : public RedisTopology {
 public:
  explicit SingleTopology(std::unique_ptr<RedisServer> server) : server_(std::move(server)) {}
  TopologyKind kind() const override { return TopologyKind::kSingle; }
  std::string url() const override { return server_->url(); }
  std::string master_url() override { return server_->url(); }
  void kill_data() override { server_->kill(); }
  Status restart_empty() override { return server_->restart(); }
  Status fail_over(std::chrono::milliseconds) override {
    return FailedPrecondition("a single redis-server has nothing to fail over to");
  }

 private:
  std::unique_ptr<RedisServer> server_;
};

class SentinelTopology : public RedisTopology {
 public:
  explicit SentinelTopology(std::unique_ptr<SentinelGroup> group) : group_(std::move(group)) {}
  TopologyKind kind() const override { return TopologyKind::kSentinel; }
  std::string url() const override { return group_->url(); }
  std::string master_url() override {
    uint16_t port = group_->agreed_master_port();
    return plain_url(port ? port : group_->first_master().port());
  }
  void kill_data() override {
    group_->first_replica().kill();
    group_->first_master().kill();
  }
  // The master first, empty, then the replica syncing from it; the sentinels
  // never saw a failover (nothing was promotable), so they name the same port.
  Status restart_empty() override {
    uint16_t master = group_->first_master().port();
    if (Status st = group_->first_master().restart(); !st.ok()) return st;
    if (Status st = group_->first_replica().restart(); !st.ok()) return st;
    if (!group_->wait_master_is(master, 30s)) return Unavailable("the sentinels do not name the restarted master");
    bool linked = wait_until(
        [&] {
          return group_->redis_cli(group_->first_replica().port(), {"INFO", "replication"})
                     .find("master_link_status:up") != std::string::npos;
        },
        10s);
    return linked ? Status::Ok() : Unavailable("the restarted replica did not sync with the master");
  }
  Status fail_over(std::chrono::milliseconds timeout) override {
    uint16_t old_master = group_->agreed_master_port();
    if (old_master == 0) return Unavailable("the sentinels do not agree on a master");
    RedisServer& dying = old_master == group_->first_master().port() ? group_->first_master() : group_->first_replica();
    RedisServer& heir = &dying == &group_->first_master() ? group_->first_replica() : group_->first_master();
    dying.kill();
    if (!group_->wait_master_is(heir.port(), timeout)) return Unavailable("the sentinels did not promote the replica");
    return Status::Ok();
  }

 private:
  std::unique_ptr<SentinelGroup> group_;
};

class ClusterTopology : public RedisTopology {
 public:
  explicit ClusterTopology(std::unique_ptr<RedisCluster> cluster) : cluster_(std::move(cluster)) {}
  TopologyKind kind() const override { return TopologyKind::kCluster; }
  std::string url() const override { return cluster_->url(); }
  std::string master_url() override { return plain_url(cluster_->port(0)); }
  std::vector<std::string> node_urls() override {
    std::vector<std::string> out;
    for (size_t i = 0; i < cluster_->size(); ++i) out.push_back(plain_url(cluster_->port(i)));
    return out;
  }
  void kill_data() override {
    for (size_t i = 0; i < cluster_->size(); ++i) cluster_->node(i).kill();
  }
  // Each node comes back on its port with its nodes.conf (same id, same
  // slots) and no data; the cluster is whole again once all agree.
  Status restart_empty() override {
    for (size_t i = 0; i < cluster_->size(); ++i)
      if (Status st = cluster_->node(i).restart(); !st.ok()) return st;
    if (!wait_until([&] { return cluster_->healthy(); }, 30s))
      return Unavailable("the restarted cluster did not reach cluster_state:ok");
    return Status::Ok();
  }
  Status fail_over(std::chrono::milliseconds) override {
    return FailedPrecondition("a cluster without replicas has nothing to fail over to");
  }

 private:
  std::unique_ptr<RedisCluster> cluster_;
};

}  // namespace

std::vector<TopologyKind> all_topologies() {
  return {TopologyKind::kSingle, TopologyKind::kSentinel, TopologyKind::kCluster};
}

std::string topology_name(TopologyKind kind) {
  switch (kind) {
    case TopologyKind::kSingle:
      return "Single";
    case TopologyKind::kSentinel:
      return "Sentinel";
    case TopologyKind::kCluster:
      return "Cluster";
  }
  return "Unknown";
}

Result<std::unique_ptr<RedisTopology>> RedisTopology::start(TopologyKind kind) {
  switch (kind) {
    case TopologyKind::kSingle: {
      auto s = RedisServer::start();
      if (!s.ok()) return s.status();
      return std::unique_ptr<RedisTopology>(new SingleTopology(std::move(*s)));
    }
    case TopologyKind::kSentinel: {
      auto g = SentinelGroup::start();
      if (!g.ok()) return g.status();
      return std::unique_ptr<RedisTopology>(new SentinelTopology(std::move(*g)));
    }
    case TopologyKind::kCluster: {
      auto c = RedisCluster::start();
      if (!c.ok()) return c.status();
      return std::unique_ptr<RedisTopology>(new ClusterTopology(std::move(*c)));
    }
  }
  return InvalidArgument("unknown topology");
}

}  // namespace memgate::testing
