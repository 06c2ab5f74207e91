// Memory cgroups for tests. Design: find where this process sits in each
// cgroup hierarchy that can limit memory (v2 first, then v1), and make a child
// there rather than at the top, so the test stays inside whatever cgroup its
// runner gave it (a container, a CI job) and needs no rights beyond that. Every
// step that can fail records why, and create() returns all the reasons at once,
// so a test that skips says exactly what the machine lacks. Files are written
// with open/write/close to keep errno for those reasons. Nothing here signals or
// moves a process it was not asked to; the destructor only waits and rmdirs.
#include "tests/support/memory_cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

namespace memgate::testing {
namespace {

// A place a hierarchy is mounted: its mount point, and which cgroup of the
// hierarchy the mount shows at that point ("/" unless a sub-tree is bound).
struct Mount {
  CgroupVersion version;
  std::string point;
  std::string root;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

bool has_word(const std::string& list, const std::string& word, char sep) {
  for (auto& w : split(trim(list), sep)) {
    if (w == word) return true;
  }
  return false;
}

Status write_file(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Internal("cannot open " + path + ": " + std::strerror(errno));
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return Internal("cannot write '" + value + "' to " + path + ": " + std::strerror(err));
  }
  return Status::Ok();
}

Result<std::string> read_small_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string m = "cannot read " + path + ": " + std::strerror(err);
    return err == ENOENT ? NotFound(m) : Internal(m);
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  int err = errno;
  ::close(fd);
  if (n < 0) return Internal("cannot read " + path + ": " + std::strerror(err));
  return out;
}

Result<uint64_t> parse_count(const std::string& path, const std::string& text) {
  std::string t = trim(text);
  if (t == "max") return std::numeric_limits<uint64_t>::max();
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos) {
    return Internal(path + " holds '" + t + "', not a number");
  }
  return static_cast<uint64_t>(std::stoull(t));
}

Result<uint64_t> read_count(const std::string& path) {
  auto text = read_small_file(path);
  if (!text.ok()) return text.status();
  return parse_count(path, *text);
}

// The value of "key N" in a flat-keyed file (memory.events, memory.oom_control).
Result<uint64_t> read_keyed(const std::string& path, const std::string& key) {
  auto text = read_small_file(path);
  if (!text.ok()) return text.status();
  for (auto& line : split(*text, '\n')) {
    auto words = split(line, ' ');
    if (words.size() == 2 && words[0] == key) return parse_count(path, words[1]);
  }
  return NotFound(path + " has no '" + key + "' line (kernel too old?)");
}

// The cgroup mounts from /proc/self/mountinfo: cgroup2, and v1 with "memory".
// A line: id parent major:minor root mount-point options ... - fstype source super-options
std::vector<Mount> mounts_from_mountinfo() {
  std::vector<Mount> out;
  auto text = read_small_file("/proc/self/mountinfo");
  if (!text.ok()) return out;
  for (auto& line : split(*text, '\n')) {
    auto fields = split(line, ' ');
    size_t dash = 0;
    for (size_t i = 6; i < fields.size(); ++i) {
      if (fields[i] == "-") {
        dash = i;
        break;
      }
    }
    if (dash == 0 || fields.size() <= dash + 3) continue;
    const std::string& fstype = fields[dash + 1];
    const std::string& super_options = fields[dash + 3];
    if (fstype == "cgroup2") {
      out.push_back({CgroupVersion::kV2, fields[4], fields[3]});
    } else if (fstype == "cgroup" && has_word(super_options, "memory", ',')) {
      out.push_back({CgroupVersion::kV1, fields[4], fields[3]});
    }
  }
  return out;
}

// The mounts a fixed layout under root would have; only those that look like one.
std::vector<Mount> mounts_under(const std::string& root) {
  std::vector<Mount> out;
  for (const std::string& dir : {root, root + "/unified"}) {
    if (exists(dir + "/cgroup.controllers")) out.push_back({CgroupVersion::kV2, dir, "/"});
  }
  if (exists(root + "/memory/memory.limit_in_bytes")) {
    out.push_back({CgroupVersion::kV1, root + "/memory", "/"});
  }
  return out;
}

