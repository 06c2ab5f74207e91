#include "memgate/coord/backend.h"

namespace memgate::coord {

Result<ArtifactRead> CoordBackend::read_artifact(const std::string& name, const std::string& version) {
  auto read = read_meta(name, version);
  if (!read.ok() || read->state != ArtifactState::kOk) return read;
  auto source = open_artifact(name, read->meta);
  if (!source.ok()) return source.status();
  auto bytes = read_all(**source, read->meta.size);
  if (!bytes.ok()) {
    if (bytes.status().code() == Code::kUnavailable || bytes.status().code() == Code::kDeadlineExceeded)
      return bytes.status();
    read->state = ArtifactState::kBad;
    read->problem = bytes.status().message();
    return read;
  }
  read->bytes = std::move(*bytes);
  return read;
}

}  // namespace memgate::coord
