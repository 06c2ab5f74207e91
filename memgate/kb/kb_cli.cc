#include "memgate/kb/kb_cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "memgate/base/units.h"
#include "memgate/base/worker_pool.h"
#include "memgate/kb/index.h"
#include "memgate/kb/routes.h"

namespace memgate::kb {
namespace {

bool read_all(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buf;
  buf << in.rdbuf();
  *out = buf.str();
  return true;
}

bool write_all(const std::string& path, std::string_view bytes) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// One line redrawn in place on a terminal; a line per report elsewhere.
void show_progress(const BuildProgress& p, bool tty) {
  int pct = p.percent();
  long eta = static_cast<long>((p.eta().count() + 999) / 1000);
  if (tty) {
    constexpr int kWidth = 30;
    int filled = pct * kWidth / 100;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '-');
    std::fprintf(stderr, "\r[%s] %3d%%  %zu/%zu files  %s/%s  ETA %lds   ", bar.c_str(), pct, p.files_done,
                 p.files_total, format_bytes(p.bytes_done).c_str(), format_bytes(p.bytes_total).c_str(),
                 p.finished ? 0L : eta);
    if (p.finished) std::fputc('\n', stderr);
  } else {
    std::fprintf(stderr, "kb build: %d%% (%zu/%zu files), ETA %lds\n", pct, p.files_done, p.files_total,
                 p.finished ? 0L : eta);
  }
  std::fflush(stderr);
}

}  // namespace

int run_kb_cli(int argc, char** argv) {
  CLI::App app{"memgate kb: build and inspect knowledge-base artifacts"};
  app.name("memgate kb");
  app.require_subcommand(1);

  std::string dir, out, file, query;
  int chunk_size = 1200, threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int level = 3, k = 10;
  bool advanced = false;
  std::string max_file = "64MB";
  auto* build = app.add_subcommand("build", "index a folder of Markdown, text and HTML into an artifact file");
  build->add_option("DIR", dir, "the corpus folder")->required();
  build->add_option("-o,--output", out, "the artifact file to write")->required();
  build->add_option("--chunk-size", chunk_size, "largest chunk in bytes (KB_CHUNK_SIZE)")->check(CLI::Range(200, 65536));
  build->add_option("--max-file-size", max_file, "largest file indexed; larger ones are skipped (KB_MAX_FILE_SIZE)");
  build->add_option("--threads", threads, "threads parsing files")->check(CLI::Range(1, 256));
  build->add_option("--level", level, "zstd level")->check(CLI::Range(1, 19));
  auto* info = app.add_subcommand("info", "describe an artifact");
  info->add_option("FILE", file, "the artifact")->required();
  auto* exp = app.add_subcommand("export", "write the SQLite database inside an artifact");
  exp->add_option("FILE", file, "the artifact")->required();
  exp->add_option("-o,--output", out, "the database file to write")->required();
  auto* search = app.add_subcommand("search", "query an artifact");
  search->add_option("FILE", file, "the artifact")->required();
  search->add_option("QUERY", query, "words to search for")->required();
  search->add_option("-k", k, "hits")->check(CLI::Range(1, 50));
  search->add_flag("--advanced", advanced, "FTS5 query syntax");

  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (*build) {
    bool tty = ::isatty(STDERR_FILENO) == 1;
    WorkerPool pool(static_cast<size_t>(threads));
    BuildOptions o;
    o.chunk_size = static_cast<size_t>(chunk_size);
    auto max_file_bytes = parse_size(max_file);
    if (!max_file_bytes.ok() || max_file_bytes->is_share || max_file_bytes->bytes < 1024) {
      std::fprintf(stderr, "memgate kb build: --max-file-size: expected a size of at least 1KB, such as 64MB\n");
      return 2;
    }
    o.max_file_bytes = max_file_bytes->bytes;
    o.workers = &pool;
    o.zstd_level = level;
    o.progress_every = std::chrono::milliseconds(tty ? 100 : 1000);
    o.progress = [tty](const BuildProgress& p) { show_progress(p, tty); };
    BuildStats stats;
    auto artifact = build_artifact(dir, o, &stats);
    if (!artifact.ok()) {
      std::fprintf(stderr, "memgate kb build: %s\n", artifact.status().message().c_str());
      return artifact.status().code() == Code::kInvalidArgument ? 2 : 1;
    }
    if (!write_all(out, *artifact)) {
      std::fprintf(stderr, "memgate kb build: cannot write %s\n", out.c_str());
      return 1;
    }
    double secs = static_cast<double>((stats.index_time + stats.compress_time).count()) / 1000.0;
    std::printf(
        "indexed %zu documents (%zu chunks, %s of source) in %.2fs: %.1f MB/s; database %s, artifact %s -> %s\n",
        stats.documents, stats.chunks, format_bytes(stats.source_bytes).c_str(), secs,
        secs > 0 ? static_cast<double>(stats.source_bytes) / 1e6 / secs : 0.0,
        format_bytes(stats.database_bytes).c_str(), format_bytes(stats.artifact_bytes).c_str(), out.c_str());
    return 0;
  }

  std::string bytes;
  if (!read_all(file, &bytes)) {
    std::fprintf(stderr, "memgate kb: cannot read %s\n", file.c_str());
    return 2;
  }
  if (*exp) {
    auto db = artifact_database(bytes);
    if (!db.ok()) {
      std::fprintf(stderr, "memgate kb export: %s\n", db.status().message().c_str());
      return 1;
    }
    if (!write_all(out, *db)) {
      std::fprintf(stderr, "memgate kb export: cannot write %s\n", out.c_str());
      return 1;
    }
    return 0;
  }
  auto index = Index::open(bytes, 1);
  if (!index.ok()) {
    std::fprintf(stderr, "memgate kb: %s: %s\n", file.c_str(), index.status().message().c_str());
    return 1;
  }
  if (*info) {
    std::printf("%s\n", handle_info(**index).body.c_str());
    return 0;
  }
  auto hits = (*index)->search(query, {k, advanced});
  if (!hits.ok()) {
    std::fprintf(stderr, "memgate kb search: %s\n", hits.status().message().c_str());
    return 1;
  }
  std::printf("%s\n", hits_json(query, advanced ? "advanced" : "simple", k, *hits).c_str());
  return 0;
}

}  // namespace memgate::kb
