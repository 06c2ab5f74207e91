// Origin checks for routes a web page must not reach cross-site (/mcp, the
// coach): one matching rule for every route that has an allow-list. Pure
// function; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::http {

// True when a request with this Origin header value may call the route: an
// entry equals it (scheme, host and port exact), an entry without a port has
// the same scheme and host (any port), or the list holds "*". Callers let a
// request without an Origin header through before asking.
bool origin_allowed(const std::vector<std::string>& allowed, std::string_view origin);

// "a, b ,c" -> {"a", "b", "c"}: a setting's comma-separated origins, blanks
// around entries and empty entries dropped.
std::vector<std::string> split_origin_list(std::string_view text);

// Checks such a setting: each entry scheme://host[:port] (http or https, no
// path) or "*", at least one. InvalidArgument says what is expected.
Status check_origin_list(std::string_view text);

}  // namespace memgate::http
