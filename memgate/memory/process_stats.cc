#include "memgate/memory/process_stats.h"

#include "memgate/memory/text_file.h"

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

}  // namespace memgate::memory