// This process's cgroup in the v2 hierarchy ("0::/path") or in the v1 hierarchy
// that has the memory controller ("4:memory:/path"); empty when none.
std::string own_cgroup(CgroupVersion version) {
  auto text = read_small_file("/proc/self/cgroup");
  if (!text.ok()) return "";
  for (auto& line : split(*text, '\n')) {
    auto first = line.find(':');
    auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (version == CgroupVersion::kV2 && line.substr(0, first) == "0" && controllers.empty()) return path;
    if (version == CgroupVersion::kV1 && has_word(controllers, "memory", ',')) return path;
  }
  return "";
}

std::string join(const std::string& dir, const std::string& rel) {
  if (rel.empty() || rel == "/") return dir;
  return dir + (rel.front() == '/' ? "" : "/") + rel;
}

// Makes a uniquely named directory under parent; returns its name.
Result<std::string> make_child_dir(const std::string& parent, const std::string& prefix) {
  static std::atomic<int> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    if (::mkdir((parent + "/" + name).c_str(), 0755) == 0) return name;
    if (errno != EEXIST) {
      return Internal("cannot mkdir " + parent + "/" + name + ": " + std::strerror(errno));
    }
  }
  return Internal("cannot find a free cgroup name under " + parent);
}

// Sets up a fresh v2 or v1 child at dir; on failure the caller removes dir.
Status configure_v2(const std::string& dir, uint64_t limit) {
  auto controllers = read_small_file(dir + "/cgroup.controllers");
  if (!controllers.ok()) return controllers.status();
  if (!has_word(*controllers, "memory", ' ')) {
    return FailedPrecondition("memory is not in " + dir + "/cgroup.controllers");
  }
  if (auto s = write_file(dir + "/memory.max", std::to_string(limit)); !s.ok()) return s;
  if (exists(dir + "/memory.swap.max")) {
    if (auto s = write_file(dir + "/memory.swap.max", "0"); !s.ok()) return s;
  }
  return Status::Ok();
}

Status configure_v1(const std::string& dir, uint64_t limit) {
  // The memory limit first: the kernel wants memsw.limit >= limit at all times.
  if (auto s = write_file(dir + "/memory.limit_in_bytes", std::to_string(limit)); !s.ok()) return s;
  if (exists(dir + "/memory.memsw.limit_in_bytes")) {
    if (auto s = write_file(dir + "/memory.memsw.limit_in_bytes", std::to_string(limit)); !s.ok()) return s;
  } else {
    // No swap accounting: the best left is to ask the kernel not to swap.
    (void)write_file(dir + "/memory.swappiness", "0");
  }
  return Status::Ok();
}

