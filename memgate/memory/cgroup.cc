// Finding and reading the memory cgroup.
//
// /proc/self/cgroup has one line per hierarchy, "id:controllers:path". A v2 line
// is "0::/path"; a v1 memory line names "memory" among its controllers. Hosts may
// be pure v2, pure v1, or hybrid (v1 controllers plus a v2 tree, often mounted at
// <root>/unified, that holds no memory controller), so a line is only a hint: a
// hierarchy counts when its memory files exist. v2 is tried first because on a
// pure v2 host there is nothing else, and on a hybrid host its directories lack
// memory.max, so the v1 reading wins there.
//
// Inside a container with its own cgroup namespace the path often reads "/" and
// the container's cgroup is mounted as the root; without a namespace the path is
// the host's and may not exist in the container's mount. In both cases the
// fallback is to read the memory files at the root of the mount.
#include "memgate/memory/cgroup.h"

#include <algorithm>
#include <filesystem>
#include <string_view>
#include <vector>

#include "memgate/memory/text_file.h"

namespace memgate::memory {

namespace {

namespace fs = std::filesystem;

// cgroup v1 reports "no limit" as the largest page counter times the page size
// (0x7FFFFFFFFFFFF000 with 4 KiB pages); anything this large is no real limit.
constexpr uint64_t kV1Unlimited = uint64_t{1} << 62;

struct CgroupLines {
  std::optional<std::string> v2_path;
  std::optional<std::string> v1_memory_path;
};

CgroupLines parse_proc_cgroup(std::string_view content) {
  CgroupLines out;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string_view::npos) eol = content.size();
    std::string_view line = content.substr(pos, eol - pos);
    pos = eol + 1;
    size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    std::string_view id = line.substr(0, first);
    std::string_view controllers = line.substr(first + 1, second - first - 1);
    std::string path(trim(line.substr(second + 1)));
    if (id == "0" && controllers.empty()) {
      out.v2_path = path;
      continue;
    }
    // controllers is a comma-separated list: "memory" or "cpu,memory".
    size_t c = 0;
    while (c <= controllers.size()) {
      size_t comma = controllers.find(',', c);
      if (comma == std::string_view::npos) comma = controllers.size();
      if (controllers.substr(c, comma - c) == "memory") out.v1_memory_path = path;
      c = comma + 1;
    }
  }
  return out;
}

std::optional<uint64_t> read_u64(const fs::path& file) {
  std::optional<std::string> content = read_text_file(file.string());
  if (!content) return std::nullopt;
  return parse_u64(*content);
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// root + "/a/b" without letting the absolute cgroup path replace the root.
fs::path under(const fs::path& root, const std::string& cgroup_path) {
  std::string relative = cgroup_path;
  relative.erase(0, relative.find_first_not_of('/'));
  return relative.empty() ? root : root / relative;
}

// The first candidate directory holding `marker`, if any.
std::optional<fs::path> first_with(const std::vector<fs::path>& candidates, const char* marker) {
  for (const fs::path& dir : candidates) {
    if (path_exists(dir / marker)) return dir;
  }
  return std::nullopt;
}

// The value of `key` in a memory.stat text ("key value" lines).
std::optional<uint64_t> stat_value(std::string_view stat, std::string_view key) {
  for (size_t at = 0; at < stat.size();) {
    size_t eol = stat.find('\n', at);
    std::string_view line = stat.substr(at, eol == std::string_view::npos ? std::string_view::npos : eol - at);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ')
      return parse_u64(line.substr(key.size() + 1));
    if (eol == std::string_view::npos) break;
    at = eol + 1;
  }
  return std::nullopt;
}

std::optional<CgroupStats> read_v2(const fs::path& root, const std::string& cgroup_path) {
  fs::path unified = root / "unified";
  std::vector<fs::path> candidates = {under(root, cgroup_path), under(unified, cgroup_path), root};
  std::optional<fs::path> dir = first_with(candidates, "memory.max");
  if (!dir) dir = first_with(candidates, "memory.current");
  if (!dir) return std::nullopt;

  CgroupStats s;
  s.version = 2;
  s.path = dir->string();
  s.usage = read_u64(*dir / "memory.current");
  s.peak = read_u64(*dir / "memory.peak");
  if (std::optional<std::string> stat = read_text_file((*dir / "memory.stat").string()))
    s.inactive_file = stat_value(*stat, "inactive_file");
  // A limit set on an ancestor (a systemd slice, the pod) binds this cgroup too:
  // take the smallest "memory.max" from here up to the mount's root. "max" does
  // not parse as a number and so counts as no limit.
  const fs::path top = dir->string().starts_with(unified.string()) ? unified : root;
  for (fs::path p = *dir;; p = p.parent_path()) {
    if (std::optional<uint64_t> limit = read_u64(p / "memory.max")) {
      s.limit = s.limit ? std::min(*s.limit, *limit) : *limit;
    }
    if (p == top || !p.has_relative_path() || p == p.parent_path()) break;
  }
  return s;
}

std::optional<CgroupStats> read_v1(const fs::path& root, const std::string& cgroup_path) {
  fs::path mount = root / "memory";
  std::optional<fs::path> dir =
      first_with({under(mount, cgroup_path), mount}, "memory.limit_in_bytes");
  if (!dir) return std::nullopt;

  CgroupStats s;
  s.version = 1;
  s.path = dir->string();
  s.usage = read_u64(*dir / "memory.usage_in_bytes");
  s.peak = read_u64(*dir / "memory.max_usage_in_bytes");
  std::optional<uint64_t> limit = read_u64(*dir / "memory.limit_in_bytes");
  // memory.stat's hierarchical_memory_limit already folds in the ancestors' limits.
  if (std::optional<std::string> stat = read_text_file((*dir / "memory.stat").string())) {
    if (std::optional<uint64_t> h = stat_value(*stat, "hierarchical_memory_limit"))
      limit = limit ? std::min(*limit, *h) : *h;
    s.inactive_file = stat_value(*stat, "total_inactive_file");
  }
  if (limit && *limit < kV1Unlimited) s.limit = limit;
  return s;
}

}  // namespace

CgroupStats read_cgroup(const std::string& proc_self_cgroup, const std::string& cgroup_root) {
  std::optional<std::string> content = read_text_file(proc_self_cgroup);
  if (!content) return {};
  CgroupLines lines = parse_proc_cgroup(*content);
  const fs::path root(cgroup_root);
  if (lines.v2_path) {
    if (std::optional<CgroupStats> s = read_v2(root, *lines.v2_path)) return *s;
  }
  if (lines.v1_memory_path) {
    if (std::optional<CgroupStats> s = read_v1(root, *lines.v1_memory_path)) return *s;
  }
  return {};
}

}  // namespace memgate::memory
