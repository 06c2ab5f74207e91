// Media types in Content-Type headers: one rule for every route that only
// takes one kind of body (the coach, /mcp). Pure functions; thread-safe.
#pragma once

#include <string_view>

namespace memgate::http {

// True when `content_type` (a Content-Type header value) names `type`
// (lower-case, e.g. "application/json"): the part before any ';' parameter,
// trimmed, compared case-insensitively. "application/json; charset=utf-8" is
// application/json; "text/plain; x=application/json" is not.
bool is_media_type(std::string_view content_type, std::string_view type);

}  // namespace memgate::http
