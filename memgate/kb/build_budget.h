// Build budget: how much memory an index build and an artifact load take, and
// how a build is configured to stay within a memory budget.
//
// estimate_peaks() predicts, from the corpus, the database image, the peak RSS
// increase of an unbounded (in-memory) build, of the smallest on-disk build,
// and of loading the artifact; the ratios are measured (build_budget.cc has the
// corpora and the figures). plan_build() turns a budget into the settings of
// the build: in memory when the estimate fits, else on disk with the page
// cache, FTS5 pending-terms buffer, commit batch, parse window and helper count
// sized from the budget.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "memgate/kb/corpus.h"

namespace memgate::kb {

struct PeakEstimate {
  uint64_t build_bytes = 0;       // peak RSS above the start of an in-memory (unbounded) build
  uint64_t load_bytes = 0;        // peak RSS above the start of Index::open on its artifact
  uint64_t image_bytes = 0;       // the database image both are driven by
  uint64_t disk_build_bytes = 0;  // the least an on-disk build needs (its smallest plan)
};

// The estimate for a corpus of `source_bytes` of documentation HTML (Sphinx-like
// markup: the text is about a third of the bytes) chunked at `chunk_size`.
PeakEstimate estimate_peaks(uint64_t source_bytes, size_t chunk_size);
// The same for a listing, counting HTML and text (Markdown, plain text) files
// apart: a byte of text makes about four times the image a byte of HTML does.
PeakEstimate estimate_peaks(const std::vector<SourceFile>& files, size_t chunk_size);

// What Index::open adds to the process for an image of `image_bytes`: the image,
// the decompression context, the first connection, with a margin.
uint64_t load_peak_for_image(uint64_t image_bytes);

// How a build runs. The defaults are the unbounded build.
struct BuildPlan {
  bool on_disk = false;        // the database is a scratch file, not in memory
  size_t helpers = 0;          // parse tasks posted at most; 0: one per worker
  size_t window_files = 64;    // files parsed ahead of the inserter at most
  uint64_t window_bytes = 0;   // source bytes parsed ahead at most (one file always); 0: no bound
  int64_t cache_kib = 0;       // PRAGMA cache_size=-N; 0: SQLite's default
  uint64_t batch_bytes = 0;    // commit every this many source bytes; 0: one transaction
  int64_t fts_hashsize = 0;    // FTS5 'hashsize' (pending terms flushed above it); 0: FTS5's 1 MiB
  int fts_automerge = -1;      // FTS5 'automerge'; -1: FTS5's default (4)
  int fts_crisismerge = -1;    // FTS5 'crisismerge'; -1: FTS5's default (16)
  int zstd_workers = 2;        // compression threads
};

// The plan for a build the estimate describes, within `memory_budget` bytes
// above the process's RSS at the start (0: unbounded). A budget below even
// estimate.disk_build_bytes gets the smallest on-disk plan (it may then pass
// the budget, by about the difference).
BuildPlan plan_build(const PeakEstimate& estimate, uint64_t memory_budget);

}  // namespace memgate::kb
