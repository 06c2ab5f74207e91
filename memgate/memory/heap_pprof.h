// jemalloc heap profiles in the pprof format (gzip-compressed profile.proto),
// as Go's net/http/pprof serves them, so `go tool pprof`, Parca and Grafana
// Alloy read memgate's heap the way they read a Go service's.
//
// What the profile holds:
//  - two sample types, inuse_objects (count) and inuse_space (bytes), the
//    default inuse_space. Those are what a jemalloc dump has: live objects and
//    bytes per stack. Go's alloc_objects/alloc_space have no source unless
//    jemalloc runs with prof_accum, so they are left out rather than sent as
//    zeros that would read as "nothing was allocated".
//  - values unsampled: a stack's sampled objects and bytes scaled by
//    1 / (1 - exp(-avg / interval)), avg its mean object size (the Poisson
//    model jemalloc samples by; jeprof and Go's runtime scale the same way),
//    and a "bytes" label with that mean size. period_type space/bytes, period
//    the sampling interval.
//  - locations by address, each named with the function that holds it, from
//    the symbol table of the file its mapping holds (elf_symbols.h says why in
//    process), when that file's build id is still the loaded one; a mapping so
//    named says has_functions. jemalloc's own frames (its malloc,
//    operator new and profiling code at the leaf end) are dropped when jemalloc
//    is a library of its own, so the leaf is the function that allocated; a
//    caller's frame holds its return address minus one, inside the call, so
//    the line a tool reports is the calling line.
//  - mappings: every executable file mapping of /proc/self/maps, the main
//    binary first (what `go tool pprof BINARY FILE` pairs with BINARY), each
//    with its file offset and, when the file has one, its GNU build id.
//
// Thread-safe: heap_dump_to_pprof is pure; take_heap_profile may run on any
// thread (jemalloc serialises dumps).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/memory/jemalloc_heap_dump.h"
#include "memgate/memory/pprof_profile.h"
#include "memgate/memory/process_maps.h"

namespace memgate::memory {

struct HeapProcessView {
  std::vector<MappedRegion> regions;   // /proc/self/maps
  std::vector<LoadedObject> objects;   // the loader's objects and build ids
  uint64_t allocator_address = 0;      // an address inside the allocator's code (0: keep every frame)
  int64_t time_nanos = 0;              // when the dump was taken
  bool name_functions = false;         // read the mapped files' symbol tables (the program: /proc/self/exe)
};

// The profile of `dump` as seen in `view`. Never fails: what the dump holds is
// already bounded by its parser, a frame in no mapping keeps mapping id 0, and
// a file whose symbols cannot be read leaves its frames unnamed.
PprofProfile heap_dump_to_pprof(const HeapDump& dump, const HeapProcessView& view);

enum class HeapProfileFormat {
  kPprof,   // gzip-compressed profile.proto
  kJeprof,  // jemalloc's own heap_v2 text, as dumped
};

// Dumps jemalloc's heap profile to `path` (see dump_heap_profile), reads it back
// (at most HeapDumpLimits::max_text_bytes), removes the file and returns the
// profile in `format`. Fails as dump_heap_profile does, with kResourceExhausted
// for a dump over the limit, and with kInternal when the dump does not parse or
// /proc/self/maps cannot be read.
Result<std::string> take_heap_profile(const std::string& path, HeapProfileFormat format);

}  // namespace memgate::memory
