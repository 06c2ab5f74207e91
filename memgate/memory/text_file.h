// Small helpers for the kernel's text files (/proc, /sys/fs/cgroup): read a whole
// file, parse a decimal number. Used by memory/ and metrics/; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "memgate/base/status.h"

namespace memgate::memory {

// The whole content of a file, or nullopt when it cannot be opened or read.
// Meant for small pseudo-files (their size is unknown until read, so it reads in
// chunks instead of trusting st_size, which /proc reports as 0).
std::optional<std::string> read_text_file(const std::string& path);

// The whole content of a file of at most `max_bytes` (a file we wrote, or a
// pseudo-file of unknown size). Fails with kResourceExhausted when it holds
// more, without reading past max_bytes + 1, and kInternal when it cannot be
// opened or read (the message names the path and the error).
Result<std::string> read_file_bounded(const std::string& path, size_t max_bytes);

// Parses an unsigned decimal, ignoring surrounding whitespace. nullopt for
// anything else (empty, sign, trailing garbage, overflow).
std::optional<uint64_t> parse_u64(std::string_view text);

// Whitespace trimmed from both ends.
std::string_view trim(std::string_view text);

}  // namespace memgate::memory
