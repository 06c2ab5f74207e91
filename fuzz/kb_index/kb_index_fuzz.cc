// libFuzzer target: Index::open on untrusted bytes (an artifact from any fleet
// member). The first byte picks the mode: odd, the rest is an SQLite image,
// wrapped in the artifact format here (so the fuzzer mutates the database, the
// interesting part, rather than fighting the zstd checksum); even, the rest is
// the artifact itself, read through a view source in small pieces. The image
// may be at most 4 MiB (OpenOptions::max_image). Whatever the bytes, open()
// must not crash, hang (every statement has a deadline) or fail with anything
// but kInvalidArgument or kResourceExhausted; an index it opens must answer a
// search, a document and a section without crashing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "memgate/base/chunked_bytes.h"
#include "memgate/kb/artifact.h"
#include "memgate/kb/index.h"

namespace {

using memgate::Code;
using namespace memgate::kb;

constexpr uint64_t kMaxImage = 4 << 20;

std::string wrap(std::string_view image) {
  ArtifactWriter::Options o;
  o.level = 1;
  auto writer = ArtifactWriter::start(image.size(), o);
  if (!writer.ok() || !(*writer)->write(image).ok()) std::abort();
  auto pieces = (*writer)->finish();
  if (!pieces.ok()) std::abort();
  std::string out;
  while (!pieces->empty()) out += pieces->take_front();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string artifact = (data[0] & 1) ? wrap(rest) : std::string(rest);
  auto source = memgate::view_source(artifact, 4096);
  OpenOptions options;
  options.pool_size = 2;
  options.max_image = kMaxImage;
  auto index = Index::open(*source, options);
  if (!index.ok()) {
    Code c = index.status().code();
    if (c != Code::kInvalidArgument && c != Code::kResourceExhausted) std::abort();
    return 0;
  }
  auto hits = (*index)->search("the", {});
  if (hits.ok()) {
    for (const SearchHit& h : *hits) {
      (void)(*index)->document(h.doc_id);
      (void)(*index)->section(h.doc_id, h.heading, 4096);
    }
  }
  (void)(*index)->search("NEAR(a b) OR c*", {5, true});
  (void)(*index)->document("0000000000000000");
  return 0;
}
