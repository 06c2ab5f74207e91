// The process collector reads what the kernel already keeps, at scrape time, so
// it costs nothing between scrapes and never goes stale. /proc/self/stat gives CPU
// ticks, thread count, start time (ticks after boot), vsize and rss (pages) in one
// line; the command name in it sits in parentheses and may itself contain spaces
// and parentheses, so fields are counted from the last ')'. The boot time comes
// from /proc/stat's btime. Open descriptors are counted by listing fd/, skipping
// the descriptor the listing itself holds; the limit is the soft "Max open
// files" of /proc/self/limits, which is what the official clients report.
#include "memgate/metrics/process_collector.h"

#include <dirent.h>
#include <unistd.h>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <charconv>
#include <cstdlib>
#include <string_view>
#include <utility>
#include <vector>

#include "memgate/memory/text_file.h"
#include "memgate/metrics/families.h"

namespace memgate::metrics {

namespace {

using memory::parse_u64;
using memory::read_text_file;

std::vector<std::string_view> split_spaces(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = text.find_first_not_of(" \n", pos);
    if (start == std::string_view::npos) break;
    size_t end = text.find_first_of(" \n", start);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    pos = end;
  }
  return out;
}

std::optional<uint64_t> boot_time(const std::string& proc_stat) {
  std::optional<std::string> content = read_text_file(proc_stat);
  if (!content) return std::nullopt;
  std::string_view text = *content;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.starts_with("btime ")) return parse_u64(line.substr(6));
  }
  return std::nullopt;
}

std::optional<uint64_t> soft_open_files_limit(const std::string& limits_file) {
  std::optional<std::string> content = read_text_file(limits_file);
  if (!content) return std::nullopt;
  constexpr std::string_view kKey = "Max open files";
  size_t at = content->find(kKey);
  if (at == std::string::npos) return std::nullopt;
  size_t eol = content->find('\n', at);
  std::string_view rest = std::string_view(*content).substr(at + kKey.size(),
      eol == std::string::npos ? std::string_view::npos : eol - at - kKey.size());
  std::vector<std::string_view> fields = split_spaces(rest);
  if (fields.empty()) return std::nullopt;
  return parse_u64(fields[0]);  // "unlimited" does not parse: no limit to report
}

std::optional<uint64_t> count_fds(const std::string& fd_dir, bool skip_own) {
  DIR* dir = ::opendir(fd_dir.c_str());
  if (dir == nullptr) return std::nullopt;
  const int own = ::dirfd(dir);
  uint64_t count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (skip_own) {
      int fd = -1;
      auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), fd);
      if (ec == std::errc() && fd == own) continue;
    }
    ++count;
  }
  ::closedir(dir);
  return count;
}

class ProcessCollector final : public prometheus::Collectable {
 public:
  explicit ProcessCollector(ProcessPaths paths) : paths_(std::move(paths)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    Result<ProcessSnapshot> snap = read_process_snapshot(paths_);
    if (!snap.ok()) return {};
    std::vector<prometheus::MetricFamily> out;
    auto cpu = counter_family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
    add_counter(cpu, snap->cpu_seconds);
    out.push_back(std::move(cpu));
    auto gauge = [&out](const char* name, const char* help, double value) {
      auto f = gauge_family(name, help);
      add_gauge(f, value);
      out.push_back(std::move(f));
    };
    gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
          static_cast<double>(snap->resident_bytes));
    gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", static_cast<double>(snap->virtual_bytes));
    if (snap->start_time_seconds > 0) {
      gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
            snap->start_time_seconds);
    }
    if (snap->open_fds) {
      gauge("process_open_fds", "Number of open file descriptors.", static_cast<double>(*snap->open_fds));
    }
    if (snap->max_fds) {
      gauge("process_max_fds", "Maximum number of open file descriptors.", static_cast<double>(*snap->max_fds));
    }
    gauge("process_threads", "Number of OS threads in the process.", static_cast<double>(snap->threads));
    return out;
  }

 private:
  const ProcessPaths paths_;
};

}  // namespace

Result<ProcessSnapshot> read_process_snapshot(const ProcessPaths& paths) {
  const std::string stat_file = paths.proc_self + "/stat";
  std::optional<std::string> stat = read_text_file(stat_file);
  if (!stat) return Unavailable("cannot read " + stat_file);
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return Unavailable("no command name in " + stat_file);
  // fields[0] is field 3 of proc(5) (state); field N is fields[N - 3].
  std::vector<std::string_view> fields = split_spaces(std::string_view(*stat).substr(close + 1));
  auto field = [&fields](size_t n) -> std::optional<uint64_t> {
    return n - 3 < fields.size() ? parse_u64(fields[n - 3]) : std::nullopt;
  };
  std::optional<uint64_t> utime = field(14), stime = field(15), threads = field(20), start = field(22),
                          vsize = field(23), rss = field(24);
  if (!utime || !stime || !threads || !start || !vsize || !rss) {
    return Unavailable("unexpected format of " + stat_file);
  }
  static const double ticks_per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
  static const uint64_t page_size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));

  ProcessSnapshot s;
  s.cpu_seconds = static_cast<double>(*utime + *stime) / ticks_per_second;
  s.threads = *threads;
  s.virtual_bytes = *vsize;
  s.resident_bytes = *rss * page_size;
  if (std::optional<uint64_t> btime = boot_time(paths.proc_stat)) {
    s.start_time_seconds = static_cast<double>(*btime) + static_cast<double>(*start) / ticks_per_second;
  }
  s.open_fds = count_fds(paths.proc_self + "/fd", paths.proc_self == "/proc/self");
  s.max_fds = soft_open_files_limit(paths.proc_self + "/limits");
  return s;
}

std::shared_ptr<prometheus::Collectable> make_process_collector(ProcessPaths paths) {
  return std::make_shared<ProcessCollector>(std::move(paths));
}

}  // namespace memgate::metrics
