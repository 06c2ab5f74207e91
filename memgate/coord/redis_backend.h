// RedisBackend: lease locks, JSON values and fenced artifacts in Redis.
//
// Keys (for a lock or task named K):
//   K                      the lock; value = the holder's token; PX = the lease TTL
//   K:fence                the fencing counter, INCR'd in the same script that takes K;
//                          when missing (Redis lost its data) it starts at the server's
//                          TIME in microseconds, so fences keep growing (docs/design/coord.md)
//   K:done                 the done flag (JSON: fence, unix ms, instance), PX = done TTL
//   K:artifact             the artifact meta (JSON, see artifact.h), PX = done TTL
//   K:artifact:<fence>:<i> chunk i of the artifact published under <fence>
// Every value read (done flag, meta, chunks, JSON values) is bounded in a script
// before it is sent, so a hostile value is refused, never allocated.
// Completion messages are published on "memgate:done:K". In a Redis Cluster all
// of a task's keys must hash to one slot: wrap K in braces ("{init:mcp-kb}").
//
// Every operation is one script call or one pipelined batch on the shared
// Connection; the async_ forms run their callback on the connection's io thread.
// Thread-safe. The backend owns its connections.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "memgate/coord/backend.h"
#include "memgate/coord/connection.h"

namespace memgate::coord {

class RedisBackend final : public CoordBackend {
 public:
  RedisBackend(RedisSettings settings, std::string instance_id, CoordMetrics* metrics);
  ~RedisBackend() override;

  std::string_view name() const override { return "redis"; }
  Connection& connection() { return *conn_; }

  Result<TryAcquire> try_acquire(const std::string& key, std::chrono::milliseconds ttl) override;
  Result<bool> release(const Lease& lease) override;
  Result<bool> extend(const Lease& lease, std::chrono::milliseconds ttl) override;
  Result<std::optional<boost::json::value>> get_json(const std::string& key) override;
  Status set_json(const std::string& key, const boost::json::value& value, std::chrono::milliseconds ttl) override;
  Result<ArtifactRead> read_meta(const std::string& name, const std::string& version) override;
  Result<std::unique_ptr<ByteSource>> open_artifact(const std::string& name, const ArtifactMeta& meta) override;
  using CoordBackend::publish_artifact;
  Status publish_artifact(const Lease& lease, const std::string& name, const ChunkedBytes& bytes,
                          const std::string& version, std::chrono::milliseconds done_ttl,
                          const PublishInfo& info) override;
  uint64_t done_generation(const std::string& name) override;
  void wait_done(const std::string& name, uint64_t seen, std::chrono::milliseconds max_wait,
                 const std::stop_token& stop) override;

  // Non-blocking forms for callers that keep many locks in flight (benchmarks).
  void async_try_acquire(const std::string& key, std::chrono::milliseconds ttl,
                         std::function<void(Result<TryAcquire>)> cb);
  void async_release(const Lease& lease, std::function<void(Result<bool>)> cb);

 private:
  void ensure_subscriber();

  RedisSettings settings_;
  std::string instance_id_;
  CoordMetrics* metrics_;
  std::unique_ptr<Connection> conn_;

  struct DoneState;
  std::unique_ptr<DoneState> done_;
};

}  // namespace memgate::coord
