#include "memgate/base/chunked_bytes.h"

#include <algorithm>

namespace memgate {

ChunkedBytes ChunkedBytes::copy_of(std::string_view bytes, size_t piece_size) {
  ChunkedBytes out;
  if (piece_size == 0) piece_size = std::max<size_t>(1, bytes.size());
  for (size_t at = 0; at < bytes.size(); at += piece_size) out.append(std::string(bytes.substr(at, piece_size)));
  return out;
}

ChunkedBytes ChunkedBytes::from_string(std::string bytes) {
  ChunkedBytes out;
  out.append(std::move(bytes));
  return out;
}

void ChunkedBytes::append(std::string piece) {
  if (piece.empty()) return;
  size_ += piece.size();
  pieces_.push_back(std::move(piece));
}

std::string ChunkedBytes::take_front() {
  if (pieces_.empty()) return {};
  std::string out = std::move(pieces_.front());
  pieces_.pop_front();
  size_ -= out.size();
  return out;
}

std::string ChunkedBytes::flatten() const {
  std::string out;
  out.reserve(size_);
  for (const std::string& p : pieces_) out += p;
  return out;
}

std::string ChunkedBytes::prefix(size_t n) const {
  std::string out;
  for (const std::string& p : pieces_) {
    if (out.size() >= n) break;
    out.append(p, 0, std::min(p.size(), n - out.size()));
  }
  return out;
}

namespace {

class TakeSource final : public ByteSource {
 public:
  explicit TakeSource(ChunkedBytes bytes) : bytes_(std::move(bytes)), size_(bytes_.size()) {}
  uint64_t size() const override { return size_; }
  Result<std::string> next() override { return bytes_.take_front(); }

 private:
  ChunkedBytes bytes_;
  uint64_t size_;
};

class ViewSource final : public ByteSource {
 public:
  ViewSource(std::string_view bytes, size_t piece) : bytes_(bytes), piece_(std::max<size_t>(1, piece)) {}
  uint64_t size() const override { return bytes_.size(); }
  Result<std::string> next() override {
    std::string out(bytes_.substr(at_, piece_));
    at_ += out.size();
    return out;
  }

 private:
  std::string_view bytes_;
  size_t piece_;
  size_t at_ = 0;
};

}  // namespace

std::unique_ptr<ByteSource> take_source(ChunkedBytes bytes) { return std::make_unique<TakeSource>(std::move(bytes)); }

std::unique_ptr<ByteSource> view_source(std::string_view bytes, size_t piece_size) {
  return std::make_unique<ViewSource>(bytes, piece_size);
}

Result<std::string> read_all(ByteSource& source, uint64_t max_bytes) {
  if (source.size() > max_bytes)
    return ResourceExhausted("the stream declares " + std::to_string(source.size()) + " bytes, more than the " +
                             std::to_string(max_bytes) + " allowed");
  std::string out;
  out.reserve(source.size());
  for (;;) {
    Result<std::string> piece = source.next();
    if (!piece.ok()) return piece.status();
    if (piece->empty()) return out;
    if (out.size() + piece->size() > max_bytes)
      return ResourceExhausted("the stream is longer than the " + std::to_string(max_bytes) + " bytes allowed");
    out += *piece;
  }
}

}  // namespace memgate
