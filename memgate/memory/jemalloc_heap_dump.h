// The heap profile jemalloc writes on "prof.dump" (its "heap_v2" text, the one
// jeprof reads), parsed into sampled stacks.
//
// The text, as jemalloc 5 writes it:
//
//   heap_v2/524288                         the mean sampling interval, in bytes
//     t*: 28: 3145728 [0: 0]               totals: live objects: bytes [accumulated]
//     t0: 20: 2097152 [0: 0]               the same per thread (ignored here)
//   @ 0x7f0a1c2d3e4f 0x55d0c1b2a390 ...    one stack, leaf first, return addresses
//     t*: 3: 3145728 [0: 0]                its sampled live objects and bytes
//     t0: ...
//   (blank line)
//   MAPPED_LIBRARIES:                      /proc/self/maps at dump time (not read here)
//
// The figures are sampled counts, not the heap's: a reader unsamples them with
// the interval (see heap_pprof.h). Accumulated counts are parsed too; they stay 0
// unless jemalloc runs with prof_accum.
//
// Everything is bounded (the text's size, stacks, frames per stack, frames in
// all) and anything malformed fails: the file is ours, but a dump that does not
// parse must be reported, not half-read. Pure function, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::memory {

struct HeapDumpLimits {
  size_t max_text_bytes = 32u << 20;
  size_t max_stacks = 1u << 18;
  size_t max_frames_per_stack = 256;  // jemalloc records at most 128
  size_t max_frames_total = 1u << 21;
};

struct HeapDumpStack {
  std::vector<uint64_t> frames;  // leaf first, as jemalloc wrote them
  uint64_t live_objects = 0;
  uint64_t live_bytes = 0;
  uint64_t accumulated_objects = 0;
  uint64_t accumulated_bytes = 0;
};

struct HeapDump {
  uint64_t sample_interval = 0;  // bytes, from the "heap_v2/N" header (N > 0)
  uint64_t live_objects = 0;     // the header's t* totals (sampled)
  uint64_t live_bytes = 0;
  std::vector<HeapDumpStack> stacks;
};

// Parses `text` (a whole dump). Fails with kInvalidArgument naming the line
// for anything that is not the format above, and kResourceExhausted when a limit
// is passed.
Result<HeapDump> parse_jemalloc_heap_dump(std::string_view text, const HeapDumpLimits& limits = {});

}  // namespace memgate::memory
