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

std::vector<std::string> split_origin_list(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

Status check_origin_list(std::string_view text) {
  std::vector<std::string> origins = split_origin_list(text);
  for (const std::string& o : origins) {
    bool scheme = o.rfind("http://", 0) == 0 || o.rfind("https://", 0) == 0;
    size_t host = o.find("://");
    bool has_path = host != std::string::npos && o.find('/', host + 3) != std::string::npos;
    if (o != "*" && (!scheme || has_path || o.size() <= host + 3))
      return InvalidArgument("expected a comma-separated list of origins such as https://app.example:8443, or *");
  }
  if (origins.empty()) return InvalidArgument("expected at least one origin, or *");
  return Status::Ok();
}

}  // namespace memgate::http
