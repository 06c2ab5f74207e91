// Local coordination: flock() for exclusion, files for done flags and artifacts.
//
// Design. flock() locks belong to an open file description, so two opens of the
// same file conflict even inside one process: one mechanism serves threads and
// processes alike, and the kernel releases the lock when the holder dies, which
// is the local equivalent of a TTL. The lock file is never unlinked (unlinking a
// lock file lets two holders lock two different inodes). Expiry of done flags uses
// wall-clock milliseconds because several processes compare them.
//
// The directory may sit in a shared /tmp, so nothing in it is trusted unless it
// is ours: open() creates it 0700 and refuses one that is a symlink, is not owned
// by our euid, or is writable by group or others. Every file in it is opened with
// O_NOFOLLOW (a symlink planted in its place is refused, never followed) and
// O_CLOEXEC; temp files are created O_EXCL 0600; reads are bounded (a done flag
// at most 64 KiB, an artifact by its meta) and refuse anything but regular files.
#include "memgate/coord/local_backend.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
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

int64_t unix_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr int kOpenFlags = O_NOFOLLOW | O_CLOEXEC;

std::string open_error(const std::string& what, const std::string& path, int err) {
  if (err == ELOOP) return what + " " + path + " is a symlink; it is not followed";
  return "cannot open " + what + " " + path + ": " + std::strerror(err);
}

// Owns a file descriptor.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

Status write_atomically(const std::string& path, const std::vector<std::string_view>& parts) {
  std::string tmp = path + ".tmp." + random_token();
  {
    Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | kOpenFlags, 0600));
    if (out.fd < 0) return Unavailable(open_error("the temp file", tmp, errno));
    for (std::string_view data : parts) {
      if (!write_all(out.fd, data)) {
        ::unlink(tmp.c_str());
        return Unavailable("cannot write " + tmp + ": " + std::strerror(errno));
      }
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Unavailable("cannot rename to " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

Status write_atomically(const std::string& path, std::string_view data) {
  return write_atomically(path, std::vector<std::string_view>{data});
}

// Opens an existing regular file for reading without following a symlink or
// blocking on a FIFO; nullopt when it is missing, an error when it is something else.
Result<std::optional<Fd>> open_regular(const std::string& path, const std::string& what) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | kOpenFlags));
  if (fd.fd < 0) {
    if (errno == ENOENT) return std::optional<Fd>();
    return InvalidArgument(open_error(what, path, errno));
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode)) return InvalidArgument(what + " " + path + " is not a regular file");
  return std::optional<Fd>(std::move(fd));
}

// The whole file when it is at most `bound` bytes: nullopt when missing, an
// error when longer, unreadable or not a regular file.
Result<std::optional<std::string>> read_bounded(const std::string& path, const std::string& what, size_t bound) {
  auto fd = open_regular(path, what);
  if (!fd.ok()) return fd.status();
  if (!*fd) return std::optional<std::string>();
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read((*fd)->fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return InvalidArgument("cannot read " + what + " " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > bound)
      return InvalidArgument(what + " " + path + " is longer than " + std::to_string(bound) + " bytes");
    out.append(buf, static_cast<size_t>(n));
  }
  return std::optional<std::string>(std::move(out));
}

}  // namespace

LocalBackend::LocalBackend(std::string dir, std::string instance_id)
    : dir_(std::move(dir)), instance_id_(std::move(instance_id)) {}

Result<std::shared_ptr<LocalBackend>> LocalBackend::open(std::string dir, std::string instance_id) {
  auto refuse = [&](const std::string& why) {
    return FailedPrecondition("the local coordination dir " + dir + " (COORD_LOCAL_DIR) " + why);
  };
  if (dir.empty()) return FailedPrecondition("the local coordination dir (COORD_LOCAL_DIR) is empty");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return refuse(std::string("cannot be examined: ") + std::strerror(errno));
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return refuse(std::string("cannot be created: ") + std::strerror(errno));
    if (::lstat(dir.c_str(), &st) != 0) return refuse(std::string("cannot be examined: ") + std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) return refuse("is a symlink; use the directory itself");
  if (!S_ISDIR(st.st_mode)) return refuse("is not a directory");
  if (st.st_uid != ::geteuid())
    return refuse("is owned by uid " + std::to_string(st.st_uid) + ", not by this process (uid " +
                  std::to_string(::geteuid()) + ")");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(std::string("is writable by group or others (mode ") + mode + "); make it 0700");
  }
  return std::shared_ptr<LocalBackend>(new LocalBackend(std::move(dir), std::move(instance_id)));
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
  int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_NONBLOCK | kOpenFlags, 0600);
  if (fd < 0) {
    int err = errno;
    if (err == ELOOP) return FailedPrecondition(open_error("the local lock file", p, err));
    return Unavailable(open_error("the local lock file", p, err));
  }
  if (struct stat st {}; ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return FailedPrecondition("the local lock file " + p + " is not a regular file");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return TryAcquire{};
    return Unavailable("flock " + p + ": " + std::strerror(err));
  }
  // The fence counter lives in the lock file; we hold the flock, so read-modify-write is safe.
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  // A new (or emptied) lock file starts at the wall clock in microseconds, like
  // a missing Redis counter, so fences keep growing when the directory is wiped.
  int64_t fence = n > 0 ? std::strtoll(buf, nullptr, 10) : unix_us();
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

