// The heap profiles the guard writes at an alert (memory_guard.cc names them
// PROFILE_DIR/memgate-<instance>-<unix ms>.heap and puts the path in the
// snapshot's heap_profile), served back by file name on the admin listener
// (/debug/pprof/saved?name=...) so an operator, or the admin page, can fetch
// the profile an alert took without a shell on the host.
//
// Contract: only a plain file name of that shape is accepted (no '/', no
// leading '.', at most 160 bytes), only a regular file (not a symlink) in
// `dir` is read, and at most kMaxSavedProfileBytes of it; anything else is a
// 400 or 404. Profiles are jemalloc's text (what jeprof reads): the addresses in a
// saved dump belong to the process that wrote it, so it is served as written,
// never converted with this process's mappings. Thread-safe; blocks on the
// file read (run it on a worker).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "memgate/http/response.h"

namespace memgate::server {

inline constexpr size_t kMaxSavedProfileBytes = size_t{256} << 20;

// Whether `name` is a file name the guard could have written.
bool saved_profile_name(std::string_view name);

// 200 with the file as an attachment; 400 for a name of another shape, 404
// when no such regular file is in `dir`, 500 past the bound or on a read error.
http::Response saved_profile(const std::string& dir, std::string_view name);

}  // namespace memgate::server
