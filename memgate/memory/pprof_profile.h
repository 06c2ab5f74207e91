// PprofProfile: a profile in the shape of pprof's profile.proto (the format
// `go tool pprof`, Parca and Grafana Alloy read), and its encoder.
//
// The model holds what a native profile needs: value types, samples pointing
// at locations, locations holding instruction addresses (and, when known, the
// function holding each: one line record, no line number), the functions, and
// the mappings (executable file ranges, with their build ids) the addresses
// fall in. A mapping whose locations were named says has_functions, which
// tells a reader not to name them again; file names, line numbers and inlined
// frames are left to readers that symbolize from the binary's debug
// information. Strings are plain std::string here; encode_pprof builds the
// string table.
//
// Ids follow the format's rule (unique and nonzero): mapping, location and
// function i of their vectors have id i + 1, and references use those ids.
//
// Plain values; encode_pprof is a pure function, safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace memgate::memory {

struct PprofValueType {
  std::string type;  // "inuse_space"
  std::string unit;  // "bytes"
};

struct PprofMapping {
  uint64_t memory_start = 0;  // first address of the range
  uint64_t memory_limit = 0;  // one past its last address
  uint64_t file_offset = 0;   // offset in the file of memory_start
  std::string filename;       // the object's path, or a name such as "[vdso]"
  std::string build_id;       // hex of the GNU build id; empty when unknown
  bool has_functions = false; // its locations carry function names
};

struct PprofLocation {
  uint64_t mapping_id = 0;  // 0: in no known mapping
  uint64_t address = 0;
  uint64_t function_id = 0;  // 0: not named
};

struct PprofFunction {
  std::string name;         // for people: demangled
  std::string system_name;  // as the binary spells it: mangled
};

// A numeric label of a sample, e.g. {"bytes", 1048576, "bytes"}.
struct PprofLabel {
  std::string key;
  int64_t num = 0;
  std::string unit;
};

struct PprofSample {
  std::vector<uint64_t> location_ids;  // leaf first
  std::vector<int64_t> values;         // one per sample type, in their order
  std::vector<PprofLabel> labels;
};

struct PprofProfile {
  std::vector<PprofValueType> sample_types;
  std::vector<PprofSample> samples;
  std::vector<PprofMapping> mappings;  // the main binary first, as readers assume
  std::vector<PprofLocation> locations;
  std::vector<PprofFunction> functions;
  int64_t time_nanos = 0;              // when the profile was taken, Unix epoch
  PprofValueType period_type;          // what `period` counts ({"space","bytes"})
  int64_t period = 0;                  // average distance between samples
  std::string default_sample_type;     // one of sample_types' type; empty: the last
  std::vector<std::string> comments;
};

// The uncompressed profile.proto bytes of `profile` (readers expect them
// gzip-compressed on disk and over HTTP: see gzip.h). Never fails; the caller
// keeps the profile's sizes bounded.
std::string encode_pprof(const PprofProfile& profile);

}  // namespace memgate::memory
