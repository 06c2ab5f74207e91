// Coordinator: fleet-wide locks and run-once work, on Redis or, without it, locally.
//
// The one object the runtime holds for coordination. It picks a backend at
// creation: Redis when REDIS_URL is set and answers within connect_timeout,
// otherwise the host-local backend (flock files), with one warning logged and
// metrics.backend = 0. When a URL is set but Redis did not answer, a background
// thread switches to Redis as soon as it answers. Leases are bound to the backend
// that issued them: a lease taken locally before the switch stays a local lease
// (its release and extend go to the local backend), so until it is released only
// instances on this host are excluded by it; new acquisitions go to Redis. Once on
// Redis the coordinator never falls back: calls fail with kUnavailable while Redis
// is down (falling back would let two hosts build at once) and work again when the
// connection comes back by itself.
//
// Thread-safe; blocking calls (do not call them from a Redis callback).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <stop_token>
#include <string_view>
#include <thread>

#include <boost/json/value.hpp>

#include "memgate/base/status.h"
#include "memgate/coord/activity.h"
#include "memgate/coord/backend.h"
#include "memgate/coord/coord_metrics.h"
#include "memgate/coord/lease.h"
#include "memgate/coord/redis_settings.h"

namespace memgate::coord {

class RedisBackend;
class LocalBackend;

using namespace std::chrono_literals;

// The run-once tasks of the original guide: lock key and TTL, done flag and TTL.
struct FleetTaskSpec {
  std::string_view lock_key;
  std::chrono::milliseconds lock_ttl;
  std::string_view done_key;  // always lock_key + ":done"
  std::chrono::milliseconds done_ttl;
};
inline constexpr FleetTaskSpec kAiRoutesInit{"init:ai-routes", 15s, "init:ai-routes:done", 5min};
inline constexpr FleetTaskSpec kMcpKbInit{"init:mcp-kb", 20s, "init:mcp-kb:done", 10min};

struct CoordinatorOptions {
  std::string redis_url;  // secret; empty: local coordination
  std::string sentinel_password;  // REDIS_SENTINEL_PASSWORD (secret), for redis-sentinel:// URLs
  bool sentinel_watch = true;     // follow +switch-master hints (tests turn it off)
  int wait_replicas = 0;          // REDIS_WAIT_REPLICAS (RedisBackend: replicated acquire and publish)
  std::string tls_ca;     // REDIS_TLS_CA
  bool tls_insecure = false;  // REDIS_TLS_INSECURE (development only)
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{2000};
  size_t chunk_size = 512 * 1024;
  uint64_t max_artifact_bytes = 4ull << 30;  // ARTIFACT_MAX_SIZE: a meta declaring more is refused
  std::string local_dir = "/tmp/memgate-coord";  // lock and artifact files without Redis
  std::string instance_id;                         // recorded in done flags
  bool background_switch = true;  // switch from local to Redis once it answers
  // The migration window: how long after start artifacts are also read from, and
  // locks also taken under, the key names before hash tags (RedisBackend).
  std::chrono::milliseconds legacy_keys_for{10min};
  CoordMetrics* metrics = &coord_metrics();
};

struct FleetOnceOptions {
  std::string artifact_version = "1";         // a different version means rebuild
  std::chrono::milliseconds wait_bound{5min}; // how long a waiter waits in all
  std::chrono::milliseconds poll{0};          // slow poll; 0: lock_ttl / 4 within [50ms, 1s]
};

// build: does the heavy work, leaves this instance ready, returns the artifact
// bytes others load; it should stop early (any error) when `cancel` is raised.
using BuildFn = std::function<Result<std::string>(const CancelSignal& cancel)>;
// load: makes this instance ready from an artifact; an error means "rebuild".
using LoadFn = std::function<Status(std::string_view artifact)>;
// with_lock's work.
using LockedFn = std::function<Status(const Lease& lease, const CancelSignal& cancel)>;

// One module's fleet step, in pieces, with the caller's memory decisions.
struct FleetStep {
  // The heavy work; returns the artifact and fills `info` (the measured build
  // peak). It does not make this instance ready: fleet_once publishes the
  // artifact, releases the lock, then hands the same pieces to `load`.
  std::function<Result<ChunkedBytes>(const CancelSignal& cancel, PublishInfo* info)> build;
  // Becomes ready from a stream. `fresh`: the bytes were built here (an error
  // then fails the step); otherwise an error means "rebuild".
  std::function<Status(ByteSource& bytes, const ArtifactMeta& meta, bool fresh)> load;
  // Asked before a published artifact is loaded; an error (kResourceExhausted:
  // it does not fit) ends the step with that error instead.
  std::function<Status(const ArtifactMeta& meta)> may_load;
  // Asked before contending for the lock. kUnavailable means "do not build
  // here yet": wait up to peer_wait for a peer's artifact, then end with
  // kResourceExhausted and its message. Any other error ends the step at once.
  std::function<Status()> may_build;
  std::chrono::milliseconds peer_wait{0};
  // "waiting_for_lock", "waiting_for_peer", "building", "loading_artifact".
  std::function<void(std::string_view state)> on_state;
  // Raised at shutdown: every wait of the step wakes (within 50 ms) and the
  // step ends with kCancelled before contending, waiting or loading again. A
  // build or load under way is the module's to stop (it has the same token).
  std::stop_token stop;
};

// Peaks and durations the fleet measured for one artifact name (the largest
// of the recent ones; 0 / nullopt when none): what a build and a load of it
// cost elsewhere. A duration read back is at most kMaxStepDuration.
struct FleetPeaks {
  uint64_t build = 0;
  uint64_t load = 0;
  int build_samples = 0;
  int load_samples = 0;
  std::optional<std::chrono::milliseconds> build_took{};
  std::optional<std::chrono::milliseconds> load_took{};
};
inline constexpr std::chrono::milliseconds kMaxStepDuration = std::chrono::hours(24);

class Coordinator {
 public:
  // Fails (kInvalidArgument, naming REDIS_URL, never the password) on a malformed
  // URL, and (kFailedPrecondition, naming the dir) when options.local_dir is not
  // a private directory of ours (see LocalBackend::open), with or without Redis.
  // Otherwise returns a working coordinator, local if Redis did not answer.
  static Result<std::unique_ptr<Coordinator>> create(CoordinatorOptions options);
  ~Coordinator();

