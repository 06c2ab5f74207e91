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
#include <stop_token>
#include <string>
#include <string_view>

#include <memory>
#include <vector>

#include "memgate/base/chunked_bytes.h"
#include "memgate/base/status.h"
#include "memgate/coord/artifact.h"
#include "memgate/coord/lease.h"

namespace memgate::coord {

struct TryAcquire {
  std::optional<Lease> lease;               // set when acquired
  std::chrono::milliseconds holder_left{0}; // otherwise: the holder's remaining TTL when known
};

enum class ArtifactState { kAbsent, kBad, kOk };

struct ArtifactRead {
  ArtifactState state = ArtifactState::kAbsent;  // kAbsent: no done flag
  std::string bytes;                             // kOk, from read_artifact only
  std::string problem;                           // kBad: why ("chunk 3 of 5 is missing")
  int64_t fence = 0;                             // the fence it was published under
  ArtifactMeta meta;                             // kOk (and kBad when it parsed)
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

  // JSON values with a TTL (0: no expiry). get: nullopt when absent;
  // kInvalidArgument (naming the key) when the stored value is not JSON or is
  // longer than kMaxJsonValueBytes, which is refused before it is read.
  static constexpr size_t kMaxJsonValueBytes = 1 << 20;
  virtual Result<std::optional<boost::json::value>> get_json(const std::string& key) = 0;
  virtual Status set_json(const std::string& key, const boost::json::value& value,
                          std::chrono::milliseconds ttl) = 0;

  // The done flag `<name>:done` and the meta of the artifact it points at,
  // checked (format, version, bounded size and chunk count) but without the
  // bytes: kOk says a stream may be opened, not that the bytes are good.
  virtual Result<ArtifactRead> read_meta(const std::string& name, const std::string& version) = 0;
  // Streams the bytes `meta` (from read_meta) describes, a chunk at a time; the
  // stream verifies sizes as it goes and the SHA-256 at its end, so its last
  // next() is the verdict (kInvalidArgument: a chunk is missing or the bytes do
  // not match). The source may outlive neither the backend nor a minute.
  virtual Result<std::unique_ptr<ByteSource>> open_artifact(const std::string& name, const ArtifactMeta& meta) = 0;
  // read_meta, then the whole artifact into `bytes`, verified (kBad on a mismatch).
  Result<ArtifactRead> read_artifact(const std::string& name, const std::string& version);

  // Stores the artifact and sets the done flag in one step that is refused
  // (kAborted) unless `lease` still holds `name` with the current fence; announces
  // completion to waiters.
  virtual Status publish_artifact(const Lease& lease, const std::string& name, const ChunkedBytes& bytes,
                                  const std::string& version, std::chrono::milliseconds done_ttl,
                                  const PublishInfo& info) = 0;
  Status publish_artifact(const Lease& lease, const std::string& name, std::string_view bytes,
                          const std::string& version, std::chrono::milliseconds done_ttl) {
    return publish_artifact(lease, name, ChunkedBytes::copy_of(bytes), version, done_ttl, PublishInfo{});
  }

  // Completion messages: a counter that grows with every message for `name`
  // seen by this process; wait_done returns when it passes `seen`, after
  // `max_wait`, or (within 50 ms) once `stop` is raised.
  virtual uint64_t done_generation(const std::string& name) = 0;
  virtual void wait_done(const std::string& name, uint64_t seen, std::chrono::milliseconds max_wait,
                         const std::stop_token& stop) = 0;
};

}  // namespace memgate::coord