// The v2 parent must list "memory" and delegate it (subtree_control) to children.
Status prepare_v2_parent(const std::string& parent) {
  auto controllers = read_small_file(parent + "/cgroup.controllers");
  if (!controllers.ok()) return controllers.status();
  if (!has_word(*controllers, "memory", ' ')) {
    return FailedPrecondition("the memory controller is not available in " + parent +
                              "/cgroup.controllers (it has: '" + trim(*controllers) + "')");
  }
  auto subtree = read_small_file(parent + "/cgroup.subtree_control");
  if (!subtree.ok()) return subtree.status();
  if (has_word(*subtree, "memory", ' ')) return Status::Ok();
  Status s = write_file(parent + "/cgroup.subtree_control", "+memory");
  if (!s.ok()) {
    return FailedPrecondition(s.message() +
                              " (v2 lets a non-root cgroup delegate controllers only when it holds "
                              "no processes itself)");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<MemoryCgroup>> MemoryCgroup::create(uint64_t limit_bytes,
                                                           MemoryCgroupOptions options) {
  if (limit_bytes == 0) return InvalidArgument("MemoryCgroup::create: limit of 0 bytes");
  std::vector<Mount> mounts = options.cgroup_root.empty() ? mounts_from_mountinfo()
                                                          : mounts_under(options.cgroup_root);
  std::vector<std::string> reasons;
  // v2 first, in mount order.
  for (CgroupVersion want : {CgroupVersion::kV2, CgroupVersion::kV1}) {
    for (const Mount& m : mounts) {
      if (m.version != want) continue;
      const char* label = want == CgroupVersion::kV2 ? "v2 at " : "v1 at ";
      std::string own = own_cgroup(want);
      if (own.empty()) {
        reasons.push_back(label + m.point + ": /proc/self/cgroup names no cgroup for it");
        continue;
      }
      // The mount shows the hierarchy from m.root down; our cgroup must be in that part.
      std::string rel;
      if (m.root == "/") {
        rel = own;
      } else if (own == m.root || own.rfind(m.root + "/", 0) == 0) {
        rel = own.substr(m.root.size());
      } else {
        reasons.push_back(label + m.point + ": this process's cgroup " + own +
                          " is outside the mounted part " + m.root);
        continue;
      }
      std::string parent = join(m.point, rel);
      if (!exists(parent)) {
        reasons.push_back(label + m.point + ": " + parent + " does not exist");
        continue;
      }
      if (want == CgroupVersion::kV2) {
        if (Status s = prepare_v2_parent(parent); !s.ok()) {
          reasons.push_back(label + m.point + ": " + s.message());
          continue;
        }
      }
      auto child = make_child_dir(parent, options.name_prefix);
      if (!child.ok()) {
        reasons.push_back(label + m.point + ": " + child.status().message());
        continue;
      }
      std::string dir = parent + "/" + *child;
      Status s = want == CgroupVersion::kV2 ? configure_v2(dir, limit_bytes)
                                            : configure_v1(dir, limit_bytes);
      if (!s.ok()) {
        ::rmdir(dir.c_str());
        reasons.push_back(label + m.point + ": " + s.message());
        continue;
      }
      std::string name = (rel.empty() || rel == "/" ? "" : rel) + "/" + *child;
      if (m.root != "/") name = m.root + name;
      return std::unique_ptr<MemoryCgroup>(new MemoryCgroup(want, dir, name));
    }
  }
  if (mounts.empty()) {
    reasons.push_back(options.cgroup_root.empty()
                          ? std::string("no cgroup2 or v1 memory cgroup mount in /proc/self/mountinfo")
                          : "no cgroup2 or v1 memory hierarchy under " + options.cgroup_root);
  }
  std::string why = "cannot make a memory cgroup:";
  for (auto& r : reasons) why += " [" + r + "]";
  return FailedPrecondition(why);
}

MemoryCgroup::~MemoryCgroup() {
  // rmdir fails with EBUSY while processes remain (an exiting child may linger a
  // moment after it was reaped); wait a bounded time, never signal or move them.
  bool removed = wait_until(
      [&] { return ::rmdir(path_.c_str()) == 0 || errno == ENOENT; }, std::chrono::seconds(2));
  if (!removed) {
    std::fprintf(stderr, "MemoryCgroup: %s still has processes; leaving it in place\n", path_.c_str());
  }
}

Result<std::unique_ptr<Subprocess>> MemoryCgroup::start(
    std::vector<std::string> argv, std::vector<std::pair<std::string, std::string>> extra_env,
    std::string log_path) const {
  return Subprocess::start(std::move(argv), std::move(extra_env), std::move(log_path), procs_path());
}

Status MemoryCgroup::add(pid_t pid) const {
  if (pid <= 0) return InvalidArgument("MemoryCgroup::add: no such pid " + std::to_string(pid));
  return write_file(procs_path(), std::to_string(pid));
}

std::vector<pid_t> MemoryCgroup::pids() const {
  std::vector<pid_t> out;
  auto text = read_small_file(procs_path());
  if (!text.ok()) return out;
  for (auto& line : split(*text, '\n')) {
    if (!line.empty()) out.push_back(static_cast<pid_t>(std::stol(line)));
  }
  return out;
}

Result<uint64_t> MemoryCgroup::limit() const {
  return read_count(path_ + (version_ == CgroupVersion::kV2 ? "/memory.max" : "/memory.limit_in_bytes"));
}

Result<uint64_t> MemoryCgroup::usage() const {
  return read_count(path_ + (version_ == CgroupVersion::kV2 ? "/memory.current" : "/memory.usage_in_bytes"));
}

Result<uint64_t> MemoryCgroup::peak() const {
  return read_count(path_ + (version_ == CgroupVersion::kV2 ? "/memory.peak" : "/memory.max_usage_in_bytes"));
}

Result<uint64_t> MemoryCgroup::oom_kills() const {
  return read_keyed(path_ + (version_ == CgroupVersion::kV2 ? "/memory.events" : "/memory.oom_control"),
                    "oom_kill");
}

}  // namespace memgate::testing
