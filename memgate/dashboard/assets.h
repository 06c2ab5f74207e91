// The operator's page as files compiled into the binary.
//
// At build time the front end in web/ is built with Vite and every file it
// produced becomes a byte array in a generated source (embed.cmake), so the
// binary serves its page without files beside it and without any outside
// network. Where npm was not there at build time (MEMGATE_DASHBOARD=AUTO), the
// bundle is one small page saying so (bundle_built() is false).
//
// Plain constant data; thread-safe.
#pragma once

#include <span>
#include <string_view>

namespace memgate::dashboard {

struct Asset {
  std::string_view path;          // "/dashboard/index.html", "/dashboard/assets/index-1a2b3c.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
  std::string_view etag;          // a quoted strong validator: "\"0123456789abcdef\""
};

// Every file of the bundle, sorted by path. Generated.
std::span<const Asset> assets();
// True when the bundle is the Vite build; false for the fallback page. Generated.
bool bundle_built();
// The asset at `path`, or nullptr.
const Asset* find_asset(std::string_view path);

}  // namespace memgate::dashboard
