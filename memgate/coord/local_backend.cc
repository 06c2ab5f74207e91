// Local coordination: flock() for exclusion, files for done flags and artifacts.
//
// Design. flock() locks belong to an open file description, so two opens of the
// same file conflict even inside one process: one mechanism serves threads and
// processes alike, and the kernel releases the lock when the holder dies, which
// is the local equivalent of a TTL. The lock file is never unlinked (unlinking a
// lock file lets two holders lock two different inodes). Expiry of done flags uses
// wall-clock milliseconds because several processes compare them.
#include "memgate/coord/local_backend.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "memgate/coord/artifact.h"

namespace memgate::coord {

namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

struct HeldLock {
  int fd = -1;
  std::string token;
  std::mutex mu;
  ~HeldLock() {
    if (fd >= 0) ::close(fd);  // closing drops the flock
  }
};

int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Status write_atomically(const std::string& path, const std::vector<std::string_view>& parts) {
  std::string tmp = path + ".tmp." + random_token();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    for (std::string_view data : parts) out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) return Unavailable("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return Unavailable("cannot rename to " + path + ": " + ec.message());
  }
  return Status::Ok();
}

Status write_atomically(const std::string& path, std::string_view data) {
  return write_atomically(path, std::vector<std::string_view>{data});
}

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

LocalBackend::LocalBackend(std::string dir, std::string instance_id)
    : dir_(std::move(dir)), instance_id_(std::move(instance_id)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
}

std::string LocalBackend::file_stem(const std::string& key) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string LocalBackend::path(const std::string& key, const char* suffix) const {
  return dir_ + "/" + file_stem(key) + suffix;
}

Result<TryAcquire> LocalBackend::try_acquire(const std::string& key, milliseconds ttl) {
  auto started = std::chrono::steady_clock::now();
  std::string p = path(key, ".lock");
  int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("cannot open the local lock file " + p + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return TryAcquire{};
    return Unavailable("flock " + p + ": " + std::strerror(err));
  }
  // The fence counter lives in the lock file; we hold the flock, so read-modify-write is safe.
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  int64_t fence = n > 0 ? std::strtoll(buf, nullptr, 10) : 0;
  ++fence;
  std::string text = std::to_string(fence) + "\n";
  if (::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
      ::ftruncate(fd, static_cast<off_t>(text.size())) != 0) {
    ::close(fd);
    return Unavailable("cannot write the fence to " + p);
  }
  auto held = std::make_shared<HeldLock>();
  held->fd = fd;
  held->token = random_token();
  Lease l;
  l.key = key;
  l.token = held->token;
  l.fence = fence;
  l.ttl = ttl;
  l.acquired_at = started;
  l.backend = "local";
  l.local = held;
  TryAcquire out;
  out.lease = std::move(l);
  return out;
}

Result<bool> LocalBackend::release(const Lease& lease) {
  auto held = std::static_pointer_cast<HeldLock>(lease.local);
  if (!held) return false;
  std::lock_guard lock(held->mu);
  if (held->fd < 0 || held->token != lease.token) return false;
  ::flock(held->fd, LOCK_UN);
  ::close(held->fd);
  held->fd = -1;
  return true;
}

Result<bool> LocalBackend::extend(const Lease& lease, milliseconds) {
  auto held = std::static_pointer_cast<HeldLock>(lease.local);
  if (!held) return false;
  std::lock_guard lock(held->mu);
  return held->fd >= 0 && held->token == lease.token;
}

Result<std::optional<json::value>> LocalBackend::get_json(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = values_.find(key);
  if (it == values_.end()) return std::optional<json::value>();
  if (it->second.expires <= std::chrono::steady_clock::now()) {
    values_.erase(it);
    return std::optional<json::value>();
  }
  return std::optional<json::value>(it->second.value);
}

Status LocalBackend::set_json(const std::string& key, const json::value& value, milliseconds ttl) {
  std::lock_guard lock(mu_);
  auto expires = ttl.count() > 0 ? std::chrono::steady_clock::now() + ttl : std::chrono::steady_clock::time_point::max();
  values_[key] = Entry{value, expires};
  return Status::Ok();
}

namespace {

// Reads the first line of `path` (the meta record), at most 64 KiB of it; the
// offset of the bytes after it goes to *body.
std::optional<std::string> meta_line(const std::string& path, uint64_t* body) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string line;
  char c;
  while (line.size() <= 64 * 1024 && in.get(c)) {
    if (c == '\n') {
      *body = line.size() + 1;
      return line;
    }
    line.push_back(c);
  }
  return std::string();  // no newline: not a meta line
}

