// From a jemalloc dump to a pprof profile.
//
// The mappings come first: the executable, file-backed regions of
// /proc/self/maps, the main binary's first, each given the build id of the
// loaded object whose executable segment it covers (by address, not by name:
// the loader's names and the kernel's differ, /lib against /usr/lib). Then each
// stack is trimmed of its allocator frames, its addresses become locations
// (one per distinct address, found in the mappings by binary search over their
// start addresses), and its figures are unsampled. Stacks with nothing live
// are left out; jemalloc keeps those it has seen freed until the next dump.
// Last, the locations are named, one mapped file at a time, each file's symbol
// table read once and dropped when its locations are done.
#include "memgate/memory/heap_pprof.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unordered_map>

#include <cxxabi.h>

#include "memgate/memory/allocator.h"
#include "memgate/memory/elf_symbols.h"
#include "memgate/memory/gzip.h"
#include "memgate/memory/text_file.h"

namespace memgate::memory {
namespace {

constexpr size_t kMaxMapsBytes = 8u << 20;

bool overlaps(const MappedRegion& r, const LoadedObject& o) { return r.start < o.text_end && o.text_start < r.end; }

std::vector<PprofMapping> mappings_of(const HeapProcessView& view) {
  const LoadedObject* main = nullptr;
  for (const auto& o : view.objects)
    if (o.main) main = &o;
  std::vector<PprofMapping> out;
  size_t main_count = 0;
  for (const auto& r : view.regions) {
    if (!r.executable || r.path.empty()) continue;
    PprofMapping m{r.start, r.end, r.file_offset, r.path, "", false};
    bool is_main = false;
    for (const auto& o : view.objects)
      if (overlaps(r, o)) {
        m.build_id = o.build_id;
        is_main = &o == main;
        break;
      }
    if (is_main) out.insert(out.begin() + static_cast<std::ptrdiff_t>(main_count++), std::move(m));
    else out.push_back(std::move(m));
  }
  return out;
}

std::string demangle(const std::string& symbol) {
  int status = 0;
  char* out = abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status);
  if (status != 0 || !out) return symbol;  // a C name, or not one the demangler knows
  std::string name(out);
  std::free(out);
  return name;
}

// Names each location from the symbol table of its mapping's file: the
// program's through /proc/self/exe (the file it runs, even if its path has
// been replaced since), a library's by its path, skipped when the file on disk
// is not the one loaded (its build id differs: a package upgraded meanwhile).
void name_functions(PprofProfile& p, const HeapProcessView& view) {
  std::vector<std::vector<size_t>> by_mapping(p.mappings.size());
  for (size_t i = 0; i < p.locations.size(); ++i)
    if (uint64_t id = p.locations[i].mapping_id) by_mapping[id - 1].push_back(i);
  std::unordered_map<std::string, uint64_t> function_ids;  // mangled name -> id
  for (size_t m = 0; m < p.mappings.size(); ++m) {
    if (by_mapping[m].empty()) continue;
    PprofMapping& mapping = p.mappings[m];
    const LoadedObject* object = nullptr;
    for (const auto& o : view.objects)
      if (mapping.memory_start < o.text_end && o.text_start < mapping.memory_limit) object = &o;
    if (!object || mapping.filename.starts_with("[")) continue;
    auto symbols = ElfSymbols::read(object->main ? "/proc/self/exe" : mapping.filename);
    if (!symbols.ok() || symbols->build_id() != object->build_id) continue;
    for (size_t i : by_mapping[m]) {
      PprofLocation& l = p.locations[i];
      std::string_view symbol = symbols->function_at(l.address - object->bias);
      if (symbol.empty()) continue;
      auto [it, added] = function_ids.try_emplace(std::string(symbol), p.functions.size() + 1);
      if (added) p.functions.push_back({demangle(it->first), it->first});
      l.function_id = it->second;
      mapping.has_functions = true;
    }
  }
}

int64_t clamp_to_int64(long double v) {
  constexpr auto kMax = static_cast<long double>(std::numeric_limits<int64_t>::max());
  if (!(v > 0)) return 0;
  return v >= kMax ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(std::llround(v));
}

}  // namespace

