#include "memgate/memory/process_stats.h"

#include "memgate/memory/text_file.h"

#include <time.h>
#include <unistd.h>

namespace memgate::memory {

namespace {

// The value of "Key:   1234 kB" in bytes, or 0.
uint64_t status_kb(std::string_view content, std::string_view key) {
  size_t pos = 0;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string_view::npos) eol = content.size();
    std::string_view line = content.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::string_view value = trim(line.substr(key.size() + 1));
      if (value.ends_with("kB")) value.remove_suffix(2);
      return parse_u64(value).value_or(0) * 1024;
    }
  }
  return 0;
}

}  // namespace

ProcessStats read_process_stats(const std::string& proc_status) {
  ProcessStats s;
  std::optional<std::string> content = read_text_file(proc_status);
  if (!content) return s;
  s.rss = status_kb(*content, "VmRSS");
  s.peak_rss = status_kb(*content, "VmHWM");
  s.virtual_size = status_kb(*content, "VmSize");
  return s;
}

std::optional<uint64_t> parse_start_ticks(std::string_view stat) {
  size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view rest = stat.substr(close + 1);
  // After the name: field 3 (state) is the first; field 22 (starttime) the 20th.
  for (int field = 3; field <= 22; ++field) {
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(start);
    size_t end = rest.find(' ');
    std::string_view token = rest.substr(0, end);
    if (field == 22) return parse_u64(trim(token));
    if (end == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(end);
  }
  return std::nullopt;
}

std::optional<int64_t> process_age_ms() {
  std::optional<std::string> stat = read_text_file("/proc/self/stat");
  if (!stat) return std::nullopt;
  std::optional<uint64_t> ticks = parse_start_ticks(*stat);
  long hz = ::sysconf(_SC_CLK_TCK);
  struct timespec now {};
  if (!ticks || hz <= 0 || ::clock_gettime(CLOCK_BOOTTIME, &now) != 0) return std::nullopt;
  int64_t now_ms = static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
  int64_t start_ms = static_cast<int64_t>(*ticks * 1000 / static_cast<uint64_t>(hz));
  return now_ms >= start_ms ? now_ms - start_ms : 0;
}

}  // namespace memgate::memory
