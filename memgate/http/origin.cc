#include "memgate/http/origin.h"

#include <algorithm>

namespace memgate::http {

bool origin_allowed(const std::vector<std::string>& allowed_list, std::string_view origin) {
  for (const std::string& allowed : allowed_list) {
    if (allowed == "*" || allowed == origin) return true;
    // An entry without a port allows that scheme and host on any port.
    size_t scheme_end = allowed.find("://");
    size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    size_t bracket = allowed.rfind(']');
    size_t colon = allowed.find(':', bracket == std::string::npos ? host_start : bracket);
    if (colon != std::string::npos) continue;
    if (origin.size() > allowed.size() + 1 && origin.substr(0, allowed.size()) == allowed &&
        origin[allowed.size()] == ':') {
      std::string_view port = origin.substr(allowed.size() + 1);
      if (!port.empty() && port.size() <= 5 &&
          std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return true;
    }
  }
  return false;
}

}  // namespace memgate::http
