// Build budget: the measured ratios, and how a budget is split between the
// parts of an on-disk build that hold memory.
//
// Measured with memgate_kb_peaks (bench/kb/peaks) on 2 CPUs, jemalloc, zstd
// level 3; peak = VmHWM after a clear_refs reset, minus VmRSS at the start.
// Corpora: the *.html of Debian's python3.11-doc (530 pages, 50.7 MB), the same
// topped up with copies to 65.0 MB, and its reST sources (_sources/*.txt, 11.0
// MB of prose).
//
//   corpus          chunk   image/source   in-memory build peak
//   html 50.7 MB      400       0.470       82 MiB
//   html 50.7 MB     1200       0.397       70-75 MiB
//   html 50.7 MB     4000       0.391       69-75 MiB
//   html 65.0 MB      400       0.463       97-98 MiB
//   html 65.0 MB     1200       0.393       79-90 MiB
//   html 65.0 MB     4000       0.386       86-90 MiB
//   text 11.0 MB      400       1.853       66 MiB
//   text 11.0 MB     1200       1.719       63 MiB
//   text 11.0 MB     4000       1.561       61 MiB
//
// Image: per source byte, a + b / chunk_size (the per-row cost of a chunk):
// HTML a = 0.38, b = 35; text a = 1.6, b = 130 (both fitted to the ends of the
// chunk range and rounded up). A generated corpus of random words in thin HTML
// (65 MB) made 1.8 image bytes per source byte: markup-light HTML is text.
//
// In-memory build peak: 2.3 x image + 0.25 x source + 20 MiB (the memdb
// image, the copy VACUUM makes, SQLite's default page cache, two zstd workers,
// the parse window); within 10% of every run above and of the generated corpus
// (285 MiB for a 111 MiB image).
//
// On-disk build at its smallest plan (1 MiB cache, 256 KiB FTS5 buffer): 16 MiB
// + 0.55 x image (the artifact itself, ~0.3 x image, is held at the end, plus
// the zstd context, the parse of the largest file, the page cache): measured
// 27-29 MiB (html 65 MB), 26 MiB (html 50.7 MB), 22 MiB (text), 54 MiB
// (generated). A bigger page cache bought no speed (the file's pages sit in the
// kernel's cache anyway; 32 MiB cost 50 MiB of RSS and no time), an 8 MiB FTS5
// buffer ('hashsize': fewer, larger segments to merge) bought 10-15%, a second
// parse helper nothing on 2 CPUs, 'automerge' 0 or 8 nothing measurable; so
// the plan spends a budget on the FTS5 buffer first and keeps the cache small.
// Speed: 0.9-1.1x the in-memory build on the HTML corpora, 0.8-1.0x on text.
//
// Load: the image plus ~1.5 MiB (1.06x a 24 MiB image, from 1 MiB pieces).
#include "memgate/kb/build_budget.h"

#include <algorithm>

namespace memgate::kb {
namespace {

constexpr uint64_t kKiB = 1 << 10;
constexpr uint64_t kMiB = 1 << 20;

uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi) { return std::min(std::max(v, lo), hi); }

double per_chunk(size_t chunk_size) { return 1.0 / static_cast<double>(std::max<size_t>(chunk_size, 16)); }

uint64_t image_of(uint64_t html_bytes, uint64_t text_bytes, size_t chunk_size) {
  double html = static_cast<double>(html_bytes) * (0.38 + 35.0 * per_chunk(chunk_size));
  double text = static_cast<double>(text_bytes) * (1.6 + 130.0 * per_chunk(chunk_size));
  return static_cast<uint64_t>(html + text) + 64 * kKiB;  // schema and meta pages
}

PeakEstimate estimate_from_image(uint64_t image, uint64_t source_bytes) {
  PeakEstimate e;
  e.image_bytes = image;
  e.build_bytes = static_cast<uint64_t>(2.3 * static_cast<double>(image) + 0.25 * static_cast<double>(source_bytes)) +
                  20 * kMiB;
  e.disk_build_bytes = static_cast<uint64_t>(0.55 * static_cast<double>(image)) + 16 * kMiB;
  e.load_bytes = load_peak_for_image(image);
  return e;
}

}  // namespace

PeakEstimate estimate_peaks(uint64_t source_bytes, size_t chunk_size) {
  return estimate_from_image(image_of(source_bytes, 0, chunk_size), source_bytes);
}

PeakEstimate estimate_peaks(const std::vector<SourceFile>& files, size_t chunk_size) {
  uint64_t html = 0, text = 0;
  for (const SourceFile& f : files) (f.kind == DocKind::kHtml ? html : text) += f.size;
  return estimate_from_image(image_of(html, text, chunk_size), html + text);
}

uint64_t load_peak_for_image(uint64_t image_bytes) { return image_bytes + image_bytes / 16 + 1 * kMiB; }

BuildPlan plan_build(const PeakEstimate& estimate, uint64_t memory_budget) {
  BuildPlan p;
  if (memory_budget == 0 || estimate.build_bytes <= memory_budget) return p;
  p.on_disk = true;
  p.helpers = 1;
  p.zstd_workers = 0;
  // What the budget leaves above the smallest on-disk build goes first to the
  // FTS5 buffer (speed), then a little to the page cache and the parse window.
  uint64_t spare = memory_budget > estimate.disk_build_bytes ? memory_budget - estimate.disk_build_bytes : 0;
  p.fts_hashsize = static_cast<int64_t>(clamp_u64(spare / 3, 256 * kKiB, 8 * kMiB));
  p.cache_kib = static_cast<int64_t>(clamp_u64(spare / 16, 1 * kMiB, 8 * kMiB) / kKiB);
  p.window_bytes = clamp_u64(spare / 16, 1 * kMiB, 8 * kMiB);
  p.window_files = 16;
  p.batch_bytes = clamp_u64(memory_budget / 4, 4 * kMiB, 64 * kMiB);
  return p;
}

}  // namespace memgate::kb
