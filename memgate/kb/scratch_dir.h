// ScratchDir: a private temporary folder (mkdtemp, mode 0700) that removes
// itself and everything in it when it goes out of scope, on every path out of
// the code that made it. The index build puts its on-disk database there.
//
// Not thread-safe; one owner.
#pragma once

#include <string>

#include "memgate/base/status.h"

namespace memgate::kb {

class ScratchDir {
 public:
  ScratchDir() = default;
  ~ScratchDir();
  ScratchDir(ScratchDir&& other) noexcept;
  ScratchDir& operator=(ScratchDir&& other) noexcept;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // Makes `parent`/memgate-kb-XXXXXX. An empty parent means $TMPDIR, or /tmp
  // when that is unset. kFailedPrecondition when the folder cannot be made
  // (parent missing, not writable).
  static Result<ScratchDir> make(const std::string& parent);

  // Creates the empty file `name` in the folder, readable and writable by this
  // user only (0600), and returns its path. kFailedPrecondition on failure.
  Result<std::string> private_file(const std::string& name) const;

  const std::string& path() const { return path_; }
  // Removes the folder now (the destructor does it otherwise).
  void remove();

 private:
  std::string path_;
};

// The folder a build uses for scratch files: `configured` when set, else
// $TMPDIR, else /tmp.
std::string scratch_parent(const std::string& configured);

}  // namespace memgate::kb
