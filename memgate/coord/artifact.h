// Artifact metadata: how a published artifact is described and checked.
//
// An artifact is stored as `chunks` pieces of at most chunk_size bytes, plus a
// small JSON meta record: format (kArtifactFormat), the caller's version string,
// the fencing number it was published under, the total size, the chunk count
// and a SHA-256 of the bytes; and, for people and for memory predictions, who
// built it, from what inputs, and the peak the build measured. A reader rebuilds
// instead of loading when any of the checked fields do not match. Everything in
// a meta record comes from outside (any fleet member can write Redis), so
// from_json bounds sizes and counts before anyone allocates by them. Pure
// functions and a value type; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/chunked_bytes.h"
#include "memgate/base/status.h"

namespace memgate::coord {

inline constexpr int kArtifactFormat = 1;

struct ArtifactMeta {
  int format = kArtifactFormat;
  std::string version;
  int64_t fence = 0;
  uint64_t size = 0;
  uint64_t chunks = 0;
  std::string sha256;  // hex
  // Informational (not checked): the instance that built it, its input
  // fingerprint, the build's measured peak (bytes of RSS above the start of the
  // build; 0 unknown) and when it was published.
  std::string builder;
  std::string inputs;
  uint64_t build_peak = 0;
  int64_t built_at_unix_ms = 0;
  // Not part of the record: set by RedisBackend::read_meta when the meta was
  // found under the names before hash tags (key_layout.h), so its chunks are
  // read from there too.
  bool legacy_keys = false;

  std::string to_json() const;
  // kInvalidArgument when the text is longer than kMaxMetaBytes or is not a meta record, or when its size is
  // above `max_size` or its chunk count cannot describe `size` bytes.
  static Result<ArtifactMeta> from_json(std::string_view text, uint64_t max_size = kMaxArtifactBytes);

  static constexpr uint64_t kMaxArtifactBytes = 4ull << 30;
  // The longest meta record (and done flag) a reader accepts.
  static constexpr size_t kMaxMetaBytes = 64 * 1024;
};

// What a publisher adds to the meta record besides the checked fields.
struct PublishInfo {
  std::string builder;
  std::string inputs;
  uint64_t build_peak = 0;
};

std::string sha256_hex(std::string_view bytes);

// SHA-256 over bytes given in pieces. Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  std::string hex();  // ends the digest

 private:
  void* ctx_;
};

// Meta for `bytes` split into chunks of chunk_size (at least one chunk).
ArtifactMeta describe_artifact(std::string_view bytes, const std::string& version, int64_t fence,
                               size_t chunk_size);
// The same for bytes held in pieces: every piece is cut into chunks of at most
// chunk_size (0: one chunk a piece), so chunks never span pieces; `chunks_out`
// receives the chunk views in order.
ArtifactMeta describe_artifact(const ChunkedBytes& bytes, const std::string& version, int64_t fence,
                               size_t chunk_size, std::vector<std::string_view>* chunks_out);

// Empty when `bytes` matches `meta` and `version`; otherwise why not.
std::string check_artifact(const ArtifactMeta& meta, std::string_view bytes, const std::string& version);

}  // namespace memgate::coord