// Reads the first line of the artifact file (the meta record), at most 64 KiB
// of it; the offset of the bytes after it goes to *body. Empty: no meta line.
Result<std::string> meta_line(int fd, uint64_t* body) {
  std::string head(ArtifactMeta::kMaxMetaBytes + 1, '\0');
  ssize_t n;
  do n = ::pread(fd, head.data(), head.size(), 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return InvalidArgument(std::string("cannot read the artifact file: ") + std::strerror(errno));
  head.resize(static_cast<size_t>(n));
  size_t nl = head.find('\n');
  if (nl == std::string::npos) return std::string();
  head.resize(nl);
  *body = nl + 1;
  return head;
}

// Streams an artifact file's bytes after the meta line in 1 MiB pieces,
// checking the size and the SHA-256 the meta declares.
class FileArtifactSource final : public ByteSource {
 public:
  FileArtifactSource(Fd fd, uint64_t offset, ArtifactMeta meta)
      : fd_(std::move(fd)), offset_(offset), meta_(std::move(meta)) {}
  uint64_t size() const override { return meta_.size; }
  Result<std::string> next() override {
    if (!error_.ok()) return error_;
    std::string piece(static_cast<size_t>(std::min<uint64_t>(ChunkedBytes::kDefaultPiece, meta_.size - read_ + 1)), '\0');
    size_t got = 0;
    while (got < piece.size()) {
      ssize_t n = ::pread(fd_.fd, piece.data() + got, piece.size() - got, static_cast<off_t>(offset_ + read_ + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return error_ = InvalidArgument(std::string("cannot read the artifact file: ") + std::strerror(errno));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    piece.resize(got);
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
  Fd fd_;
  uint64_t offset_;
  ArtifactMeta meta_;
  uint64_t read_ = 0;
  Sha256 sha_;
  bool verified_ = false;
  Status error_;
};

}  // namespace

Result<ArtifactRead> LocalBackend::read_meta(const std::string& name, const std::string& version) {
  // Whatever is in the files (another user's, a crash's, a hostile one) is at
  // worst a bad artifact: rebuilt, never loaded, never a failure of the step.
  ArtifactRead out;
  auto done = read_bounded(path(name, ".done"), "the done flag file", ArtifactMeta::kMaxMetaBytes);
  if (done.ok() && !*done) return out;  // kAbsent
  out.state = ArtifactState::kBad;
  if (!done.ok()) {
    out.problem = done.status().message();
    return out;
  }
  boost::system::error_code ec;
  json::value v = json::parse(**done, ec);
  const json::value* expires = !ec && v.is_object() ? v.as_object().if_contains("expires_unix_ms") : nullptr;
  if (!expires || !(expires->is_int64() || expires->is_uint64())) {
    out.problem = "the done flag file is unreadable";
    return out;
  }
  int64_t expires_ms = expires->is_int64() ? expires->as_int64()
                                           : static_cast<int64_t>(std::min<uint64_t>(expires->as_uint64(), INT64_MAX));
  if (expires_ms <= unix_ms()) {
    out.state = ArtifactState::kAbsent;  // expired
    return out;
  }
  auto file = open_regular(path(name, ".artifact"), "the artifact file");
  if (!file.ok()) {
    out.problem = file.status().message();
    return out;
  }
  if (!*file) {
    out.problem = "the done flag is set but the artifact file is missing";
    return out;
  }
  uint64_t body = 0;
  auto line = meta_line((*file)->fd, &body);
  if (!line.ok()) {
    out.problem = line.status().message();
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
  auto file = open_regular(path(name, ".artifact"), "the artifact file");
  if (!file.ok()) return file.status();
  if (!*file) return InvalidArgument("the artifact file of " + name + " is gone");
  uint64_t body = 0;
  auto line = meta_line((*file)->fd, &body);
  if (!line.ok()) return line.status();
  if (line->empty()) return InvalidArgument("the artifact file of " + name + " has no meta line");
  return std::unique_ptr<ByteSource>(std::make_unique<FileArtifactSource>(std::move(**file), body, meta));
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

void LocalBackend::wait_done(const std::string&, uint64_t, milliseconds max_wait, const std::stop_token&) {
  // No messages between local processes: a short sleep is the poll (and
  // bounds how late a raised stop is seen).
  std::this_thread::sleep_for(std::min(max_wait, milliseconds(50)));
}

}  // namespace memgate::coord
