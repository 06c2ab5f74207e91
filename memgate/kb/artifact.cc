// Artifact streams: zstd's streaming API on both sides.
//
// Writing. ZSTD_compressStream2 with the image size pledged up front (so the
// frame carries its content size, as ZSTD_compress2 wrote it before), output
// straight into the tail of the current piece; a full piece is moved into the
// ChunkedBytes and a fresh one started. So the compressed bytes exist once, and
// nothing of compressBound size is ever allocated.
//
// Reading. The first bytes are gathered until the artifact header and the zstd
// frame header are both in (a header may arrive split over pieces of any size),
// checked against each other, and only then is the image buffer allocated.
// The decompression context is told the output buffer is stable
// (ZSTD_d_stableOutBuffer), so zstd matches against the image itself instead of
// keeping a window buffer of its own: the load costs the image plus one piece
// plus the context's ~200 KB. The content checksum is checked by zstd at the
// frame's end; the source is then read to its end marker, and any byte after
// the frame is refused.
#include "memgate/kb/artifact.h"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_d_stableOutBuffer, ZSTD_getFrameHeader
#include <zstd.h>

#include <cstring>

namespace memgate::kb {
namespace {

constexpr char kMagic[4] = {'M', 'G', 'K', 'B'};
constexpr uint64_t kMinImage = 512;  // an SQLite database is at least one page

ZSTD_CCtx* cctx_of(void* p) { return static_cast<ZSTD_CCtx*>(p); }

}  // namespace

Result<uint64_t> artifact_image_size(std::string_view first_bytes) {
  if (first_bytes.size() < kArtifactHeaderSize || std::memcmp(first_bytes.data(), kMagic, 4) != 0)
    return InvalidArgument("not a knowledge-base artifact (bad magic)");
  if (static_cast<uint8_t>(first_bytes[4]) != kArtifactFormat)
    return InvalidArgument("knowledge-base artifact format " + std::to_string(static_cast<uint8_t>(first_bytes[4])) +
                           " is not supported (expected " + std::to_string(kArtifactFormat) + ")");
  uint64_t raw = 0;
  for (int i = 7; i >= 0; --i) raw = (raw << 8) | static_cast<uint8_t>(first_bytes[8 + static_cast<size_t>(i)]);
  return raw;
}

// ---------------------------------------------------------------------------

Result<std::unique_ptr<ArtifactWriter>> ArtifactWriter::start(uint64_t image_size, const Options& options) {
  std::unique_ptr<ArtifactWriter> w(new ArtifactWriter());
  w->cctx_ = ZSTD_createCCtx();
  if (!w->cctx_) return ResourceExhausted("zstd: cannot create a compression context");
  ZSTD_CCtx* cctx = cctx_of(w->cctx_);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, options.level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  if (options.workers > 0) ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, options.workers);  // ignored without threads
  size_t rc = ZSTD_CCtx_setPledgedSrcSize(cctx, image_size);
  if (ZSTD_isError(rc)) return Internal(std::string("zstd: ") + ZSTD_getErrorName(rc));
  w->image_size_ = image_size;
  w->piece_size_ = std::max<size_t>(options.piece_size, kArtifactHeaderSize);
  w->piece_.assign(w->piece_size_, '\0');
  std::memcpy(w->piece_.data(), kMagic, 4);
  w->piece_[4] = static_cast<char>(kArtifactFormat);
  for (int i = 0; i < 8; ++i) w->piece_[8 + static_cast<size_t>(i)] = static_cast<char>((image_size >> (8 * i)) & 0xFF);
  w->used_ = kArtifactHeaderSize;
  return w;
}

ArtifactWriter::~ArtifactWriter() { ZSTD_freeCCtx(cctx_of(cctx_)); }

void ArtifactWriter::push_piece() {
  piece_.resize(used_);
  out_.append(std::move(piece_));
  piece_.assign(piece_size_, '\0');
  used_ = 0;
}

