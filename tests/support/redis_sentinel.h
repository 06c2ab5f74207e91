// Test support: a Sentinel-managed Redis on free loopback ports.
//
// SentinelGroup::start() runs a master and a replica (RedisServer, the replica
// with --replicaof) and three `redis-sentinel` processes that monitor the
// master under `master_name` with quorum 2 and the small timings of
// SentinelOptions, then waits until every sentinel sees the replica and the two
// other sentinels, so a failover can happen. Servers and sentinels are stopped
// (SIGKILL) by their pids when the group is destroyed; nothing else is signalled.
// redis_cli() runs `redis-cli` against one port and returns its output.
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

struct SentinelOptions {
  std::string master_name = "mymaster";
  int down_after_ms = 400;       // sentinel down-after-milliseconds
  int failover_timeout_ms = 2000;  // sentinel failover-timeout
  std::string sentinel_password;   // requirepass of the sentinels (and sentinel-pass among them)
};

class SentinelGroup {
 public:
  static Result<std::unique_ptr<SentinelGroup>> start(SentinelOptions options = {});
  ~SentinelGroup();

  // redis-sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/<master_name>
  std::string url() const;
  // The servers as started: the first master and its replica (roles change with a failover).
  RedisServer& first_master() { return *master_; }
  RedisServer& first_replica() { return *replica_; }
  uint16_t sentinel_port(size_t i) const { return sentinel_ports_.at(i); }

  // The port every sentinel names as the master now (0 when they disagree or do not answer).
  uint16_t agreed_master_port();
  // Waits until every sentinel names `port` as the master.
  bool wait_master_is(uint16_t port, std::chrono::milliseconds timeout);

  // `redis-cli -p port [-a password] args...`: its stdout (and stderr).
  std::string redis_cli(uint16_t port, const std::vector<std::string>& args, const std::string& password = "");

 private:
  SentinelGroup() = default;
  Status start_sentinel(size_t i);

  SentinelOptions options_;
  std::string dir_;
  std::unique_ptr<RedisServer> master_, replica_;
  std::vector<uint16_t> sentinel_ports_;
  std::vector<std::unique_ptr<Subprocess>> sentinels_;
  int cli_runs_ = 0;
};

}  // namespace memgate::testing
