// CoordBackend: the primitives a coordination backend provides (Redis or local),
// on which Coordinator builds waiting, the watchdog and fleet_once.
//
// Every call is synchronous and thread-safe. Transport failures are kUnavailable
// or kDeadlineExceeded; a lease that is no longer current makes publish return
// kAborted and release/extend return false. Not meant for use outside coord/
// except by benchmarks (RedisBackend's async calls).
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "memgate/base/status.h"
#include "memgate/coord/lease.h"

namespace memgate::coord {

struct TryAcquire {
  std::optional<Lease> lease;               // set when acquired
  std::chrono::milliseconds holder_left{0}; // otherwise: the holder's remaining TTL when known
};

enum class ArtifactState { kAbsent, kBad, kOk };

struct ArtifactRead {
  ArtifactState state = ArtifactState::kAbsent;  // kAbsent: no done flag
  std::string bytes;                             // kOk
  std::string problem;                           // kBad: why ("chunk 3 of 5 is missing")
  int64_t fence = 0;                             // the fence it was published under
};

class CoordBackend {
 public:
  virtual ~CoordBackend() = default;
  virtual std::string_view name() const = 0;

  // One attempt to take `key` for `ttl`; never waits for the holder.
  virtual Result<TryAcquire> try_acquire(const std::string& key, std::chrono::milliseconds ttl) = 0;
  // Deletes the lock if `lease` still holds it; false when it no longer did.
  virtual Result<bool> release(const Lease& lease) = 0;
  // Sets the lock's TTL to `ttl` from now if `lease` still holds it.
  virtual Result<bool> extend(const Lease& lease, std::chrono::milliseconds ttl) = 0;

  // JSON values with a TTL (0: no expiry). get: nullopt when absent.
  virtual Result<std::optional<boost::json::value>> get_json(const std::string& key) = 0;
  virtual Status set_json(const std::string& key, const boost::json::value& value,
                          std::chrono::milliseconds ttl) = 0;

  // The done flag `<name>:done` and the artifact it points at, verified.
  virtual Result<ArtifactRead> read_artifact(const std::string& name, const std::string& version) = 0;
  // Stores the artifact and sets the done flag in one step that is refused
  // (kAborted) unless `lease` still holds `name` with the current fence; announces
  // completion to waiters.
  virtual Status publish_artifact(const Lease& lease, const std::string& name, std::string_view bytes,
                                  const std::string& version, std::chrono::milliseconds done_ttl) = 0;

  // Completion messages: a counter that grows with every message for `name`
  // seen by this process; wait_done returns when it passes `seen` or after `max_wait`.
  virtual uint64_t done_generation(const std::string& name) = 0;
  virtual void wait_done(const std::string& name, uint64_t seen, std::chrono::milliseconds max_wait) = 0;
};

}  // namespace memgate::coord
