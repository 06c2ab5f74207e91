#include "memgate/base/units.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace memgate {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "1.5GB" into the number "1.5" and the unit "gb" (lower case).
bool split_number(std::string_view s, std::string_view& number, std::string& unit) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return false;
  number = s.substr(0, i);
  unit = lower(trim(s.substr(i)));
  return true;
}

bool parse_decimal(std::string_view number, double& out) {
  if (number.empty() || number.front() == '.' || number.back() == '.') return false;
  if (std::count(number.begin(), number.end(), '.') > 1) return false;
  auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), out);
  return ec == std::errc() && p == number.data() + number.size() && std::isfinite(out);
}

}  // namespace

uint64_t SizeSpec::resolve(uint64_t limit) const {
  if (!is_share) return bytes;
  return static_cast<uint64_t>(static_cast<long double>(limit) * share);
}

std::string SizeSpec::to_string() const {
  if (is_share) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g%%", share * 100.0);
    return buf;
  }
  static constexpr const char* kUnits[] = {"GB", "MB", "KB"};
  static constexpr uint64_t kScale[] = {1ull << 30, 1ull << 20, 1ull << 10};
  for (int i = 0; i < 3; ++i) {
    if (bytes >= kScale[i] && bytes % (kScale[i] / 4) == 0) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "%g%s", static_cast<double>(bytes) / kScale[i], kUnits[i]);
      return buf;
    }
  }
  return std::to_string(bytes);
}

Result<SizeSpec> parse_size(std::string_view text) {
  std::string_view s = trim(text);
  std::string_view number;
  std::string unit;
  if (!split_number(s, number, unit)) return InvalidArgument("not a size");
  double value = 0;
  if (!parse_decimal(number, value)) return InvalidArgument("not a number");
  if (unit == "%") {
    if (value <= 0 || value > 100) return InvalidArgument("a share must be above 0% and at most 100%");
    return SizeSpec::Share(value / 100.0);
  }
  long double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") scale = 1024.0L;
  else if (unit == "m" || unit == "mb" || unit == "mib") scale = 1024.0L * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") scale = 1024.0L * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") scale = 1024.0L * 1024 * 1024 * 1024;
  else return InvalidArgument("unknown unit '" + unit + "'");
  long double bytes = static_cast<long double>(value) * scale;
  if (bytes >= 18446744073709551615.0L) return InvalidArgument("too large");
  if (scale == 1 && number.find('.') != std::string_view::npos)
    return InvalidArgument("a byte count must be a whole number");
  return SizeSpec::Bytes(static_cast<uint64_t>(std::llround(bytes)));
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::string_view s = trim(text);
  if (s == "0") return std::chrono::milliseconds(0);
  std::string_view number;
  std::string unit;
  if (!split_number(s, number, unit)) return InvalidArgument("not a duration");
  double value = 0;
  if (!parse_decimal(number, value)) return InvalidArgument("not a number");
  double ms = 0;
  if (unit == "ms") ms = value;
  else if (unit == "s") ms = value * 1000;
  else if (unit == "m" || unit == "min") ms = value * 60'000;
  else if (unit == "h") ms = value * 3'600'000;
  else if (unit.empty()) return InvalidArgument("a duration needs a unit (ms, s, m, h)");
  else return InvalidArgument("unknown unit '" + unit + "'");
  if (ms > 1e15) return InvalidArgument("too large");
  if (ms != std::floor(ms)) return InvalidArgument("finer than a millisecond");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

Result<bool> parse_bool(std::string_view text) {
  std::string s = lower(trim(text));
  if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
  if (s == "0" || s == "false" || s == "no" || s == "off") return false;
  return InvalidArgument("not a boolean");
}

Result<int64_t> parse_int(std::string_view text, int64_t min, int64_t max) {
  std::string_view s = trim(text);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return InvalidArgument("not a whole number");
  if (v < min || v > max)
    return InvalidArgument("out of range " + std::to_string(min) + ".." + std::to_string(max));
  return v;
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    ++i;
  }
  char buf[32];
  if (i == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[i]);
  return buf;
}

std::string format_duration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace memgate
