// Fuzzes what the local coordination backend reads from its directory: a done
// flag file and an artifact file (meta line, then bytes), as another process or
// a crash could leave them. Whatever they hold, read_meta and the artifact
// stream must end in a verdict (absent, bad, ok, or an error), never a crash, a
// hang or an allocation beyond the meta's bounds.
//
// Input: the done flag's bytes, a 0x00 byte, the artifact file's bytes.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "memgate/coord/local_backend.h"

namespace {

const std::string& dir() {
  static const std::string d = [] {
    char tmpl[] = "/tmp/memgate-fuzz-local-XXXXXX";
    const char* made = ::mkdtemp(tmpl);
    if (!made) std::abort();
    return std::string(made);
  }();
  return d;
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto backend = memgate::coord::LocalBackend::open(dir(), "fuzz");
  if (!backend.ok()) std::abort();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t split = input.find('\0');
  std::string_view done = input.substr(0, split);
  std::string_view artifact = split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
  const std::string name = "task:fuzz";
  const std::string stem = dir() + "/" + memgate::coord::LocalBackend::file_stem(name);
  write_file(stem + ".done", done);
  write_file(stem + ".artifact", artifact);
  auto read = (*backend)->read_meta(name, "1");
  if (read.ok() && read->state == memgate::coord::ArtifactState::kOk) {
    auto source = (*backend)->open_artifact(name, read->meta);
    if (source.ok()) {
      // The stream must stay within what the meta declares (itself bounded).
      uint64_t total = 0;
      for (int i = 0; i < 1 << 20; ++i) {
        auto piece = (*source)->next();
        if (!piece.ok() || piece->empty()) break;
        total += piece->size();
        if (total > read->meta.size) std::abort();
      }
    }
  }
  return 0;
}
