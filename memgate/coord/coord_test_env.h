// Test fixture for coord's integration tests: a real redis-server per test, a
// scratch directory, coordinators with test-sized timeouts, and the path of
// memgate_coord_tool for multi-process tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "memgate/coord/connection.h"
#include "memgate/coord/coordinator.h"
#include "tests/support/redis_server.h"

namespace memgate::coord {

class RedisTest : public ::testing::Test {
 protected:
  void SetUp() override { start_redis({}); }
  void TearDown() override {
    raw_.reset();
    server_.reset();
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

  std::string url() const { return server_->url(); }

  CoordinatorOptions options() {
    CoordinatorOptions o;
    o.redis_url = url();
    o.tls_ca = server_->ca_file();
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

  // A plain connection for looking at (and tampering with) keys.
  Connection& raw() {
    if (!raw_) {
      auto s = parse_redis_url(url());
      EXPECT_TRUE(s.ok());
      s->tls_ca = server_->ca_file();
      raw_ = Connection::create(*s, &raw_metrics_, false);
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
  std::unique_ptr<Connection> raw_;
  std::string dir_;
};

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
