// Test support: a three-master Redis Cluster on free loopback ports.
//
// RedisCluster::start() runs `redis-server --cluster-enabled yes` three times
// (RedisServer, each in its own temp dir with its own nodes.conf), joins them with
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and returns
// once every node reports cluster_state:ok and agrees on the slot map (bounded:
// 30 s). Servers are stopped (SIGKILL) by their pids when the cluster is
// destroyed; nothing else is signalled.
//
// Moving slots by hand, as an operator's resharding does:
//   begin_migration(slot, from, to)   CLUSTER SETSLOT slot IMPORTING on `to`,
//                                     MIGRATING on `from`
//   migrate_keys(slot, from, to, keys)  MIGRATE of those keys (all when empty)
//   finish_migration(slot, to)        CLUSTER SETSLOT slot NODE <to> on every node
// cli() runs redis-cli against one node and returns its output.
// One thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "memgate/base/status.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {

struct ClusterOptions {
  std::vector<std::string> extra_args;  // more redis-server arguments for every node
};

class RedisCluster {
 public:
  static Result<std::unique_ptr<RedisCluster>> start(ClusterOptions options = {});
  ~RedisCluster();

  // redis-cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3 (or only some seeds).
  std::string url() const;
  std::string url_with_seeds(const std::vector<size_t>& nodes) const;
  size_t size() const { return nodes_.size(); }
  RedisServer& node(size_t i) { return *nodes_.at(i); }
  uint16_t port(size_t i) const { return nodes_.at(i)->port(); }
  // The node (index) that owns `slot` according to node 0 (CLUSTER SLOTS).
  int owner_of(uint16_t slot);
  std::string node_id(size_t i);

  // `redis-cli -p port args...`: its stdout (and stderr).
  std::string cli(size_t node, const std::vector<std::string>& args);

  Status begin_migration(uint16_t slot, size_t from, size_t to);
  Status migrate_keys(uint16_t slot, size_t from, size_t to, std::vector<std::string> keys = {});
  Status finish_migration(uint16_t slot, size_t to);
  // All three steps, all keys.
  Status move_slot(uint16_t slot, size_t from, size_t to);

  // True once every node says cluster_state:ok and node 0's slot map is the same as each other's.
  bool healthy();

 private:
  RedisCluster() = default;

  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::vector<std::string> ids_;
  std::string dir_;
  int cli_runs_ = 0;
};

}  // namespace memgate::testing
