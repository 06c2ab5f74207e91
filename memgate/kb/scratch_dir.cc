// ScratchDir: mkdtemp for the folder, O_CREAT|O_EXCL with mode 0600 for each
// file (so a library that later opens the file by name, SQLite here, finds it
// private whatever its own default mode and the umask), and
// std::filesystem::remove_all on the way out.
#include "memgate/kb/scratch_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

namespace memgate::kb {

std::string scratch_parent(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? std::string(tmp) : std::string("/tmp");
}

ScratchDir::~ScratchDir() { remove(); }

ScratchDir::ScratchDir(ScratchDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

ScratchDir& ScratchDir::operator=(ScratchDir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

Result<ScratchDir> ScratchDir::make(const std::string& parent) {
  std::string base = scratch_parent(parent);
  std::string pattern = base + "/memgate-kb-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    return FailedPrecondition("cannot make a scratch folder in '" + base + "': " + std::strerror(errno));
  ScratchDir dir;
  dir.path_ = buf.data();
  return dir;
}

Result<std::string> ScratchDir::private_file(const std::string& name) const {
  std::string file = path_ + "/" + name;
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return FailedPrecondition("cannot create '" + file + "': " + std::strerror(errno));
  ::close(fd);
  return file;
}

void ScratchDir::remove() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

}  // namespace memgate::kb
