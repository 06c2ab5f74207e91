// memgate_kb_peaks: one build or one load of the knowledge base, measured, for
// bench/kb/peaks. Each run is its own process so the peaks do not mix.
//
//   memgate_kb_peaks build DIR [--budget BYTES] [--chunk N] [--workers N] [--out FILE]
//   memgate_kb_peaks load-stream FILE   (1 MiB pieces, take_source: each released after use)
//   memgate_kb_peaks load-flat FILE     (the artifact in one string, the old one-shot open)
//
// Prints one JSON object: wall time, RSS at the start, the peak above it
// (VmHWM after `echo 5 > /proc/self/clear_refs` reset it at the start), and the
// image and artifact sizes.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "memgate/base/chunked_bytes.h"
#include "memgate/base/worker_pool.h"
#include "memgate/kb/index.h"

namespace {

using memgate::ChunkedBytes;
namespace kb = memgate::kb;

// VmRSS or VmHWM from /proc/self/status, in bytes.
uint64_t status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
      return std::strtoull(line.c_str() + n + 1, nullptr, 10) * 1024;
  return 0;
}

// Resets VmHWM to the current RSS; returns that RSS.
uint64_t reset_peak() {
  std::ofstream("/proc/self/clear_refs") << "5";
  return status_bytes("VmRSS");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ChunkedBytes read_pieces(const std::string& path) {
  ChunkedBytes out;
  std::ifstream in(path, std::ios::binary);
  for (;;) {
    std::string piece(ChunkedBytes::kDefaultPiece, '\0');
    in.read(piece.data(), static_cast<std::streamsize>(piece.size()));
    piece.resize(static_cast<size_t>(in.gcount()));
    if (piece.empty()) break;
    out.append(std::move(piece));
  }
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: memgate_kb_peaks build DIR [--budget BYTES] [--chunk N] [--workers N] [--out FILE]\n"
               "       memgate_kb_peaks load-stream|load-flat FILE\n");
  return 2;
}

void report(const char* mode, double wall_ms, uint64_t start, uint64_t peak, uint64_t image, uint64_t artifact,
            const std::string& extra) {
  std::printf(
      "{\"mode\": \"%s\", \"wall_ms\": %.1f, \"rss_start\": %llu, \"peak_above_start\": %llu, \"image\": %llu, "
      "\"artifact\": %llu%s}\n",
      mode, wall_ms, static_cast<unsigned long long>(start), static_cast<unsigned long long>(peak > start ? peak - start : 0),
      static_cast<unsigned long long>(image), static_cast<unsigned long long>(artifact), extra.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string mode = argv[1], target = argv[2];
  uint64_t budget = 0;
  size_t chunk = 1200, workers = 2;
  std::string out;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--budget") budget = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--chunk") chunk = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--workers") workers = std::strtoull(argv[i + 1], nullptr, 10);
    else if (flag == "--out") out = argv[i + 1];
    else return usage();
  }
  using Clock = std::chrono::steady_clock;
  if (mode == "build") {
    memgate::WorkerPool pool(workers);
    kb::BuildOptions o;
    o.workers = workers ? &pool : nullptr;
    o.chunk_size = chunk;
    o.memory_budget = budget;
    kb::BuildStats stats;
    uint64_t start = reset_peak();
    auto t0 = Clock::now();
    auto artifact = kb::build_artifact_chunked(target, o, &stats);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    uint64_t peak = status_bytes("VmHWM");
    if (!artifact.ok()) {
      std::fprintf(stderr, "build: %s\n", artifact.status().to_string().c_str());
      return 1;
    }
    if (!out.empty()) {
      std::ofstream f(out, std::ios::binary);
      for (const std::string& p : artifact->pieces()) f.write(p.data(), static_cast<std::streamsize>(p.size()));
    }
    kb::PeakEstimate e = kb::estimate_peaks(stats.source_bytes, chunk);
    char extra[512];
    std::snprintf(extra, sizeof extra,
                  ", \"source\": %llu, \"budget\": %llu, \"on_disk\": %s, \"pieces\": %zu, \"index_ms\": %lld, "
                  "\"compress_ms\": %lld, \"estimate_build\": %llu, \"estimate_image\": %llu",
                  static_cast<unsigned long long>(stats.source_bytes), static_cast<unsigned long long>(budget),
                  stats.on_disk ? "true" : "false", artifact->pieces().size(),
                  static_cast<long long>(stats.index_time.count()), static_cast<long long>(stats.compress_time.count()),
                  static_cast<unsigned long long>(e.build_bytes), static_cast<unsigned long long>(e.image_bytes));
    report("build", ms, start, peak, stats.database_bytes, stats.artifact_bytes, extra);
    return 0;
  }
  if (mode == "load-stream" || mode == "load-flat") {
    std::shared_ptr<kb::Index> index;
    uint64_t start = 0, peak = 0, artifact_bytes = 0;
    double ms = 0;
    if (mode == "load-stream") {
      ChunkedBytes pieces = read_pieces(target);
      artifact_bytes = pieces.size();
      auto source = memgate::take_source(std::move(pieces));
      start = reset_peak();
      auto t0 = Clock::now();
      auto opened = kb::Index::open(*source, kb::OpenOptions{});
      ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      peak = status_bytes("VmHWM");
      if (!opened.ok()) {
        std::fprintf(stderr, "open: %s\n", opened.status().to_string().c_str());
        return 1;
      }
      index = *opened;
    } else {
      std::string flat = read_file(target);
      artifact_bytes = flat.size();
      start = reset_peak();
      auto t0 = Clock::now();
      auto opened = kb::Index::open(flat, 8);
      ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      peak = status_bytes("VmHWM");
      if (!opened.ok()) {
        std::fprintf(stderr, "open: %s\n", opened.status().to_string().c_str());
        return 1;
      }
      index = *opened;
    }
    auto hits = index->search("context manager", {5, false});
    char extra[128];
    std::snprintf(extra, sizeof extra, ", \"hits\": %zu, \"rss_after\": %llu", hits.ok() ? hits->size() : 0,
                  static_cast<unsigned long long>(status_bytes("VmRSS")));
    report(mode.c_str(), ms, start, peak, index->info().database_bytes, artifact_bytes, extra);
    return 0;
  }
  return usage();
}
