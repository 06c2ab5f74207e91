// The knowledge-base artifact's bytes, written and read as streams.
//
// Format: "MGKB", a format byte (1), three zero bytes, the image size (8 bytes,
// little-endian), then one zstd frame of the SQLite database image, with its
// content size and content checksum. ArtifactWriter compresses an image fed to
// it in slices of any size into pieces of about 1 MiB; read_artifact()
// decompresses a ByteSource straight into one buffer allocated once the header
// is known. Neither ever holds a second whole copy of the artifact or the image.
//
// Not thread-safe: one thread uses a writer, or runs a read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "memgate/base/chunked_bytes.h"
#include "memgate/base/status.h"

namespace memgate::kb {

inline constexpr size_t kArtifactHeaderSize = 16;
inline constexpr uint8_t kArtifactFormat = 1;

// The image size the header at the start of `first_bytes` declares (only the
// first 16 bytes are read), e.g. to predict a load's memory before fetching the
// rest. kInvalidArgument when there are fewer than 16 bytes, the magic is wrong
// or the format is not ours.
Result<uint64_t> artifact_image_size(std::string_view first_bytes);

// Compresses one image of a declared size into artifact pieces as it is fed.
class ArtifactWriter {
 public:
  struct Options {
    int level = 3;       // zstd level
    int workers = 0;     // zstd threads (more memory: a job buffer each); 0: on the calling thread
    size_t piece_size = ChunkedBytes::kDefaultPiece;
  };
  // A writer for an image of exactly `image_size` bytes. kResourceExhausted when
  // zstd cannot make its context.
  static Result<std::unique_ptr<ArtifactWriter>> start(uint64_t image_size, const Options& options);
  ~ArtifactWriter();
  ArtifactWriter(const ArtifactWriter&) = delete;
  ArtifactWriter& operator=(const ArtifactWriter&) = delete;

  // Compresses the next bytes of the image. kInvalidArgument past the declared
  // size, kInternal when zstd fails; the writer is unusable after an error.
  Status write(std::string_view bytes);
  // Ends the frame and hands over the artifact (header included).
  // kInvalidArgument when fewer bytes were written than declared.
  Result<ChunkedBytes> finish();

 private:
  ArtifactWriter() = default;
  Status drain(int directive, std::string_view bytes);
  void push_piece();

  void* cctx_ = nullptr;  // ZSTD_CCtx
  uint64_t image_size_ = 0;
  uint64_t written_ = 0;
  size_t piece_size_ = ChunkedBytes::kDefaultPiece;
  std::string piece_;  // the piece being filled: piece_size_ bytes, used_ of them written
  size_t used_ = 0;
  ChunkedBytes out_;
  bool failed_ = false;
};

// Given the declared image size, returns the buffer of that many bytes to
// decompress into (owned by the caller), or a status refusing the load.
using ImageAllocator = std::function<Result<unsigned char*>(uint64_t image_size)>;

// Reads the artifact in `source` to its end: once the header and the zstd frame
// header are in, calls `allocate` once, then decompresses piece by piece into
// the buffer it returned, dropping each piece when used. Returns the artifact's
// size in bytes. Fails with kInvalidArgument when the bytes are not an artifact
// (bad header, frame shorter or longer than declared, bytes after the frame,
// failed checksum), with the source's error as it is (kUnavailable for a
// transport), or with allocate's refusal. On failure the buffer (when one was
// allocated) holds garbage; the caller frees it.
Result<uint64_t> read_artifact(ByteSource& source, const ImageAllocator& allocate);

}  // namespace memgate::kb
