// ChunkedBytes and ByteSource: large artifacts held and moved piece by piece.
//
// A module's artifact (a compressed index, say) can be tens of megabytes. Held as
// one std::string, every step that touches it (build, publish, fetch, load) keeps
// a whole copy alive next to what it produces, and a load's peak becomes the
// compressed copy plus the image. Held as pieces, a producer appends as it goes,
// a publisher writes piece by piece, and a consumer that takes pieces from the
// front releases each one as soon as it has used it, so a load's peak is the
// image plus one piece.
//
// ChunkedBytes is a value type (not thread-safe; move it between threads).
// ByteSource is a one-pass stream of pieces with a declared total size; one
// thread reads it. Implementations: ChunkedBytes::source() (takes the pieces
// out as they are read), and coord's streaming artifact read.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "memgate/base/status.h"

namespace memgate {

class ChunkedBytes {
 public:
  ChunkedBytes() = default;
  // Splits `bytes` into pieces of at most `piece_size` (one piece when 0).
  static ChunkedBytes copy_of(std::string_view bytes, size_t piece_size = kDefaultPiece);
  static ChunkedBytes from_string(std::string bytes);  // one piece, no copy

  void append(std::string piece);  // an empty piece is ignored
  uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::deque<std::string>& pieces() const { return pieces_; }
  // Removes and returns the first piece; empty when there is none.
  std::string take_front();
  // The bytes as one string (a copy): for small artifacts and tests.
  std::string flatten() const;
  // The first `n` bytes (fewer when shorter), across pieces.
  std::string prefix(size_t n) const;

  static constexpr size_t kDefaultPiece = 1 << 20;

 private:
  std::deque<std::string> pieces_;
  uint64_t size_ = 0;
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // The total the stream declares (bounded by whoever made it).
  virtual uint64_t size() const = 0;
  // The next piece, moved out; an empty string at the end. An error ends the
  // stream: kUnavailable (transport), kInvalidArgument (the bytes failed their
  // checksum, a piece was missing or the stream ran past its declared size). A consumer must treat everything it read
  // as untrusted until next() has returned the empty end marker.
  virtual Result<std::string> next() = 0;
};

// Streams a ChunkedBytes, releasing each piece as it is read.
std::unique_ptr<ByteSource> take_source(ChunkedBytes bytes);
// Streams a view in pieces of `piece_size`, without copying more than a piece.
std::unique_ptr<ByteSource> view_source(std::string_view bytes, size_t piece_size = ChunkedBytes::kDefaultPiece);
// Reads a whole source into one string, refusing more than `max_bytes`
// (kResourceExhausted).
Result<std::string> read_all(ByteSource& source, uint64_t max_bytes);

}  // namespace memgate
