#include "memgate/http/media_type.h"

#include <cctype>

namespace memgate::http {

bool is_media_type(std::string_view content_type, std::string_view type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  if (t.size() != type.size()) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(t[i])) != static_cast<unsigned char>(type[i])) return false;
  }
  return true;
}

}  // namespace memgate::http
