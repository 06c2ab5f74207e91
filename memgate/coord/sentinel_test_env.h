// A coordinator test against a Sentinel-managed master (a master, a replica
// and three sentinels: tests/support/redis_sentinel.h), shared by the
// resolver's tests (sentinel_test.cc) and the fence tests (failover_test.cc).
#pragma once

#include "memgate/coord/coord_test_env.h"
#include "tests/support/redis_sentinel.h"

namespace memgate::coord {

class SentinelFixture : public RedisTest {
 protected:
  void start_group(testing::SentinelOptions o = {}) {
    auto g = testing::SentinelGroup::start(o);
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    group_ = std::move(*g);
  }
  // A coordinator that finds the master through the group's sentinels.
  CoordinatorOptions sentinel_options() {
    CoordinatorOptions o;
    o.redis_url = group_->url();
    o.connect_timeout = std::chrono::milliseconds(1000);
    o.command_timeout = std::chrono::milliseconds(1000);
    o.local_dir = dir_ + "/local";
    o.metrics = &metrics_;
    o.legacy_keys_for = std::chrono::milliseconds(0);
    return o;
  }

  std::unique_ptr<testing::SentinelGroup> group_;
};

}  // namespace memgate::coord
