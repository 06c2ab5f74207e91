// gzip compression (RFC 1952) through zlib, for what this process hands out as
// a .gz body (the pprof heap profile). Thread-safe: each call has its own stream.
#pragma once

#include <string>
#include <string_view>

#include "memgate/base/status.h"

namespace memgate::memory {

// `data` as one gzip member, at zlib's default level. Fails with kInternal only
// when zlib refuses (out of memory); the output is at most a little larger
// than the input.
Result<std::string> gzip_compress(std::string_view data);

}  // namespace memgate::memory