PprofProfile heap_dump_to_pprof(const HeapDump& dump, const HeapProcessView& view) {
  PprofProfile p;
  p.sample_types = {{"inuse_objects", "count"}, {"inuse_space", "bytes"}};
  p.default_sample_type = "inuse_space";
  p.period_type = {"space", "bytes"};
  p.period = clamp_to_int64(static_cast<long double>(dump.sample_interval));
  p.time_nanos = view.time_nanos;
  p.comments = {"memgate heap profile, converted from jemalloc prof.dump (heap_v2)"};
  p.mappings = mappings_of(view);

  // Mapping ids by start address, for the lookup of each location.
  std::vector<std::pair<uint64_t, uint64_t>> by_start;  // (start, id)
  for (size_t i = 0; i < p.mappings.size(); ++i) by_start.emplace_back(p.mappings[i].memory_start, i + 1);
  std::sort(by_start.begin(), by_start.end());
  auto mapping_id_of = [&](uint64_t address) -> uint64_t {
    auto it = std::upper_bound(by_start.begin(), by_start.end(), std::make_pair(address, ~uint64_t{0}));
    if (it == by_start.begin()) return 0;
    --it;
    return address < p.mappings[it->second - 1].memory_limit ? it->second : 0;
  };

  // The allocator's code, when it is an object of its own (not linked into the
  // program, where its range would be the program's).
  const LoadedObject* allocator = view.allocator_address ? object_at(view.objects, view.allocator_address) : nullptr;
  if (allocator && allocator->main) allocator = nullptr;

  std::unordered_map<uint64_t, uint64_t> location_ids;  // adjusted address -> id
  for (const auto& stack : dump.stacks) {
    if (stack.live_objects == 0 && stack.live_bytes == 0) continue;
    size_t first = 0;
    if (allocator)
      while (first + 1 < stack.frames.size() && stack.frames[first] >= allocator->text_start &&
             stack.frames[first] < allocator->text_end)
        ++first;
    PprofSample s;
    s.location_ids.reserve(stack.frames.size() - first);
    for (size_t i = first; i < stack.frames.size(); ++i) {
      uint64_t address = stack.frames[i] > 0 ? stack.frames[i] - 1 : 0;  // return address -> inside the call
      auto [it, added] = location_ids.try_emplace(address, p.locations.size() + 1);
      if (added) p.locations.push_back({mapping_id_of(address), address});
      s.location_ids.push_back(it->second);
    }
    long double objects = static_cast<long double>(stack.live_objects);
    long double bytes = static_cast<long double>(stack.live_bytes);
    long double scale = 1;
    if (stack.live_objects > 0) {
      long double mean = bytes / objects;
      long double sampled_fraction = 1 - std::exp(-mean / static_cast<long double>(dump.sample_interval));
      if (sampled_fraction > 0) scale = 1 / sampled_fraction;
      s.labels.push_back({"bytes", clamp_to_int64(mean), "bytes"});
    }
    s.values = {clamp_to_int64(objects * scale), clamp_to_int64(bytes * scale)};
    p.samples.push_back(std::move(s));
  }
  if (view.name_functions) name_functions(p, view);
  return p;
}

Result<std::string> take_heap_profile(const std::string& path, HeapProfileFormat format) {
  auto dumped = dump_heap_profile(path);
  if (!dumped.ok()) return dumped.status();
  HeapDumpLimits limits;
  auto text = read_file_bounded(*dumped, limits.max_text_bytes);
  std::remove(dumped->c_str());
  if (!text.ok()) return text.status();
  if (format == HeapProfileFormat::kJeprof) return std::move(*text);

  HeapProcessView view;
  view.time_nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  auto maps_text = read_file_bounded("/proc/self/maps", kMaxMapsBytes);
  if (!maps_text.ok()) return Internal("cannot read /proc/self/maps: " + maps_text.status().message());
  auto regions = parse_proc_maps(*maps_text);
  if (!regions.ok()) return Internal("/proc/self/maps: " + regions.status().message());
  view.regions = std::move(*regions);
  view.objects = loaded_objects();
  view.allocator_address = reinterpret_cast<uintptr_t>(&::malloc);
  view.name_functions = true;

  auto dump = parse_jemalloc_heap_dump(*text, limits);
  if (!dump.ok()) return Internal("jemalloc heap dump: " + dump.status().message());
  return gzip_compress(encode_pprof(heap_dump_to_pprof(*dump, view)));
}

}  // namespace memgate::memory
