// Artifact metadata: how a published artifact is described and checked.
//
// An artifact is stored as `chunks` pieces of at most chunk_size bytes, plus a
// small JSON meta record: format (kArtifactFormat), the caller's version string,
// the fencing number it was published under, the total size, the chunk count
// and a SHA-256 of the bytes. A reader rebuilds instead of loading when any of
// these do not match. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

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

  std::string to_json() const;
  static Result<ArtifactMeta> from_json(std::string_view text);
};

std::string sha256_hex(std::string_view bytes);

// Meta for `bytes` split into chunks of chunk_size (at least one chunk).
ArtifactMeta describe_artifact(std::string_view bytes, const std::string& version, int64_t fence,
                               size_t chunk_size);

// Empty when `bytes` matches `meta` and `version`; otherwise why not.
std::string check_artifact(const ArtifactMeta& meta, std::string_view bytes, const std::string& version);

}  // namespace memgate::coord
