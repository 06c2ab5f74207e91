// JSON string escaping for text that is written without a JSON library: log
// lines and the small fixed-shape bodies (errors, pending routes) served on hot
// paths. Output is valid inside a JSON string literal: quotes, backslashes and
// control characters are escaped; other bytes (UTF-8 included) pass unchanged.
#pragma once

#include <string>
#include <string_view>

namespace memgate {

// Appends `text` escaped for a JSON string literal (without the quotes).
void append_json_escaped(std::string& out, std::string_view text);

// The same, as a new string.
std::string json_escape(std::string_view text);

}  // namespace memgate