// Streams an artifact file's bytes after the meta line in 1 MiB pieces,
// checking the size and the SHA-256 the meta declares.
class FileArtifactSource final : public ByteSource {
 public:
  FileArtifactSource(std::ifstream in, ArtifactMeta meta) : in_(std::move(in)), meta_(std::move(meta)) {}
  uint64_t size() const override { return meta_.size; }
  Result<std::string> next() override {
    if (!error_.ok()) return error_;
    std::string piece(static_cast<size_t>(std::min<uint64_t>(ChunkedBytes::kDefaultPiece, meta_.size - read_ + 1)), '\0');
    in_.read(piece.data(), static_cast<std::streamsize>(piece.size()));
    piece.resize(static_cast<size_t>(in_.gcount()));
    read_ += piece.size();
    if (read_ > meta_.size) return error_ = InvalidArgument("the artifact file is longer than its meta says");
    if (!piece.empty()) {
      sha_.update(piece);
      return piece;
    }
    if (read_ != meta_.size)
      return error_ = InvalidArgument("size " + std::to_string(read_) + ", meta says " + std::to_string(meta_.size));
    if (!verified_) {
      verified_ = true;
      if (sha_.hex() != meta_.sha256) return error_ = InvalidArgument("checksum mismatch");
    }
    return std::string();
  }

 private:
  std::ifstream in_;
  ArtifactMeta meta_;
  uint64_t read_ = 0;
  Sha256 sha_;
  bool verified_ = false;
  Status error_;
};

}  // namespace

Result<ArtifactRead> LocalBackend::read_meta(const std::string& name, const std::string& version) {
  ArtifactRead out;
  auto done = slurp(path(name, ".done"));
  if (!done) return out;
  boost::system::error_code ec;
  json::value v = json::parse(*done, ec);
  if (ec || !v.is_object() || !v.as_object().contains("expires_unix_ms") ||
      !v.as_object().at("expires_unix_ms").is_number()) {
    out.state = ArtifactState::kBad;
    out.problem = "the done flag file is unreadable";
    return out;
  }
  if (v.as_object().at("expires_unix_ms").to_number<int64_t>() <= unix_ms()) return out;  // expired
  out.state = ArtifactState::kBad;
  uint64_t body = 0;
  auto line = meta_line(path(name, ".artifact"), &body);
  if (!line) {
    out.problem = "the done flag is set but the artifact file is missing";
    return out;
  }
  if (line->empty()) {
    out.problem = "the artifact file has no meta line";
    return out;
  }
  auto meta = ArtifactMeta::from_json(*line);
  if (!meta.ok()) {
    out.problem = meta.status().message();
    return out;
  }
  out.fence = meta->fence;
  out.meta = *meta;
  if (meta->format != kArtifactFormat || meta->version != version) {
    out.problem = check_artifact(*meta, "", version);
    return out;
  }
  out.state = ArtifactState::kOk;
  return out;
}

Result<std::unique_ptr<ByteSource>> LocalBackend::open_artifact(const std::string& name, const ArtifactMeta& meta) {
  uint64_t body = 0;
  auto line = meta_line(path(name, ".artifact"), &body);
  if (!line || line->empty()) return InvalidArgument("the artifact file of " + name + " is gone");
  std::ifstream in(path(name, ".artifact"), std::ios::binary);
  if (!in) return InvalidArgument("the artifact file of " + name + " is gone");
  in.seekg(static_cast<std::streamoff>(body));
  return std::unique_ptr<ByteSource>(std::make_unique<FileArtifactSource>(std::move(in), meta));
}

Status LocalBackend::publish_artifact(const Lease& lease, const std::string& name, const ChunkedBytes& bytes,
                                      const std::string& version, milliseconds done_ttl, const PublishInfo& info) {
  auto held = std::static_pointer_cast<HeldLock>(lease.local);
  if (!held || lease.backend != "local") return FailedPrecondition("publish " + name + ": not a local lease");
  std::lock_guard lock(held->mu);
  if (held->fd < 0 || held->token != lease.token) {
    return Aborted("publish of " + name + " refused: the local lease was released");
  }
  char buf[32] = {};
  ssize_t n = ::pread(held->fd, buf, sizeof buf - 1, 0);
  if (n <= 0 || std::strtoll(buf, nullptr, 10) != lease.fence) {
    return Aborted("publish of " + name + " refused: the fencing number is no longer current");
  }
  ArtifactMeta meta = describe_artifact(bytes, version, lease.fence, 0, nullptr);
  meta.builder = info.builder.empty() ? instance_id_ : info.builder;
  meta.inputs = info.inputs;
  meta.build_peak = info.build_peak;
  meta.built_at_unix_ms = unix_ms();
  std::vector<std::string_view> parts;
  std::string head = meta.to_json() + "\n";
  parts.push_back(head);
  for (const std::string& p : bytes.pieces()) parts.push_back(p);
  Status st = write_atomically(path(name, ".artifact"), parts);
  if (!st.ok()) return st;
  json::object done;
  done["fence"] = lease.fence;
  done["instance"] = instance_id_;
  done["expires_unix_ms"] = unix_ms() + done_ttl.count();
  return write_atomically(path(name, ".done"), json::serialize(done));
}

void LocalBackend::wait_done(const std::string&, uint64_t, milliseconds max_wait) {
  std::this_thread::sleep_for(std::min(max_wait, milliseconds(50)));
}

}  // namespace memgate::coord
