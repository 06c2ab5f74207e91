#include "memgate/server/saved_profiles.h"

#include <sys/stat.h>

#include "memgate/memory/text_file.h"

namespace memgate::server {

bool saved_profile_name(std::string_view name) {
  constexpr std::string_view kPrefix = "memgate-", kSuffix = ".heap";
  if (name.size() > 160 || name.size() <= kPrefix.size() + kSuffix.size()) return false;
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.';
    if (!ok) return false;
  }
  return name.find("..") == std::string_view::npos;
}

http::Response saved_profile(const std::string& dir, std::string_view name) {
  if (!saved_profile_name(name))
    return http::Response::error(400, "invalid_argument",
                           "name must be the file name of a heap profile the guard wrote (memgate-...heap)");
  std::string path = dir + "/" + std::string(name);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return http::Response::error(404, "not_found", "no such heap profile in PROFILE_DIR");
  if (static_cast<uint64_t>(st.st_size) > kMaxSavedProfileBytes)
    return http::Response::error(500, "resource_exhausted", "the heap profile is larger than this route serves (256 MiB)");
  auto body = memory::read_file_bounded(path, kMaxSavedProfileBytes);
  if (!body.ok()) {
    if (body.status().code() == Code::kResourceExhausted)
      return http::Response::error(500, "resource_exhausted", "the heap profile is larger than this route serves (256 MiB)");
    return http::Response::error(500, "internal", "the heap profile could not be read");
  }
  http::Response res;
  res.status = 200;
  res.content_type = "application/octet-stream";
  res.body = std::move(*body);
  res.header("Content-Disposition", "attachment; filename=\"" + std::string(name) + "\"");
  return res;
}

}  // namespace memgate::server
