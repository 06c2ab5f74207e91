// Test support: "a Redis" in one of the shapes memgate talks to, so a suite can
// run the same tests against each (INSTANTIATE_TEST_SUITE_P over
// all_topologies(), named by topology_name()).
//
//   kSingle    one redis-server (RedisServer);            url() redis://127.0.0.1:P
//   kSentinel  master + replica + three sentinels          url() redis-sentinel://…/mymaster
//              (SentinelGroup, its small timings)
//   kCluster   three masters, no replicas (RedisCluster)   url() redis-cluster://h:p1,h:p2,h:p3
//
// A topology answers, for the tests that need them:
//   url()            the REDIS_URL a coordinator (or memgate_coord_tool) is given;
//   master_url()     redis://… of the server that takes writes now, for a plain
//                    Connection that looks at or tampers with keys (after a
//                    failover it names the promoted server); on a cluster, the
//                    first master (keys live on all three: use url() to route);
//   node_urls()      redis://… of every master (a cluster's FLUSHALL goes to each);
//   kill_data()      "Redis is down": SIGKILL every redis-server it started
//                    (sentinels stay up, with nothing to promote; every cluster
//                    node), by pid;
//   restart_empty()  start them again on the same ports with no data ("a restart
//                    that lost its data"; under Sentinel the replica is gone too, so
//                    nothing survives) and return once the master takes writes
//                    again as seen through url() (the sentinels name it; the
//                    cluster's nodes, keeping their nodes.conf, are back to
//                    cluster_state:ok with the same slots);
//   fail_over()      SIGKILL the master and wait until another server is the
//                    master (kFailedPrecondition where nothing can take over:
//                    kSingle, kCluster without replicas).
// Adding a topology: a value in TopologyKind, its name, a class here, and a line
// in all_topologies(). One thread at a time; the destructor stops every process
// it started (by pid).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::testing {

enum class TopologyKind { kSingle, kSentinel, kCluster };

// Every topology the lock-safety suites run against.
std::vector<TopologyKind> all_topologies();
// "Single", "Sentinel", "Cluster": a test-name suffix.
std::string topology_name(TopologyKind kind);

class RedisTopology {
 public:
  static Result<std::unique_ptr<RedisTopology>> start(TopologyKind kind);
  virtual ~RedisTopology() = default;

  virtual TopologyKind kind() const = 0;
  virtual std::string url() const = 0;
  virtual std::string master_url() = 0;
  virtual std::vector<std::string> node_urls() { return {master_url()}; }
  // The CA a TLS client must trust; empty (none of these use TLS).
  virtual std::string ca_file() const { return ""; }
  virtual void kill_data() = 0;
  virtual Status restart_empty() = 0;
  virtual Status fail_over(std::chrono::milliseconds timeout) = 0;
};

}  // namespace memgate::testing