Status ArtifactWriter::drain(int directive, std::string_view bytes) {
  ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
  for (;;) {
    if (used_ == piece_size_) push_piece();
    ZSTD_outBuffer out{piece_.data() + used_, piece_size_ - used_, 0};
    size_t left = ZSTD_compressStream2(cctx_of(cctx_), &out, &in, static_cast<ZSTD_EndDirective>(directive));
    used_ += out.pos;
    if (ZSTD_isError(left)) {
      failed_ = true;
      return Internal(std::string("zstd: ") + ZSTD_getErrorName(left));
    }
    if (directive == ZSTD_e_continue ? in.pos == in.size : left == 0) return Status::Ok();
  }
}

Status ArtifactWriter::write(std::string_view bytes) {
  if (failed_) return Internal("the artifact writer failed earlier");
  if (bytes.size() > image_size_ - written_) {
    failed_ = true;
    return InvalidArgument("the image is longer than the " + std::to_string(image_size_) + " bytes declared");
  }
  written_ += bytes.size();
  return drain(ZSTD_e_continue, bytes);
}

Result<ChunkedBytes> ArtifactWriter::finish() {
  if (failed_) return Internal("the artifact writer failed earlier");
  if (written_ != image_size_)
    return InvalidArgument("the image is " + std::to_string(written_) + " bytes, not the " +
                           std::to_string(image_size_) + " declared");
  if (Status st = drain(ZSTD_e_end, {}); !st.ok()) return st;
  if (used_ > 0) {
    piece_.resize(used_);
    piece_.shrink_to_fit();
    out_.append(std::move(piece_));
  }
  piece_ = std::string();
  used_ = 0;
  failed_ = true;  // finished: no more writes
  return std::move(out_);
}

// ---------------------------------------------------------------------------

Result<uint64_t> read_artifact(ByteSource& source, const ImageAllocator& allocate) {
  // The artifact header and the whole zstd frame header, gathered across pieces.
  constexpr size_t kWanted = kArtifactHeaderSize + ZSTD_FRAMEHEADERSIZE_MAX;
  std::string current;
  uint64_t total = 0;
  bool ended = false;
  while (current.size() < kWanted) {
    Result<std::string> piece = source.next();
    if (!piece.ok()) return piece.status();
    if (piece->empty()) {
      ended = true;
      break;
    }
    total += piece->size();
    if (current.empty()) current = std::move(*piece);
    else current += *piece;
  }
  auto raw = artifact_image_size(current);
  if (!raw.ok()) return raw.status();
  ZSTD_frameHeader frame{};
  size_t need = ZSTD_getFrameHeader(&frame, current.data() + kArtifactHeaderSize, current.size() - kArtifactHeaderSize);
  if (ZSTD_isError(need) || need != 0 || frame.frameType != ZSTD_frame || frame.frameContentSize != *raw ||
      *raw < kMinImage)
    return InvalidArgument("knowledge-base artifact: the compressed frame does not match its header");

  Result<unsigned char*> buffer = allocate(*raw);
  if (!buffer.ok()) return buffer.status();
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) return ResourceExhausted("zstd: cannot create a decompression context");
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_stableOutBuffer, 1);
  ZSTD_outBuffer out{*buffer, *raw, 0};
  auto bad = [](std::string_view why) {
    return InvalidArgument("knowledge-base artifact does not decompress: " + std::string(why));
  };

  bool frame_done = false;
  size_t offset = kArtifactHeaderSize;
  for (;;) {
    ZSTD_inBuffer in{current.data() + offset, current.size() - offset, 0};
    while (in.pos < in.size) {
      if (frame_done) return bad("bytes after the frame");
      size_t before_in = in.pos, before_out = out.pos;
      size_t left = ZSTD_decompressStream(dctx.get(), &out, &in);
      if (ZSTD_isError(left)) return bad(ZSTD_getErrorName(left));
      if (left == 0) frame_done = true;
      else if (in.pos == before_in && out.pos == before_out) return bad("the frame is longer than declared");
    }
    if (ended) break;
    current = std::string();  // release the piece before taking the next
    offset = 0;
    Result<std::string> piece = source.next();
    if (!piece.ok()) return piece.status();
    if (piece->empty()) break;
    total += piece->size();
    current = std::move(*piece);
  }
  if (!frame_done) return bad("the frame is cut short");
  if (out.pos != *raw) return bad("the image is shorter than declared");
  return total;
}

}  // namespace memgate::kb
