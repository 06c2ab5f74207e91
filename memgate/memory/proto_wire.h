// ProtoWriter: the few pieces of the protocol buffers wire format that the pprof
// encoder needs, written from the encoding's public description: base-128
// varints (wire type 0) and length-delimited fields (wire type 2) for strings,
// nested messages and packed repeated varints. No schema, no reflection, no
// reading: the caller knows its field numbers and emits fields in order.
//
// A nested message is written into its own ProtoWriter first and then appended
// with its length, so every length is known when it is written.
//
// Not thread-safe; a writer is a local value.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace memgate::memory {

class ProtoWriter {
 public:
  // Wire types (the low three bits of a field's key).
  static constexpr uint32_t kVarint = 0;
  static constexpr uint32_t kLengthDelimited = 2;

  // A varint field (uint64, int64 as two's complement, bool). Zero is written
  // too: proto3 readers treat an absent and a zero field alike, so callers skip
  // zeros themselves where the bytes matter.
  void varint(uint32_t field, uint64_t value) {
    key(field, kVarint);
    raw_varint(value);
  }
  void int64(uint32_t field, int64_t value) { varint(field, static_cast<uint64_t>(value)); }

  // A length-delimited field holding `bytes` as they are (a string, or an
  // already encoded message).
  void bytes(uint32_t field, std::string_view value) {
    key(field, kLengthDelimited);
    raw_varint(value.size());
    out_.append(value);
  }
  void message(uint32_t field, const ProtoWriter& sub) { bytes(field, sub.data()); }

  // A packed repeated varint field: one key, the total length, then the values.
  // Nothing is written for an empty list.
  void packed(uint32_t field, std::span<const uint64_t> values) {
    if (values.empty()) return;
    size_t length = 0;
    for (uint64_t v : values) length += varint_size(v);
    key(field, kLengthDelimited);
    raw_varint(length);
    for (uint64_t v : values) raw_varint(v);
  }

  const std::string& data() const { return out_; }
  std::string take() { return std::move(out_); }

  // The bytes a varint takes: 1 for 0..127, up to 10 for 2^63 and above.
  static size_t varint_size(uint64_t value) {
    size_t n = 1;
    while (value >= 0x80) {
      value >>= 7;
      ++n;
    }
    return n;
  }

 private:
  void key(uint32_t field, uint32_t wire_type) { raw_varint((static_cast<uint64_t>(field) << 3) | wire_type); }
  void raw_varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }

  std::string out_;
};

}  // namespace memgate::memory
