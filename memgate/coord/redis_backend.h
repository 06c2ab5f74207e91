// RedisBackend: lease locks, JSON values and fenced artifacts in Redis.
//
// Keys (for a lock or task named K; all share the hash tag {K}, key_layout.h):
//   {K}                      the lock; value = the holder's token; PX = the lease TTL
//   {K}:fence                the fencing counter, INCR'd in the same script that takes
//                            the lock; when missing (Redis lost its data) it starts at the
//                            server's TIME in microseconds, so fences keep growing
//   {K}:done                 the done flag (JSON: fence, unix ms, instance), PX = done TTL
//   {K}:artifact             the artifact meta (JSON, see artifact.h), PX = done TTL
//   {K}:artifact:<fence>:<i> chunk i of the artifact published under <fence>
// For settings.legacy_keys_for after construction (the migration window) an
// absent artifact is also looked for under the names before hash tags (K:done,
// K:artifact, ...), and a lock also takes K itself; only the tagged names are
// written. Every value read (done flag, meta, chunks, JSON values) is bounded in
// a script before it is sent, so a hostile value is refused, never allocated.
// Completion messages are published on "memgate:done:K" (on a cluster, below, "memgate:done:{K}").
//
// Failover (Sentinel, settings.sentinel set): every operation here is idempotent
// (reads; release and extend compare the token; publish compares token and
// fence and writes the same values; an acquire resent with the same token finds
// the lock already its own), so one that fails with kUnavailable (connection
// lost, or READONLY from a demoted master) is sent again, up to twice, once the
// connection to the new master is up (within connect_timeout each).
//
// Redis Cluster (settings.cluster_seeds set): commands go through a
// ClusterRouter (cluster_router.h) instead of one Connection, each to the master
// of its key's slot; the same operations are retried after a lost node; the
// completion channel is "memgate:done:{K}" (the task's hash tag), published with
// SPUBLISH on Redis 7 and heard by a ClusterSubscriber (cluster_subscriber.h);
// the migration window is off (nothing ran under the untagged names on a cluster).
//
// Replicated writes (settings.wait_replicas = N > 0, REDIS_WAIT_REPLICAS): after
// an acquire that won and after a fenced publish, WAIT N (command_timeout / 2).
// Fewer acknowledgements: the acquire is undone (released) and fails
// kUnavailable; the publish fails kUnavailable ("not published": the caller
// does not count on it; readers of this master may still load it, checked as
// always). A master with no replica at all is logged once.
//
// Every operation is one script call or one pipelined batch on the shared
// Connection; the async_ forms run their callback on the connection's io thread.
// Thread-safe. The backend owns its connections.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "memgate/coord/backend.h"
#include "memgate/coord/connection.h"
#include "memgate/coord/key_layout.h"
#include "memgate/coord/redis_link.h"

namespace memgate::coord {

class ClusterRouter;
class SentinelResolver;

class RedisBackend final : public CoordBackend {
 public:
  RedisBackend(RedisSettings settings, std::string instance_id, CoordMetrics* metrics);
  ~RedisBackend() override;

  std::string_view name() const override { return "redis"; }
  // Where commands go: one connection, or the cluster's router.
  RedisLink& connection() { return *link_; }
  // The router with Redis Cluster (settings.cluster_seeds), else nullptr.
  ClusterRouter* cluster() { return cluster_; }

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
  // Completion channels counted: only the names this process asked about.
  size_t tracked_done_channels();
  void wait_done(const std::string& name, uint64_t seen, std::chrono::milliseconds max_wait,
                 const std::stop_token& stop) override;

  // Non-blocking forms for callers that keep many locks in flight (benchmarks).
  void async_try_acquire(const std::string& key, std::chrono::milliseconds ttl,
                         std::function<void(Result<TryAcquire>)> cb);
  void async_release(const Lease& lease, std::function<void(Result<bool>)> cb);

 private:
  void ensure_subscriber();
  // With Sentinel: where each connection goes (asked before every attempt).
  EndpointSource endpoint_source();
  bool in_legacy_window() const;
  Result<ArtifactRead> read_meta_at(const TaskKeys& keys, const std::string& version);

  // Runs f, and again (at most kFailoverRetries times) while it fails with
  // kUnavailable and this backend follows a Sentinel-managed master.
  static constexpr int kFailoverRetries = 2;
  template <class F>
  auto retrying(F&& f) -> decltype(f()) {
    auto r = f();
    for (int i = 0; i < kFailoverRetries && follows_failover() && unavailable(r); ++i) {
      if (!link_->wait_connected(settings_.connect_timeout).ok()) return r;
      metrics_->failover_retries.fetch_add(1);
      r = f();
    }
    return r;
  }
  bool follows_failover() const;
  // WAIT for settings_.wait_replicas replicas (on the node holding `key`); OK at once when that is 0.
  Status wait_replicated(const std::string& what, const std::string& key);
  // The completion channel of task `name`, and the command that publishes on it.
  std::string done_channel(const std::string& name) const;
  const char* publish_command() const;
  std::atomic<bool> warned_no_replicas_{false};
  static bool unavailable(const Status& s) { return s.code() == Code::kUnavailable; }
  template <class T>
  static bool unavailable(const Result<T>& r) {
    return !r.ok() && r.status().code() == Code::kUnavailable;
  }

  RedisSettings settings_;
  std::string instance_id_;
  CoordMetrics* metrics_;
  std::shared_ptr<SentinelResolver> resolver_;  // set with Sentinel (settings.sentinels)
  std::unique_ptr<RedisLink> link_;
  ClusterRouter* cluster_ = nullptr;  // link_ itself, with Redis Cluster

  struct DoneState;
  std::unique_ptr<DoneState> done_;
  std::chrono::steady_clock::time_point legacy_until_;
};

}  // namespace memgate::coord
