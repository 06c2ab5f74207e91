#include "memgate/coord/backend.h"

namespace memgate::coord {

Result<ArtifactRead> CoordBackend::read_artifact(const std::string& name, const std::string& version) {
  auto read = read_meta(name, version);
  if (!read.ok() || read->state != ArtifactState::kOk) return read;
  // Only a transport failure is an error; anything the stored bytes do is kBad.
  auto bad = [&](const Status& st) -> Result<ArtifactRead> {
    if (st.code() == Code::kUnavailable || st.code() == Code::kDeadlineExceeded) return st;
    read->state = ArtifactState::kBad;
    read->problem = st.message();
    return read;
  };
  auto source = open_artifact(name, read->meta);
  if (!source.ok()) return bad(source.status());
  auto bytes = read_all(**source, read->meta.size);
  if (!bytes.ok()) return bad(bytes.status());
  read->bytes = std::move(*bytes);
  return read;
}

}  // namespace memgate::coord
