// One deflate stream with the gzip wrapper (windowBits 15 + 16), sized once with
// deflateBound so the whole input is compressed by a single deflate(Z_FINISH).
#include "memgate/memory/gzip.h"

#include <zlib.h>

#include <limits>

namespace memgate::memory {

Result<std::string> gzip_compress(std::string_view data) {
  if (data.size() > std::numeric_limits<uInt>::max()) return Internal("gzip input over 4 GiB");
  z_stream z{};
  constexpr int kGzipWindow = 15 + 16;  // 32 KiB window, gzip header and trailer
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindow, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return Internal("zlib deflateInit2 failed");
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  size_t written = out.size() - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return Internal("zlib deflate did not finish");
  out.resize(written);
  return out;
}

}  // namespace memgate::memory
