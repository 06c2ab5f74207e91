// Tests only: a reader of the protobuf wire format and of the profile.proto
// fields memgate writes, independent of the writer (its own varint loop, its own
// field numbers), so a test can take an encoded profile apart and look at each
// field. Every read is bounds-checked and fails the decode instead of reading
// past the input. Also gunzip, for what the HTTP route serves.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memgate::memory::testing {

// One field as it appears on the wire.
struct WireField {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t varint = 0;    // wire type 0
  std::string_view bytes;  // wire type 2
};

inline bool read_varint(std::string_view& in, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (in.empty()) return false;
    auto b = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    if (shift == 63 && b > 1) return false;  // more than 64 bits
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

// All fields of one message, in wire order; nullopt when malformed or when a
// wire type other than 0 and 2 appears (the pprof writer uses no others).
inline std::optional<std::vector<WireField>> read_fields(std::string_view in) {
  std::vector<WireField> out;
  while (!in.empty()) {
    uint64_t key = 0;
    if (!read_varint(in, &key)) return std::nullopt;
    WireField f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire_type = static_cast<uint32_t>(key & 7);
    if (f.wire_type == 0) {
      if (!read_varint(in, &f.varint)) return std::nullopt;
    } else if (f.wire_type == 2) {
      uint64_t n = 0;
      if (!read_varint(in, &n) || n > in.size()) return std::nullopt;
      f.bytes = in.substr(0, n);
      in.remove_prefix(n);
    } else {
      return std::nullopt;
    }
    out.push_back(f);
  }
  return out;
}

// A packed repeated varint field's values.
inline std::optional<std::vector<uint64_t>> read_packed(std::string_view in) {
  std::vector<uint64_t> out;
  while (!in.empty()) {
    uint64_t v = 0;
    if (!read_varint(in, &v)) return std::nullopt;
    out.push_back(v);
  }
  return out;
}

// The decoded profile, strings resolved through the string table.
struct DecodedProfile {
  struct Sample {
    std::vector<uint64_t> location_ids;
    std::vector<int64_t> values;
    std::map<std::string, int64_t> num_labels;
  };
  struct Mapping {
    uint64_t id = 0, start = 0, limit = 0, offset = 0;
    std::string filename, build_id;
    bool has_functions = false;
  };
  struct Location {
    uint64_t id = 0, mapping_id = 0, address = 0;
    std::vector<uint64_t> function_ids;  // one per line record
  };
  struct Function {
    uint64_t id = 0;
    std::string name, system_name;
  };
  std::vector<std::pair<std::string, std::string>> sample_types;
  std::vector<Sample> samples;
  std::vector<Mapping> mappings;
  std::vector<Location> locations;
  std::vector<Function> functions;
  std::vector<std::string> strings;
  int64_t time_nanos = 0, period = 0;
  std::pair<std::string, std::string> period_type;
  std::string default_sample_type;
  std::vector<std::string> comments;

  const Location* location(uint64_t id) const {
    for (const auto& l : locations)
      if (l.id == id) return &l;
    return nullptr;
  }
  const Function* function(uint64_t id) const {
    for (const auto& f : functions)
      if (f.id == id) return &f;
    return nullptr;
  }
  const Mapping* mapping(uint64_t id) const {
    for (const auto& m : mappings)
      if (m.id == id) return &m;
    return nullptr;
  }
};

// Decodes profile.proto bytes (uncompressed); nullopt when any field is
// malformed or a string index points outside the table.
inline std::optional<DecodedProfile> decode_profile(std::string_view bytes) {
  auto top = read_fields(bytes);
  if (!top) return std::nullopt;
  DecodedProfile p;
  for (const auto& f : *top)
    if (f.number == 6 && f.wire_type == 2) p.strings.emplace_back(f.bytes);
  bool ok = true;
  auto str = [&](uint64_t i) -> std::string {
    if (i >= p.strings.size()) {
      ok = false;
      return "";
    }
    return p.strings[i];
  };
  auto value_type = [&](std::string_view b) {
    std::pair<std::string, std::string> vt{"", ""};
    auto fs = read_fields(b);
    if (!fs) ok = false;
    else
      for (const auto& g : *fs) {
        if (g.number == 1) vt.first = str(g.varint);
        if (g.number == 2) vt.second = str(g.varint);
      }
    return vt;
  };
  for (const auto& f : *top) {
    switch (f.number) {
      case 1: p.sample_types.push_back(value_type(f.bytes)); break;
      case 2: {
        DecodedProfile::Sample s;
        auto fs = read_fields(f.bytes);
        if (!fs) return std::nullopt;
        for (const auto& g : *fs) {
          if (g.number == 1 || g.number == 2) {
            auto vs = g.wire_type == 2 ? read_packed(g.bytes) : std::optional(std::vector<uint64_t>{g.varint});
            if (!vs) return std::nullopt;
            for (uint64_t v : *vs) {
              if (g.number == 1) s.location_ids.push_back(v);
              else s.values.push_back(static_cast<int64_t>(v));
            }
          } else if (g.number == 3) {
            auto ls = read_fields(g.bytes);
            if (!ls) return std::nullopt;
            std::string key;
            int64_t num = 0;
            for (const auto& l : *ls) {
              if (l.number == 1) key = str(l.varint);
              if (l.number == 3) num = static_cast<int64_t>(l.varint);
            }
            s.num_labels[key] = num;
          }
        }
        p.samples.push_back(std::move(s));
        break;
      }
      case 3: {
        DecodedProfile::Mapping m;
        auto fs = read_fields(f.bytes);
        if (!fs) return std::nullopt;
        for (const auto& g : *fs) {
          if (g.number == 1) m.id = g.varint;
          if (g.number == 2) m.start = g.varint;
          if (g.number == 3) m.limit = g.varint;
          if (g.number == 4) m.offset = g.varint;
          if (g.number == 5) m.filename = str(g.varint);
          if (g.number == 6) m.build_id = str(g.varint);
          if (g.number == 7) m.has_functions = g.varint != 0;
        }
        p.mappings.push_back(std::move(m));
        break;
      }
      case 4: {
        DecodedProfile::Location l;
        auto fs = read_fields(f.bytes);
        if (!fs) return std::nullopt;
        for (const auto& g : *fs) {
          if (g.number == 1) l.id = g.varint;
          if (g.number == 2) l.mapping_id = g.varint;
          if (g.number == 3) l.address = g.varint;
          if (g.number == 4) {
            auto line = read_fields(g.bytes);
            if (!line) return std::nullopt;
            for (const auto& h : *line)
              if (h.number == 1) l.function_ids.push_back(h.varint);
          }
        }
        p.locations.push_back(l);
        break;
      }
      case 5: {
        DecodedProfile::Function fn;
        auto fs = read_fields(f.bytes);
        if (!fs) return std::nullopt;
        for (const auto& g : *fs) {
          if (g.number == 1) fn.id = g.varint;
          if (g.number == 2) fn.name = str(g.varint);
          if (g.number == 3) fn.system_name = str(g.varint);
        }
        p.functions.push_back(std::move(fn));
        break;
      }
      case 9: p.time_nanos = static_cast<int64_t>(f.varint); break;
      case 11: p.period_type = value_type(f.bytes); break;
      case 12: p.period = static_cast<int64_t>(f.varint); break;
      case 13: p.comments.push_back(str(f.varint)); break;
      case 14: p.default_sample_type = str(f.varint); break;
      default: break;
    }
  }
  if (!ok) return std::nullopt;
  return p;
}

// gunzip of one gzip member; nullopt when it is not one, or inflates past `max`.
inline std::optional<std::string> gunzip(std::string_view gz, size_t max = 64u << 20) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return std::nullopt;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (out.size() > max) rc = Z_MEM_ERROR;
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace memgate::memory::testing
