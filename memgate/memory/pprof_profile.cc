// The pprof encoder: the model of pprof_profile.h written as profile.proto.
//
// Field numbers are those the format's public definition gives (Profile:
// sample_type 1, sample 2, mapping 3, location 4, function 5, string_table 6, time_nanos 9,
// period_type 11, period 12, comment 13, default_sample_type 14; the nested
// messages' own numbers are at each writer below). Every string goes through
// one table whose entry 0 is "", as the format requires; the table is filled
// first, in a pass over the model, so that the fields can then be written in
// field-number order, which is what the reference encoders do (readers accept
// any order). Zero-valued scalars are left out, as proto3 would.
#include "memgate/memory/pprof_profile.h"

#include <string_view>
#include <unordered_map>

#include "memgate/memory/proto_wire.h"

namespace memgate::memory {
namespace {

class StringTable {
 public:
  StringTable() { intern(""); }
  uint64_t intern(const std::string& s) {
    auto [it, added] = index_.try_emplace(s, strings_.size());
    if (added) strings_.push_back(s);
    return it->second;
  }
  uint64_t at(const std::string& s) const { return index_.at(s); }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::unordered_map<std::string, uint64_t> index_;
  std::vector<std::string> strings_;
};

void intern_all(const PprofProfile& p, StringTable& t) {
  for (const auto& v : p.sample_types) {
    t.intern(v.type);
    t.intern(v.unit);
  }
  for (const auto& s : p.samples)
    for (const auto& l : s.labels) {
      t.intern(l.key);
      t.intern(l.unit);
    }
  for (const auto& m : p.mappings) {
    t.intern(m.filename);
    t.intern(m.build_id);
  }
  for (const auto& f : p.functions) {
    t.intern(f.name);
    t.intern(f.system_name);
  }
  t.intern(p.period_type.type);
  t.intern(p.period_type.unit);
  t.intern(p.default_sample_type);
  for (const auto& c : p.comments) t.intern(c);
}

void put_nonzero(ProtoWriter& w, uint32_t field, uint64_t value) {
  if (value != 0) w.varint(field, value);
}

// ValueType: type 1, unit 2 (string table indices).
ProtoWriter value_type(const PprofValueType& v, const StringTable& t) {
  ProtoWriter w;
  put_nonzero(w, 1, t.at(v.type));
  put_nonzero(w, 2, t.at(v.unit));
  return w;
}

// Sample: location_id 1 (packed), value 2 (packed), label 3.
// Label: key 1, num 3, num_unit 4.
ProtoWriter sample(const PprofSample& s, const StringTable& t) {
  ProtoWriter w;
  w.packed(1, s.location_ids);
  std::vector<uint64_t> values(s.values.begin(), s.values.end());  // two's complement, as int64 is encoded
  w.packed(2, values);
  for (const auto& l : s.labels) {
    ProtoWriter label;
    put_nonzero(label, 1, t.at(l.key));
    put_nonzero(label, 3, static_cast<uint64_t>(l.num));
    put_nonzero(label, 4, t.at(l.unit));
    w.message(3, label);
  }
  return w;
}

// Mapping: id 1, memory_start 2, memory_limit 3, file_offset 4, filename 5,
// build_id 6, has_functions 7 (has_filenames 8, has_line_numbers 9 and
// has_inline_frames 10 stay false: no line information is written).
ProtoWriter mapping(const PprofMapping& m, uint64_t id, const StringTable& t) {
  ProtoWriter w;
  w.varint(1, id);
  put_nonzero(w, 2, m.memory_start);
  put_nonzero(w, 3, m.memory_limit);
  put_nonzero(w, 4, m.file_offset);
  put_nonzero(w, 5, t.at(m.filename));
  put_nonzero(w, 6, t.at(m.build_id));
  put_nonzero(w, 7, m.has_functions ? 1 : 0);
  return w;
}

// Location: id 1, mapping_id 2, address 3, line 4; Line: function_id 1 (its
// line 2 unknown, so left out).
ProtoWriter location(const PprofLocation& l, uint64_t id) {
  ProtoWriter w;
  w.varint(1, id);
  put_nonzero(w, 2, l.mapping_id);
  put_nonzero(w, 3, l.address);
  if (l.function_id != 0) {
    ProtoWriter line;
    line.varint(1, l.function_id);
    w.message(4, line);
  }
  return w;
}

// Function: id 1, name 2, system_name 3 (filename 4 and start_line 5 unknown).
ProtoWriter function(const PprofFunction& f, uint64_t id, const StringTable& t) {
  ProtoWriter w;
  w.varint(1, id);
  put_nonzero(w, 2, t.at(f.name));
  put_nonzero(w, 3, t.at(f.system_name));
  return w;
}

}  // namespace

std::string encode_pprof(const PprofProfile& p) {
  StringTable t;
  intern_all(p, t);
  ProtoWriter w;
  for (const auto& v : p.sample_types) w.message(1, value_type(v, t));
  for (const auto& s : p.samples) w.message(2, sample(s, t));
  for (size_t i = 0; i < p.mappings.size(); ++i) w.message(3, mapping(p.mappings[i], i + 1, t));
  for (size_t i = 0; i < p.locations.size(); ++i) w.message(4, location(p.locations[i], i + 1));
  for (size_t i = 0; i < p.functions.size(); ++i) w.message(5, function(p.functions[i], i + 1, t));
  for (const auto& s : t.strings()) w.bytes(6, s);
  put_nonzero(w, 9, static_cast<uint64_t>(p.time_nanos));
  if (!p.period_type.type.empty() || !p.period_type.unit.empty()) w.message(11, value_type(p.period_type, t));
  put_nonzero(w, 12, static_cast<uint64_t>(p.period));
  for (const auto& c : p.comments) w.varint(13, t.at(c));
  put_nonzero(w, 14, t.at(p.default_sample_type));
  return w.take();
}

}  // namespace memgate::memory
