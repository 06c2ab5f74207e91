// Parsing of the value forms settings accept: sizes, shares of a limit, durations,
// booleans and integers. Pure functions, thread-safe.
//
// Sizes are binary: 1KB = 1024 bytes, 1MB = 1024 KB, 1GB = 1024 MB (as Node's
// --max-old-space-size counts megabytes). KiB/MiB/GiB and K/M/G are accepted as
// the same units. A size setting may also be a share of the container's memory
// limit, "75%", resolved against that limit when it is known.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "memgate/base/status.h"

namespace memgate {

// A size in bytes, or a share of a limit to be resolved later.
struct SizeSpec {
  uint64_t bytes = 0;    // when !is_share
  double share = 0.0;    // 0 < share <= 1, when is_share
  bool is_share = false;

  static SizeSpec Bytes(uint64_t b) { return {b, 0.0, false}; }
  static SizeSpec Share(double s) { return {0, s, true}; }

  // The size in bytes: the absolute value, or share * limit.
  uint64_t resolve(uint64_t limit) const;
  // "1.5GB" / "75%": a form parse_size accepts back.
  std::string to_string() const;
  bool operator==(const SizeSpec&) const = default;
};

// Accepted form, for error messages.
inline constexpr std::string_view kSizeForm =
    "a size such as 1610612736, 1536MB, 1.5GB, 512KB, or a share of the memory limit such as 75%";
inline constexpr std::string_view kDurationForm =
    "a duration such as 250ms, 15s, 5m or 1h (0 alone means zero)";
inline constexpr std::string_view kBoolForm = "true/false, 1/0, yes/no or on/off";

// Parses "1.5GB", "1536MB", "1610612736", "75%". Fails on negatives, empty
// strings, unknown units, overflow, and shares outside (0, 100].
Result<SizeSpec> parse_size(std::string_view text);

// Parses "250ms", "15s", "5m", "1h", "1.5s", "0". A bare number other than 0 fails:
// "30" could be seconds or milliseconds.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);

Result<bool> parse_bool(std::string_view text);

// Parses a whole decimal integer within [min, max].
Result<int64_t> parse_int(std::string_view text, int64_t min, int64_t max);

// "1.5 GiB", "512 KiB", "12 B": for people.
std::string format_bytes(uint64_t bytes);
// "250ms", "15s", "5m": the shortest exact form.
std::string format_duration(std::chrono::milliseconds d);

}  // namespace memgate
