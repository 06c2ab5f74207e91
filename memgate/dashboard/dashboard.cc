#include "memgate/dashboard/dashboard.h"

#include <algorithm>

#include "memgate/dashboard/assets.h"

namespace memgate::dashboard {

namespace {

constexpr std::string_view kIndex = "/dashboard/index.html";
constexpr std::string_view kPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// If-None-Match holds our validator (alone, in a list, or as "*").
bool matches(std::string_view if_none_match, std::string_view etag) {
  if (if_none_match.empty()) return false;
  if (if_none_match == "*") return true;
  size_t pos = 0;
  while (pos < if_none_match.size()) {
    size_t comma = if_none_match.find(',', pos);
    std::string_view item = if_none_match.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == etag) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

}  // namespace

const Asset* find_asset(std::string_view path) {
  std::span<const Asset> all = assets();
  auto it = std::find_if(all.begin(), all.end(), [&](const Asset& a) { return a.path == path; });
  return it == all.end() ? nullptr : &*it;
}

http::Response respond(std::string_view path, std::string_view if_none_match) {
  if (path == "/" || path == "/dashboard" || path == "/dashboard/") path = kIndex;
  const Asset* asset = find_asset(path);
  if (!asset) return http::Response::error(404, "not_found", "no such file in the admin page's bundle");
  const bool page = asset->path == kIndex;
  http::Response res;
  res.header("ETag", std::string(asset->etag));
  res.header("Cache-Control", page || !asset->path.starts_with("/dashboard/assets/")
                                  ? "no-cache"
                                  : "public, max-age=31536000, immutable");
  res.header("X-Content-Type-Options", "nosniff");
  res.header("Referrer-Policy", "no-referrer");
  if (page) res.header("Content-Security-Policy", std::string(kPolicy));
  if (matches(if_none_match, asset->etag)) {
    res.status = 304;
    return res;
  }
  res.status = 200;
  res.content_type = std::string(asset->content_type);
  res.body = std::string(asset->body);
  return res;
}

void add_routes(http::Router& router) {
  auto handler = [](const http::Request& req) { return respond(req.path(), req.header("if-none-match")); };
  (void)router.add(http::Method::kGet, "/", handler);
  (void)router.add(http::Method::kGet, "/dashboard", handler);
  (void)router.add(http::Method::kGet, "/dashboard/*", handler);
}

}  // namespace memgate::dashboard