  // "redis" or "local": the backend new calls go to.
  std::string_view backend() const;
  // Redis configured: waits up to `timeout` for the connection (switching to Redis
  // if still local); kUnavailable with the last error if it does not come. Local
  // only (no REDIS_URL): OK at once.
  Status ensure_connected(std::chrono::milliseconds timeout = 2s);

  // Takes `key` for `ttl`, retrying with jittered backoff until `wait` runs out
  // (kDeadlineExceeded "... is held by another holder"); wait = 0 tries once.
  Result<Lease> acquire(const std::string& key, std::chrono::milliseconds ttl, std::chrono::milliseconds wait);
  // Deletes the lock if this lease still holds it; false when it did not any more.
  Result<bool> release(const Lease& lease);
  // Extends the lease to `ttl` from now if it still holds the lock.
  Result<bool> extend(const Lease& lease, std::chrono::milliseconds ttl);

  // acquire, run fn while a watchdog extends the lease every ttl/3, release. When
  // an extension fails or finds the lease lost, `cancel` is raised, lost_leases
  // counts it, and the call returns kAborted (unless fn already failed).
  Status with_lock(const std::string& key, std::chrono::milliseconds ttl, const LockedFn& fn,
                   std::optional<std::chrono::milliseconds> wait = std::nullopt);

  // Runs `build` once per fleet; see the design note in coordinator.cc. Returns how
  // this instance became ready. A lease lost during the build means read again
  // and, unless a peer published, build again (3 builds at most, then kAborted).
  Result<FleetOutcome> fleet_once(const std::string& name, std::chrono::milliseconds lock_ttl,
                                  std::chrono::milliseconds done_ttl, const BuildFn& build, const LoadFn& load,
                                  const FleetOnceOptions& options = {});
  Result<FleetOutcome> fleet_once(const FleetTaskSpec& task, const BuildFn& build, const LoadFn& load,
                                  const FleetOnceOptions& options = {}) {
    return fleet_once(std::string(task.lock_key), task.lock_ttl, task.done_ttl, build, load, options);
  }

  // The step with memory decisions and streamed artifacts; see coordinator.cc.
  Result<FleetOutcome> fleet_once(const std::string& name, std::chrono::milliseconds lock_ttl,
                                  std::chrono::milliseconds done_ttl, const FleetStep& step,
                                  const FleetOnceOptions& options = {});

  // Measured peaks and durations, kept at "{<name>}:peaks" (key_layout.h) for done_ttl (the 8
  // newest records of each kind; a record holds the bytes, the duration, or both: bytes 0 with a
  // duration is "no peak measured"). record_peak never fails the caller: a Redis error is logged.
  // fleet_peaks reads the 8 newest of each kind and ignores (with a warning) a duration that is
  // not a whole number of milliseconds in [0, kMaxStepDuration]; records without one are unknown.
  void record_peak(const std::string& name, bool build, uint64_t bytes, std::chrono::milliseconds ttl,
                   std::optional<std::chrono::milliseconds> took = std::nullopt);
  FleetPeaks fleet_peaks(const std::string& name);

  // The fenced publish and the verified read fleet_once uses, for callers that
  // manage the lease themselves: publish is kAborted unless `lease` is current.
  Status publish_artifact(const Lease& lease, const std::string& name, std::string_view bytes,
                          const std::string& version, std::chrono::milliseconds done_ttl);
  Result<ArtifactRead> read_artifact(const std::string& name, const std::string& version);
  Result<ArtifactRead> read_meta(const std::string& name, const std::string& version);

  Result<std::optional<boost::json::value>> get_json(const std::string& key);
  Status set_json(const std::string& key, const boost::json::value& value, std::chrono::milliseconds ttl);

  // The Redis backend when configured (also while still local), else nullptr.
  RedisBackend* redis();
  CoordMetrics& metrics() { return *options_.metrics; }
  // The leases this process took lately (with their fences) and its recent
  // fleet_once outcomes, for /debug/coord.
  const CoordActivity& activity() const { return activity_; }

 private:
  explicit Coordinator(CoordinatorOptions options);
  std::shared_ptr<CoordBackend> active() const;
  CoordBackend* backend_of(const Lease& lease) const;
  void switch_to_redis();
  Status run_with_watchdog(CoordBackend& backend, const Lease& lease, const LockedFn& fn);
  Result<FleetOutcome> run_fleet_once(const std::string& name, std::chrono::milliseconds lock_ttl,
                                      std::chrono::milliseconds done_ttl, const FleetStep& step,
                                      const FleetOnceOptions& options);

  CoordinatorOptions options_;
  std::shared_ptr<RedisBackend> redis_;
  std::shared_ptr<LocalBackend> local_;
  mutable std::mutex mu_;
  std::shared_ptr<CoordBackend> active_;
  std::atomic<bool> stop_{false};
  std::thread switcher_;
  CoordActivity activity_;
};

}  // namespace memgate::coord
