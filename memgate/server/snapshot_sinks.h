// Where the memory guard's alert snapshots go beyond the process: a Redis stream
// capped in length (memgate:memory:snapshots by default), readable across the
// fleet. Thread-safe. Without Redis (local coordination, or Redis down) writes
// are skipped with a log line and history() answers from nothing: the caller
// falls back to the guard's own ring buffer.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <vector>

#include "memgate/coord/coordinator.h"
#include "memgate/guard/memory_guard.h"

namespace memgate::server {

class RedisStreamSink final : public guard::SnapshotSink {
 public:
  RedisStreamSink(coord::Coordinator& coordinator, std::string stream, size_t max_length)
      : coordinator_(coordinator), stream_(std::move(stream)), max_length_(max_length) {}
  std::string_view name() const override { return "redis-stream"; }
  void write(const boost::json::object& snapshot) override;

  // The newest `count` snapshots of the whole fleet, newest first; an error when
  // Redis is not in use or did not answer.
  Result<std::vector<boost::json::object>> history(size_t count);

 private:
  coord::Coordinator& coordinator_;
  std::string stream_;
  size_t max_length_;
};

}  // namespace memgate::server
