// LocalBackend: coordination without Redis, for one host.
//
// Locks are flock()s on files in a host-local directory (one file per key, never
// deleted), so threads and processes on the same host take turns; the fencing
// counter is kept in the lock file itself and incremented while the flock is held.
// A local lease has no TTL: it lasts until released or until its process exits
// (the kernel drops the flock), and extend() only confirms it is still held.
// Done flags and artifacts are files in the same directory (written to a temp
// name and renamed, so readers see whole files), with the expiry stored inside.
// The directory must be private (see open()); files in it are opened with
// O_NOFOLLOW, temp files O_EXCL 0600. JSON values live in this process only. Completion is not announced: waiters
// poll. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "memgate/coord/backend.h"

namespace memgate::coord {

class LocalBackend final : public CoordBackend {
 public:
  // Uses `dir`, creating it 0700 when missing. kFailedPrecondition, naming the
  // dir, when it is a symlink, not a directory, not owned by this process's euid,
  // or writable by group or others: another local user could plant or read files.
  static Result<std::shared_ptr<LocalBackend>> open(std::string dir, std::string instance_id);

  std::string_view name() const override { return "local"; }
  const std::string& dir() const { return dir_; }

  Result<TryAcquire> try_acquire(const std::string& key, std::chrono::milliseconds ttl) override;
  Result<bool> release(const Lease& lease) override;
  Result<bool> extend(const Lease& lease, std::chrono::milliseconds ttl) override;
  Result<std::optional<boost::json::value>> get_json(const std::string& key) override;
  Status set_json(const std::string& key, const boost::json::value& value, std::chrono::milliseconds ttl) override;
  Result<ArtifactRead> read_meta(const std::string& name, const std::string& version) override;
  Result<std::unique_ptr<ByteSource>> open_artifact(const std::string& name, const ArtifactMeta& meta) override;
  using CoordBackend::publish_artifact;
  Status publish_artifact(const Lease& lease, const std::string& name, const ChunkedBytes& bytes,
                          const std::string& version, std::chrono::milliseconds done_ttl,
                          const PublishInfo& info) override;
  uint64_t done_generation(const std::string& name) override { return 0; }
  void wait_done(const std::string& name, uint64_t seen, std::chrono::milliseconds max_wait,
                 const std::stop_token& stop) override;

  // The file name used for `key` (letters, digits, '-', '_', '.' kept; others escaped).
  static std::string file_stem(const std::string& key);

 private:
  LocalBackend(std::string dir, std::string instance_id);
  std::string path(const std::string& key, const char* suffix) const;

  std::string dir_;
  std::string instance_id_;
  std::mutex mu_;
  struct Entry {
    boost::json::value value;
    std::chrono::steady_clock::time_point expires;  // max() when no TTL
  };
  std::map<std::string, Entry> values_;
};

}  // namespace memgate::coord
