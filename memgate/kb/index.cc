// The FTS5 index: build, artifact, open, query.
//
// Build. Files are parsed and chunked by helpers on the worker pool while the
// building thread inserts finished documents in path order (so the database, and
// the artifact, are the same for the same corpus). Helpers claim files from a
// shared counter and run at most a window of files (and, when bounded, of source
// bytes) ahead of the inserter, which bounds the memory held by
// parsed-but-not-inserted documents; the inserter also parses when it would
// otherwise wait, so a pool with no free thread (or no pool) still finishes.
// Every chunk of a document gets a consecutive rowid, so a document is read back
// with one rowid range. After the inserts the FTS5 b-trees are merged
// ('optimize'), which makes queries faster and the image smaller.
//
// Where the database lives (build_budget.h decides). Unbounded: in memory, one
// transaction, VACUUM, and the image is compressed straight out of the
// in-memory database (sqlite3_serialize with SQLITE_SERIALIZE_NOCOPY, so no
// second copy). Within a budget that cannot hold that: a file in a private
// scratch folder, with no journal, no syncs, a page cache of cache_kib,
// commits every batch_bytes of source, FTS5's pending-terms buffer capped by
// its 'hashsize' option (FTS5 flushes it to a new segment when it passes that
// size, and at every commit), then 'optimize' and VACUUM INTO a second file,
// whose bytes are read 1 MiB at a time into the compressor. Both artifacts are
// the same format and open the same way; the scratch folder is removed on every
// path out (ScratchDir).
//
// Artifact. See artifact.h: the header, one zstd frame, written and read as
// streams of pieces. Anything else is refused with kInvalidArgument, which the
// loader treats as "rebuild".
//
// Open. The image is decompressed once, piece by piece from a ByteSource, into
// an sqlite3_malloc64 buffer owned by the Index; each pooled connection
// deserializes it read-only (no copy, no ownership), with mmap access so pages
// are read in place rather than copied into each connection's cache. The buffer
// is freed after the last connection is closed.
#include "memgate/kb/index.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <memory>
#include <spdlog/spdlog.h>

#include "memgate/base/units.h"
#include "memgate/base/worker_pool.h"
#include "memgate/kb/build_budget.h"
#include "memgate/kb/corpus.h"
#include "memgate/kb/scratch_dir.h"

namespace memgate::kb {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint8_t kFormat = kArtifactFormat;  // also the meta table's "format"
constexpr size_t kReadPiece = 1 << 20;        // reading the on-disk image

// The schema, one statement each: open() compares what an image holds with
// these texts (sqlite_schema keeps each CREATE as written).
constexpr const char* kMetaSql = "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)";
constexpr const char* kDocsSql = R"sql(CREATE TABLE docs(
  rowid INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  path TEXT NOT NULL,
  kind TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  first_chunk INTEGER NOT NULL,
  chunk_count INTEGER NOT NULL))sql";
constexpr const char* kChunksSql = R"sql(CREATE VIRTUAL TABLE chunks USING fts5(
  title, heading, body, doc UNINDEXED,
  tokenize = 'porter unicode61 remove_diacritics 2'))sql";
// The stored rank (what `ORDER BY rank` and advanced users of the table get) and
// the weights search() scores with (rank_function below): the same numbers.
constexpr const char* kRankSql = "INSERT INTO chunks(chunks, rank) VALUES('rank', 'bm25(10.0, 4.0, 1.0)')";
constexpr double kColumnWeights[] = {10.0, 4.0, 1.0};  // title, heading, body; doc is not indexed

// Deadlines on every statement of an opened index (a progress handler checks
// the clock every kProgressSteps virtual-machine steps): a query has a few
// seconds; opening (the schema check, quick_check over the whole image, meta)
// has kOpenDeadline plus a second per kOpenBytesPerSecond of image.
constexpr milliseconds kQueryDeadline{3000};
constexpr milliseconds kOpenDeadline{5000};
constexpr uint64_t kOpenBytesPerSecond = 64ull << 20;
constexpr int kProgressSteps = 1000;

const char* kind_name(DocKind k) {
  switch (k) {
    case DocKind::kMarkdown: return "markdown";
    case DocKind::kHtml: return "html";
    case DocKind::kText: return "text";
  }
  return "text";
}

// A full disk or no memory is a limit (kResourceExhausted); anything else a bug.
Status sqlite_status(int rc, std::string msg) {
  int primary = rc & 0xFF;
  if (primary == SQLITE_FULL || primary == SQLITE_NOMEM) return ResourceExhausted(std::move(msg));
  if (primary == SQLITE_INTERRUPT) return DeadlineExceeded(std::move(msg));
  return Internal(std::move(msg));
}

Status sql_error(sqlite3* db, std::string_view what) {
  if (!db) return ResourceExhausted(std::string(what) + ": out of memory");
  return sqlite_status(sqlite3_extended_errcode(db), std::string(what) + ": " + sqlite3_errmsg(db));
}

Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return sqlite_status(rc, std::string("sqlite: ") + msg);
  }
  return Status::Ok();
}

Status exec(sqlite3* db, const std::string& sql) { return exec(db, sql.c_str()); }

// Asks Stmt to keep its statement prepared on the connection for the next use.
struct KeepPrepared {};

// A prepared statement that finalizes itself; or, made with KeepPrepared, one
// that stays prepared on its connection (SQLITE_PREPARE_PERSISTENT) and is only
// reset after use, so the next Stmt with the same SQL text on that connection
// finds it through sqlite3_next_stmt instead of parsing it again. Parsing was
// about half of a search's allocations (scripts/profile-ai-coach); the queries
// are a few fixed strings, so a connection keeps at most that many.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  Stmt(sqlite3* db, const char* sql, KeepPrepared) : kept_(true) {
    for (sqlite3_stmt* k = sqlite3_next_stmt(db, nullptr); k != nullptr; k = sqlite3_next_stmt(db, k)) {
      if (!sqlite3_stmt_busy(k) && std::strcmp(sqlite3_sql(k), sql) == 0) {
        s_ = k;
        rc_ = SQLITE_OK;
        return;
      }
    }
    rc_ = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr);
  }
  ~Stmt() {
    if (kept_ && rc_ == SQLITE_OK) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    } else {
      sqlite3_finalize(s_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() const { return s_; }
  // Finalizes the statement now (a kept one too); ok() is false afterwards.
  void finalize() {
    sqlite3_finalize(s_);
    s_ = nullptr;
    rc_ = SQLITE_ERROR;
    kept_ = false;
  }
  void text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void integer(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  std::string column(int i) const {
    const unsigned char* p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, i)))
             : std::string();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
  bool kept_ = false;
};

// The queries a pooled connection keeps prepared (Stmt with KeepPrepared).
// A search scores every match (kMatchSql, in rowid order, no sort), then reads
// the text of the k chunks it keeps (kChunkTextSql); an advanced query's
// snippets are FTS5's own, one chunk at a time (kSnippetSql).
constexpr const char* kMatchSql = "SELECT rowid, memgate_bm25(chunks) FROM chunks WHERE chunks MATCH ?1";
constexpr const char* kChunkTextSql = "SELECT heading, body FROM chunks WHERE rowid = ?1";
constexpr const char* kSnippetSql =
    "SELECT snippet(chunks, 2, '<mark>', '</mark>', '…', 24) FROM chunks WHERE chunks MATCH ?1 AND rowid = ?2";
constexpr const char* kDocumentSql = "SELECT id, title, path, first_chunk, chunk_count FROM docs WHERE id = ?1";
constexpr const char* kDocumentChunksSql = "SELECT body FROM chunks WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid";
// The rowid range keeps FTS5 to one document's chunks; the heading is compared
// on those rows.
constexpr const char* kSectionChunksSql =
    "SELECT rowid, body FROM chunks WHERE rowid BETWEEN ?1 AND ?2 AND heading = ?3 ORDER BY rowid";
constexpr const char* kKeptQueries[] = {kMatchSql,    kChunkTextSql,      kSnippetSql,
                                        kDocumentSql, kDocumentChunksSql, kSectionChunksSql};

// A document's row: what document() and section() both start from.
struct DocumentRow {
  std::string id, title, path;
  int64_t first_chunk = 0, chunk_count = 0;
};

Result<DocumentRow> find_document(sqlite3* db, std::string_view id) {
  Stmt d(db, kDocumentSql, KeepPrepared{});
  if (!d.ok()) return sql_error(db, "prepare document");
  d.text(1, id);
  int rc = sqlite3_step(d.get());
  if (rc == SQLITE_DONE) return NotFound("no document with id '" + std::string(id) + "'");
  if (rc != SQLITE_ROW) return sql_error(db, "document");
  return DocumentRow{d.column(0), d.column(1), d.column(2), sqlite3_column_int64(d.get(), 3),
                     sqlite3_column_int64(d.get(), 4)};
}

// Closes a pooled connection, first finalizing the statements it kept. Only
// ours: FTS5 keeps prepared statements of its own on the connection and
// finalizes them itself when the connection closes.
void close_connection(sqlite3* db) {
  for (sqlite3_stmt* k = sqlite3_next_stmt(db, nullptr); k != nullptr;) {
    sqlite3_stmt* next = sqlite3_next_stmt(db, k);
    for (const char* sql : kKeptQueries) {
      if (std::strcmp(sqlite3_sql(k), sql) == 0) {
        sqlite3_finalize(k);
        break;
      }
    }
    k = next;
  }
  sqlite3_close_v2(db);
}

// When the statements of one connection must stop; its progress handler
// interrupts any statement (SQLITE_INTERRUPT) once `at` has passed.
struct StatementDeadline {
  Clock::time_point at = Clock::time_point::max();
};

int past_deadline(void* arg) { return Clock::now() > static_cast<StatementDeadline*>(arg)->at ? 1 : 0; }

// Makes a connection fit to read an untrusted image: SQLite's defensive mode
// (no writes to the schema or shadow tables, no journal tricks), no views or
// triggers at all, schema-defined functions and virtual tables untrusted, and a
// deadline on every statement. Before anything reads the image.
Status harden_connection(sqlite3* db, StatementDeadline* deadline) {
  int ok = 0;
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &ok);
  if (ok != 1) return Internal("sqlite: cannot turn on the defensive mode");
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &ok);
  if (ok != 0) return Internal("sqlite: cannot turn off the trusted schema");
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &ok);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, &ok);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &ok);
  sqlite3_progress_handler(db, kProgressSteps, past_deadline, deadline);
  return exec(db, "PRAGMA trusted_schema=OFF");
}

// Whether sqlite_schema holds exactly the objects a build makes: meta, docs and
// chunks as written in kMetaSql/kDocsSql/kChunksSql, FTS5's five shadow tables
// of chunks, and the two automatic indexes of meta's key and docs' id. Nothing
// else (no view, trigger, index or table of anyone else's). The first query on
// an image: reading sqlite_schema parses the schema and runs nothing of it.
Status check_schema(sqlite3* db) {
  struct Expected {
    const char* type;
    const char* name;
    const char* table;
    const char* sql;         // exactly this, or
    const char* sql_prefix;  // starting with this (FTS5 writes the shadow tables' own)
    bool seen = false;
  };
  Expected expected[] = {
      {"table", "meta", "meta", kMetaSql, nullptr},
      {"index", "sqlite_autoindex_meta_1", "meta", nullptr, nullptr},
      {"table", "docs", "docs", kDocsSql, nullptr},
      {"index", "sqlite_autoindex_docs_1", "docs", nullptr, nullptr},
      {"table", "chunks", "chunks", kChunksSql, nullptr},
      {"table", "chunks_data", "chunks_data", nullptr, "CREATE TABLE 'chunks_data'("},
      {"table", "chunks_idx", "chunks_idx", nullptr, "CREATE TABLE 'chunks_idx'("},
      {"table", "chunks_content", "chunks_content", nullptr, "CREATE TABLE 'chunks_content'("},
      {"table", "chunks_docsize", "chunks_docsize", nullptr, "CREATE TABLE 'chunks_docsize'("},
      {"table", "chunks_config", "chunks_config", nullptr, "CREATE TABLE 'chunks_config'("},
  };
  auto bad = [](const std::string& why) { return InvalidArgument("knowledge-base artifact: " + why); };
  Stmt q(db, "SELECT type, name, tbl_name, sql FROM sqlite_schema");
  if (!q.ok()) return bad(std::string("unreadable schema: ") + sqlite3_errmsg(db));
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    std::string type = q.column(0), name = q.column(1), table = q.column(2);
    bool has_sql = sqlite3_column_type(q.get(), 3) != SQLITE_NULL;
    std::string sql = q.column(3);
    Expected* match = nullptr;
    for (Expected& e : expected)
      if (type == e.type && name == e.name && table == e.table) match = &e;
    if (!match || match->seen) return bad("unexpected " + type + " '" + name + "' in the schema");
    bool sql_ok = match->sql          ? (has_sql && sql == match->sql)
                  : match->sql_prefix ? (has_sql && sql.rfind(match->sql_prefix, 0) == 0)
                                      : !has_sql;  // an automatic index has no SQL
    if (!sql_ok) return bad("the schema of " + type + " '" + name + "' is not ours");
    match->seen = true;
  }
  if (rc != SQLITE_DONE) return bad(std::string("unreadable schema: ") + sqlite3_errmsg(db));
  for (const Expected& e : expected)
    if (!e.seen) return bad(std::string("the schema has no ") + e.type + " '" + e.name + "'");
  return Status::Ok();
}

// PRAGMA quick_check over the whole image: its b-trees and records are sound.
Status quick_check(sqlite3* db) {
  Stmt q(db, "PRAGMA quick_check");
  if (!q.ok()) return InvalidArgument(std::string("knowledge-base artifact: quick_check: ") + sqlite3_errmsg(db));
  int rc = sqlite3_step(q.get());
  if (rc != SQLITE_ROW)
    return InvalidArgument(std::string("knowledge-base artifact: quick_check: ") + sqlite3_errmsg(db));
  std::string first = q.column(0);
  if (first != "ok") return InvalidArgument("knowledge-base artifact: quick_check failed: " + first);
  return Status::Ok();
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Parsed documents handed from the helpers to the inserter, in path order.
struct Pipeline {
  std::vector<SourceFile> files;
  size_t chunk_size = 1200;
  uint64_t max_file_bytes = kDefaultMaxFileBytes;
  size_t window_files = 64;   // files claimed ahead of the inserter at most
  uint64_t window_bytes = 0;  // their source bytes at most (0: no bound); the inserter's next file always goes
  uint64_t bytes_ahead = 0;   // source bytes claimed and not yet consumed, guarded by mu
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<Result<Document>>> slots;  // guarded by mu
  size_t next = 0;      // next file to claim, guarded by mu
  size_t consumed = 0;  // next slot the inserter takes, guarded by mu
  bool done = false;    // the inserter has finished or given up, guarded by mu

  bool can_claim() const {
    if (done || next >= files.size() || next >= consumed + window_files) return false;
    return window_bytes == 0 || next == consumed || bytes_ahead + files[next].size <= window_bytes;
  }
  size_t claim() {
    bytes_ahead += files[next].size;
    return next++;
  }
  // Parses file i outside the lock and stores the result.
  void parse(size_t i, std::unique_lock<std::mutex>& lock) {
    lock.unlock();
    Result<Document> doc = load_document(files[i], chunk_size, max_file_bytes);
    lock.lock();
    slots[i].emplace(std::move(doc));
    cv.notify_all();
  }
  void help() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return done || next >= files.size() || can_claim(); });
      if (!can_claim()) return;
      parse(claim(), lock);
    }
  }
};

// Closes a file descriptor on every path out.
struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

ArtifactWriter::Options writer_options(const BuildOptions& options, const BuildPlan& plan) {
  ArtifactWriter::Options w;
  w.level = options.zstd_level;
  w.workers = plan.zstd_workers;
  return w;
}

// The settings of the build's connection, as the plan says.
Status configure_build(sqlite3* db, const BuildPlan& plan) {
  if (!plan.on_disk) return exec(db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=MEMORY;");
  std::string pragmas =
      "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE; PRAGMA mmap_size=0;"
      " PRAGMA temp_store=FILE;";
  if (plan.cache_kib > 0) pragmas += " PRAGMA cache_size=-" + std::to_string(plan.cache_kib) + ";";
  return exec(db, pragmas);
}

// FTS5's own options (kept in the chunks_config table, harmless to readers).
Status configure_fts(sqlite3* db, const BuildPlan& plan) {
  auto set = [&](const char* name, int64_t value) {
    return exec(db, std::string("INSERT INTO chunks(chunks, rank) VALUES('") + name + "', " + std::to_string(value) + ")");
  };
  if (plan.fts_hashsize > 0)
    if (Status st = set("hashsize", plan.fts_hashsize); !st.ok()) return st;
  if (plan.fts_automerge >= 0)
    if (Status st = set("automerge", plan.fts_automerge); !st.ok()) return st;
  if (plan.fts_crisismerge >= 0)
    if (Status st = set("crisismerge", plan.fts_crisismerge); !st.ok()) return st;
  return Status::Ok();
}

// The image of the in-memory database `db`, compressed. Reads the database's
// own buffer (memdb, no copy) when SQLite can give it, else a serialized copy.
Result<ChunkedBytes> compress_memory_database(sqlite3* db, const ArtifactWriter::Options& wo, uint64_t* size) {
  sqlite3_int64 n = 0;
  unsigned char* image = sqlite3_serialize(db, "main", &n, SQLITE_SERIALIZE_NOCOPY);
  std::unique_ptr<unsigned char, void (*)(void*)> copy(nullptr, sqlite3_free);
  if (!image) {
    image = sqlite3_serialize(db, "main", &n, 0);
    if (!image) return ResourceExhausted("sqlite3_serialize failed (out of memory)");
    copy.reset(image);
  }
  *size = static_cast<uint64_t>(n);
  auto writer = ArtifactWriter::start(*size, wo);
  if (!writer.ok()) return writer.status();
  if (Status st = (*writer)->write(std::string_view(reinterpret_cast<const char*>(image), *size)); !st.ok()) return st;
  return (*writer)->finish();
}

// The database file at `path`, compressed as it is read a piece at a time.
Result<ChunkedBytes> compress_database_file(const std::string& path, const ArtifactWriter::Options& wo,
                                            uint64_t* size) {
  FdCloser file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) return Internal("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) return Internal("cannot stat '" + path + "': " + std::strerror(errno));
  ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  *size = static_cast<uint64_t>(st.st_size);
  auto writer = ArtifactWriter::start(*size, wo);
  if (!writer.ok()) return writer.status();
  std::string buffer(kReadPiece, '\0');
  uint64_t done = 0;
  while (done < *size) {
    ssize_t got = ::read(file.fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Internal("cannot read '" + path + "': " + std::strerror(errno));
    if (got == 0) return Internal("'" + path + "' ended early");
    done += static_cast<uint64_t>(got);
    if (Status s = (*writer)->write(std::string_view(buffer.data(), static_cast<size_t>(got))); !s.ok()) return s;
  }
  return (*writer)->finish();
}

// Where the build database lives: a private in-memory database (memdb, so the
// image can be read in place), or a file in a scratch folder.
constexpr const char* kMemoryDatabase = "file:memgate-kb-build?vfs=memdb";
constexpr sqlite3_int64 kMaxMemoryImage = sqlite3_int64{8} << 30;

// --- Search ----------------------------------------------------------------
//
// FTS5's documented top-k (`ORDER BY rank LIMIT n`) scores every match twice
// (FTS5 runs an inner statement that selects `rank` and orders by the rank
// function), sorts them all, and bm25 reads each row's length from the docsize
// table with a statement of its own; a snippet then tokenizes its chunk twice.
// search() instead steps once through the matches in rowid order with
// memgate_bm25, which is FTS5's bm25 (same formula, same weights, same order
// of operations, so the same scores) except that a row's length in tokens
// comes from an array the Index filled at open; keeps the best chunk of each
// document in a per-thread scratch; and, for the k documents it keeps, reads
// the chunk's heading and body by rowid and highlights the query's terms in
// one pass of FTS5's own tokenizer (so `floats` is marked for `floating`
// exactly when FTS5 would match it). bench/kb/run has the figures.

// The per-query half of bm25 (FTS5's fts5Bm25GetData): the collection's
// average length and each phrase's idf, counted once per query.
struct RankData {
  double avgdl = 0;
  std::vector<double> idf;
  std::vector<double> freq;  // the current row's, per phrase (reused row to row)
};

int count_row(const Fts5ExtensionApi*, Fts5Context*, void* n) {
  ++*static_cast<int64_t*>(n);
  return SQLITE_OK;
}

// memgate_bm25(chunks): -bm25 with kColumnWeights, as FTS5's bm25() computes
// it: sum over phrases of idf * f * (k1 + 1) / (f + k1 * (1 - b + b * D / avgdl))
// with f the weighted count of the phrase's instances in the row, D the row's
// tokens. The user data is the Index's chunk_tokens_ (rowid -> tokens); a
// rowid outside it asks FTS5 (xColumnSize), as bm25 always does.
void rank_function(const Fts5ExtensionApi* api, Fts5Context* fts, sqlite3_context* ctx, int, sqlite3_value**) {
  constexpr double k1 = 1.2, b = 0.75;
  auto* data = static_cast<RankData*>(api->xGetAuxdata(fts, 0));
  int rc = SQLITE_OK;
  if (!data) {
    auto fresh = std::make_unique<RankData>();
    int phrases = api->xPhraseCount(fts);
    sqlite3_int64 rows = 0, tokens = 0;
    rc = api->xRowCount(fts, &rows);
    if (rc == SQLITE_OK) rc = api->xColumnTotalSize(fts, -1, &tokens);
    if (rc == SQLITE_OK) fresh->avgdl = static_cast<double>(tokens) / static_cast<double>(rows);
    for (int i = 0; rc == SQLITE_OK && i < phrases; ++i) {
      int64_t hits = 0;
      rc = api->xQueryPhrase(fts, i, &hits, count_row);
      double idf = std::log((static_cast<double>(rows) - static_cast<double>(hits) + 0.5) /
                            (static_cast<double>(hits) + 0.5));
      fresh->idf.push_back(idf <= 0.0 ? 1e-6 : idf);
    }
    if (rc != SQLITE_OK) {
      sqlite3_result_error_code(ctx, rc);
      return;
    }
    data = fresh.get();
    rc = api->xSetAuxdata(fts, fresh.release(), [](void* p) { delete static_cast<RankData*>(p); });
    if (rc != SQLITE_OK) {
      sqlite3_result_error_code(ctx, rc);
      return;
    }
  }
  // Per row: the weighted instance counts, in FTS5's instance order.
  std::vector<double>& freq = data->freq;
  const size_t phrases = data->idf.size();
  freq.assign(phrases, 0.0);
  int instances = 0;
  rc = api->xInstCount(fts, &instances);
  for (int i = 0; rc == SQLITE_OK && i < instances; ++i) {
    int phrase = 0, column = 0, offset = 0;
    rc = api->xInst(fts, i, &phrase, &column, &offset);
    if (rc == SQLITE_OK && phrase >= 0 && static_cast<size_t>(phrase) < phrases)
      freq[phrase] += column >= 0 && column < 3 ? kColumnWeights[column] : 1.0;
  }
  double length = 0;
  if (rc == SQLITE_OK) {
    const auto* tokens = static_cast<const std::vector<uint32_t>*>(api->xUserData(fts));
    sqlite3_int64 rowid = api->xRowid(fts);
    if (tokens && rowid > 0 && static_cast<uint64_t>(rowid) < tokens->size()) {
      length = (*tokens)[static_cast<size_t>(rowid)];
    } else {
      int n = 0;
      rc = api->xColumnSize(fts, -1, &n);
      length = n;
    }
  }
  if (rc != SQLITE_OK) {
    sqlite3_result_error_code(ctx, rc);
    return;
  }
  double score = 0;
  for (size_t i = 0; i < phrases; ++i)
    score += data->idf[i] * ((freq[i] * (k1 + 1.0)) / (freq[i] + k1 * (1 - b + b * length / data->avgdl)));
  sqlite3_result_double(ctx, -1.0 * score);
}

// The FTS5 extension API of a connection (one per connection), or null.
fts5_api* fts5_of(sqlite3* db) {
  fts5_api* api = nullptr;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, nullptr) != SQLITE_OK) return nullptr;
  sqlite3_bind_pointer(s, 1, &api, "fts5_api_ptr", nullptr);
  sqlite3_step(s);
  sqlite3_finalize(s);
  return api;
}

// One token of a chunk's body: its bytes, and which query term it is (-1: none).
struct BodyToken {
  int start = 0, end = 0;
  int term = -1;
};

// What the highlighter needs from a tokenizer callback.
struct TokenSink {
  std::vector<BodyToken>* tokens = nullptr;
  const std::vector<std::string>* terms = nullptr;  // the query's distinct tokens
  std::vector<std::string>* out = nullptr;          // tokenizing a query word: its tokens
};

int on_token(void* p, int, const char* token, int n, int start, int end) {
  auto* sink = static_cast<TokenSink*>(p);
  std::string_view t(token, static_cast<size_t>(n));
  if (sink->out) {
    sink->out->emplace_back(t);
    return SQLITE_OK;
  }
  int term = -1;
  for (size_t i = 0; i < sink->terms->size(); ++i)
    if ((*sink->terms)[i] == t) {
      term = static_cast<int>(i);
      break;
    }
  sink->tokens->push_back({start, end, term});
  return SQLITE_OK;
}

constexpr int kSnippetTokens = 24;  // as snippet(..., 24) in kSnippetSql

// Whether token p (> 0) starts a sentence as snippet() sees one: whitespace
// right before it, and a full stop or a colon before that.
bool starts_sentence(std::string_view body, const std::vector<BodyToken>& tokens, int p) {
  size_t i = std::min(body.size(), static_cast<size_t>(tokens[static_cast<size_t>(p)].start));
  size_t blank = 0;
  while (i > 0 && (body[i - 1] == ' ' || body[i - 1] == '\t' || body[i - 1] == '\n' || body[i - 1] == '\r')) {
    --i;
    ++blank;
  }
  return blank > 0 && i > 0 && (body[i - 1] == '.' || body[i - 1] == ':');
}

// The snippet of `body` for phrases (each a sequence of term ids), chosen the
// way FTS5's snippet() chooses (fts5_aux.c), so the two agree on the same
// chunk: every phrase instance proposes a window of kSnippetTokens tokens
// starting there, scored 1000 for each distinct phrase whose instance starts
// inside it and 1 for each repeat, and then shifted to centre what it holds;
// the sentence start (a token after ". " or ": ", or the first token) before
// the instance proposes a window starting there, scored the same plus 100
// (120 at the very start). The first best proposal wins; with none, the text's
// first tokens. "…" where the window cuts the text; each run of overlapping
// instances inside <mark></mark> (closed at the window's end if it runs past).
std::string make_snippet(std::string_view body, const std::vector<BodyToken>& tokens,
                         const std::vector<std::vector<int>>& phrases) {
  struct Instance {
    int pos, len, phrase;
  };
  const int n = static_cast<int>(tokens.size());
  if (n == 0) return std::string(body);
  std::vector<Instance> found;
  for (int i = 0; i < n; ++i) {
    if (tokens[static_cast<size_t>(i)].term < 0) continue;
    for (size_t p = 0; p < phrases.size(); ++p) {
      const auto& ph = phrases[p];
      int len = static_cast<int>(ph.size());
      if (len == 0 || i + len > n) continue;
      bool match = true;
      for (int j = 0; j < len && match; ++j)
        match = tokens[static_cast<size_t>(i + j)].term == ph[static_cast<size_t>(j)];
      if (match) found.push_back({i, len, static_cast<int>(p)});
    }
  }
  // Score of the window [from, from + kSnippetTokens): distinct phrases count
  // 1000, repeats 1; also where its first counted instance starts and its last ends.
  std::vector<char> seen(phrases.size());
  auto score = [&](int from, int* first_at, int* last_end) {
    std::fill(seen.begin(), seen.end(), 0);
    long total = 0;
    *first_at = -1;
    for (const Instance& in : found) {
      if (in.pos < from || in.pos >= from + kSnippetTokens) continue;
      char& was = seen[static_cast<size_t>(in.phrase)];
      total += was ? 1 : 1000;
      was = 1;
      if (*first_at < 0) *first_at = in.pos;
      *last_end = in.pos + in.len;
    }
    return total;
  };
  std::vector<int> sentences;  // token indexes that start a sentence, ascending
  if (n > kSnippetTokens) {
    sentences.push_back(0);
    for (int p = 1; p < n; ++p)
      if (starts_sentence(body, tokens, p)) sentences.push_back(p);
  }
  long best = 0;
  int start = 0;
  for (const Instance& in : found) {
    int first_at = 0, last_end = 0;
    long sc = score(in.pos, &first_at, &last_end);
    if (sc > best) {
      best = sc;
      int adjusted = first_at - (kSnippetTokens - (last_end - first_at)) / 2;
      if (adjusted + kSnippetTokens > n) adjusted = n - kSnippetTokens;
      start = std::max(0, adjusted);
    }
    if (!sentences.empty()) {
      size_t jj = 0;
      while (jj + 1 < sentences.size() && sentences[jj + 1] <= in.pos) ++jj;
      int from = sentences[jj];
      if (from < in.pos) {
        long with = score(from, &first_at, &last_end) + (from == 0 ? 120 : 100);
        if (with > best) {
          best = with;
          start = from;
        }
      }
    }
  }
  const int last = start + kSnippetTokens - 1;  // the window's last token (may be past the text)
  std::string out;
  out.reserve(static_cast<size_t>(kSnippetTokens) * 12);
  if (start > 0) out += "…";
  size_t at = start == 0 ? 0 : static_cast<size_t>(tokens[static_cast<size_t>(start)].start);
  // Runs of overlapping instances (first and last token); those that start
  // inside the window are marked.
  std::vector<std::pair<int, int>> runs;
  for (const Instance& in : found) {
    int end = in.pos + in.len - 1;
    if (!runs.empty() && in.pos <= runs.back().second) runs.back().second = std::max(runs.back().second, end);
    else runs.emplace_back(in.pos, end);
  }
  for (auto [run_start, run_end] : runs) {
    if (run_start < start) continue;
    if (run_start > last) break;
    size_t open = static_cast<size_t>(tokens[static_cast<size_t>(run_start)].start);
    int close_token = std::min({run_end, last, n - 1});
    size_t close = static_cast<size_t>(tokens[static_cast<size_t>(close_token)].end);
    out.append(body, at, open - at);
    out += "<mark>";
    out.append(body, open, close - open);
    out += "</mark>";
    at = close;
  }
  if (last >= n - 1) {
    out.append(body, at, std::string_view::npos);
  } else {
    size_t end = static_cast<size_t>(tokens[static_cast<size_t>(last)].end);
    if (end > at) out.append(body, at, end - at);
    out += "…";
  }
  return out;
}

// The words of a simple query, as quote_query keeps them (unquoted).
std::vector<std::string_view> query_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (i < text.size()) {
    while (i < text.size() && space(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !space(text[i])) ++i;
    std::string_view word = text.substr(start, i - start);
    bool has_letter = false;
    for (unsigned char c : word) has_letter |= std::isalnum(c) || c >= 0x80;
    if (has_letter) words.push_back(word);
  }
  return words;
}

// A worker thread's scratch for one search: the best score and chunk of each
// document touched, and which were touched (reset after every search).
struct SearchScratch {
  std::vector<double> best;
  std::vector<int64_t> best_row;  // 0: not touched
  std::vector<uint32_t> touched;
  std::vector<BodyToken> tokens;
};
thread_local SearchScratch t_scratch;

}  // namespace

std::chrono::milliseconds BuildProgress::eta() const {
  if (bytes_done == 0 || bytes_total <= bytes_done) return milliseconds(0);
  double rate = static_cast<double>(bytes_done) / std::max<int64_t>(1, elapsed.count());
  return milliseconds(static_cast<int64_t>(static_cast<double>(bytes_total - bytes_done) / rate));
}

int BuildProgress::percent() const {
  if (bytes_total == 0) return finished ? 100 : 0;
  return static_cast<int>(std::min<uint64_t>(100, bytes_done * 100 / bytes_total));
}

std::string quote_query(std::string_view text, bool any_word) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    size_t start = i;
    while (i < text.size() && !(text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    std::string_view word = text.substr(start, i - start);
    bool has_letter = false;
    for (unsigned char c : word) has_letter |= std::isalnum(c) || c >= 0x80;
    if (!has_letter) continue;
    if (!out.empty()) out += any_word ? " OR " : " ";
    out += '"';
    for (char c : word) {
      if (c == '"') out += '"';
      out += c;
    }
    out += '"';
  }
  return out;
}

Result<ChunkedBytes> build_artifact_chunked(const std::string& dir, const BuildOptions& options, BuildStats* stats) {
  auto started = Clock::now();
  std::vector<SourceFile> too_large;
  auto listing = scan_corpus(dir, options.max_file_bytes, &too_large);
  if (!listing.ok()) return listing.status();
  for (const SourceFile& f : too_large)
    spdlog::warn("kb: skipping {}: {} is more than KB_MAX_FILE_SIZE ({})", f.path, format_bytes(f.size),
                 format_bytes(options.max_file_bytes));
  auto pipe = std::make_shared<Pipeline>();
  pipe->files = std::move(*listing);
  pipe->chunk_size = options.chunk_size;
  pipe->max_file_bytes = options.max_file_bytes;
  pipe->slots.resize(pipe->files.size());
  BuildProgress progress;
  progress.files_total = pipe->files.size();
  progress.bytes_total = corpus_bytes(pipe->files);
  std::string fingerprint = corpus_fingerprint(pipe->files);
  const BuildPlan plan = plan_build(estimate_peaks(pipe->files, options.chunk_size), options.memory_budget);
  pipe->window_files = std::max<size_t>(1, plan.window_files);
  pipe->window_bytes = plan.window_bytes;

  // Declared before the connection, so the connection is closed first.
  ScratchDir scratch;
  std::string db_name = kMemoryDatabase;
  std::string image_path;
  if (plan.on_disk) {
    auto made = ScratchDir::make(options.temp_dir);
    if (!made.ok()) return made.status();
    scratch = std::move(*made);
    auto file = scratch.private_file("build.db");
    if (!file.ok()) return file.status();
    db_name = *file;
    auto image = scratch.private_file("image.db");
    if (!image.ok()) return image.status();
    image_path = *image;
  }
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
  if (sqlite3_open_v2(db_name.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    Status st = sql_error(db, "open");
    sqlite3_close_v2(db);
    return st;
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> holder(db, sqlite3_close_v2);
  if (!plan.on_disk) {
    sqlite3_int64 limit = kMaxMemoryImage;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_SIZE_LIMIT, &limit);
  }
  if (Status st = configure_build(db, plan); !st.ok()) return st;
  for (const char* sql : {kMetaSql, kDocsSql, kChunksSql, kRankSql})
    if (Status st = exec(db, sql); !st.ok()) return st;
  if (Status st = configure_fts(db, plan); !st.ok()) return st;
  if (Status st = exec(db, "BEGIN"); !st.ok()) return st;

  auto finish_pipeline = [&] {
    std::lock_guard lock(pipe->mu);
    pipe->done = true;
    pipe->cv.notify_all();
  };
  if (options.workers) {
    size_t helpers = options.max_helpers ? std::min(options.max_helpers, options.workers->size()) : options.workers->size();
    if (plan.helpers) helpers = std::min(helpers, plan.helpers);
    for (size_t i = 0; i < helpers && i < pipe->files.size(); ++i)
      options.workers->post([pipe] { pipe->help(); });
  }

  Stmt insert_doc(db,
                  "INSERT INTO docs(rowid, id, title, path, kind, bytes, first_chunk, chunk_count) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  Stmt insert_chunk(db, "INSERT INTO chunks(rowid, title, heading, body, doc) VALUES(?1, ?2, ?3, ?4, ?5)");
  if (!insert_doc.ok() || !insert_chunk.ok()) {
    finish_pipeline();
    return sql_error(db, "prepare");
  }
  size_t documents = 0, chunks = 0;
  int64_t rowid = 1;
  uint64_t batch_start = 0;  // bytes_done at the last commit
  auto last_report = Clock::now();
  for (size_t i = 0; i < pipe->files.size(); ++i) {
    if (options.stop.stop_requested()) {
      finish_pipeline();
      return Cancelled("index build stopped");
    }
    std::optional<Result<Document>> slot;
    {
      std::unique_lock lock(pipe->mu);
      while (!pipe->slots[i]) {
        if (pipe->can_claim()) pipe->parse(pipe->claim(), lock);
        else pipe->cv.wait(lock);
      }
      slot = std::move(pipe->slots[i]);
      pipe->slots[i].reset();
      pipe->consumed = i + 1;
      pipe->bytes_ahead -= pipe->files[i].size;
      pipe->cv.notify_all();
    }
    const SourceFile& file = pipe->files[i];
    progress.files_done = i + 1;
    progress.bytes_done += file.size;
    if (!slot->ok()) {
      spdlog::warn("kb: skipping {}: {}", file.path, slot->status().message());
      continue;
    }
    Document& doc = slot->value();
    if (doc.chunks.empty()) continue;
    int64_t doc_rowid = static_cast<int64_t>(documents) + 1;
    insert_doc.integer(1, doc_rowid);
    insert_doc.text(2, doc.id);
    insert_doc.text(3, doc.title);
    insert_doc.text(4, doc.path);
    insert_doc.text(5, kind_name(doc.kind));
    insert_doc.integer(6, static_cast<int64_t>(doc.source_bytes));
    insert_doc.integer(7, rowid);
    insert_doc.integer(8, static_cast<int64_t>(doc.chunks.size()));
    int rc = sqlite3_step(insert_doc.get());
    sqlite3_reset(insert_doc.get());
    if (rc == SQLITE_CONSTRAINT) {
      spdlog::warn("kb: skipping {}: its id {} is taken by another path", doc.path, doc.id);
      continue;
    }
    if (rc != SQLITE_DONE) {
      finish_pipeline();
      return sql_error(db, "insert document");
    }
    ++documents;
    for (const Chunk& c : doc.chunks) {
      insert_chunk.integer(1, rowid++);
      insert_chunk.text(2, doc.title);
      insert_chunk.text(3, c.heading);
      insert_chunk.text(4, c.body);
      insert_chunk.integer(5, doc_rowid);
      rc = sqlite3_step(insert_chunk.get());
      sqlite3_reset(insert_chunk.get());
      if (rc != SQLITE_DONE) {
        finish_pipeline();
        return sql_error(db, "insert chunk");
      }
      ++chunks;
    }
    slot.reset();  // the document's text goes before the commit below
    if (plan.batch_bytes > 0 && progress.bytes_done - batch_start >= plan.batch_bytes) {
      batch_start = progress.bytes_done;
      if (Status st = exec(db, "COMMIT; BEGIN;"); !st.ok()) {
        finish_pipeline();
        return st;
      }
    }
    auto now = Clock::now();
    if (options.progress && now - last_report >= options.progress_every) {
      last_report = now;
      progress.elapsed = std::chrono::duration_cast<milliseconds>(now - started);
      options.progress(progress);
    }
  }
  finish_pipeline();
  if (options.stop.stop_requested()) return Cancelled("index build stopped");
  {
    Stmt meta(db, "INSERT INTO meta(key, value) VALUES(?1, ?2)");
    auto put = [&](const char* key, const std::string& value) {
      meta.text(1, key);
      meta.text(2, value);
      int rc = sqlite3_step(meta.get());
      sqlite3_reset(meta.get());
      return rc == SQLITE_DONE;
    };
    bool ok = meta.ok() && put("format", std::to_string(kFormat)) && put("fingerprint", fingerprint) &&
              put("built_at", utc_now()) && put("documents", std::to_string(documents)) &&
              put("chunks", std::to_string(chunks)) && put("chunk_size", std::to_string(options.chunk_size));
    if (!ok) return sql_error(db, "insert meta");
  }
  if (Status st = exec(db, "COMMIT"); !st.ok()) return st;
  if (Status st = exec(db, "INSERT INTO chunks(chunks) VALUES('optimize')"); !st.ok()) return st;
  if (options.stop.stop_requested()) return Cancelled("index build stopped");
  insert_doc.finalize();  // so closing the connection frees its cache at once
  insert_chunk.finalize();
  uint64_t size = 0;
  auto indexed = Clock::now();
  Result<ChunkedBytes> artifact = ChunkedBytes();
  if (!plan.on_disk) {
    if (Status st = exec(db, "VACUUM"); !st.ok()) return st;
    indexed = Clock::now();
    artifact = compress_memory_database(db, writer_options(options, plan), &size);
  } else {
    // A compact copy (no free pages left by the merges) through its own small
    // cache; the build's connection is closed before compressing.
    {
      Stmt vacuum(db, "VACUUM INTO ?1");
      if (!vacuum.ok()) return sql_error(db, "prepare vacuum");
      vacuum.text(1, image_path);
      if (sqlite3_step(vacuum.get()) != SQLITE_DONE) return sql_error(db, "vacuum into");
    }
    holder.reset();
    indexed = Clock::now();
    artifact = compress_database_file(image_path, writer_options(options, plan), &size);
    scratch.remove();
  }
  holder.reset();
  if (!artifact.ok()) return artifact.status();
  auto finished = Clock::now();
  progress.finished = true;
  progress.elapsed = std::chrono::duration_cast<milliseconds>(finished - started);
  if (options.progress) options.progress(progress);
  if (stats) {
    stats->files = pipe->files.size();
    stats->documents = documents;
    stats->chunks = chunks;
    stats->source_bytes = progress.bytes_total;
    stats->database_bytes = size;
    stats->artifact_bytes = artifact->size();
    stats->fingerprint = fingerprint;
    stats->index_time = std::chrono::duration_cast<milliseconds>(indexed - started);
    stats->compress_time = std::chrono::duration_cast<milliseconds>(finished - indexed);
    stats->on_disk = plan.on_disk;
  }
  return artifact;
}

Result<std::string> build_artifact(const std::string& dir, const BuildOptions& options, BuildStats* stats) {
  auto pieces = build_artifact_chunked(dir, options, stats);
  if (!pieces.ok()) return pieces.status();
  std::string out;
  out.reserve(pieces->size());
  while (!pieces->empty()) out += pieces->take_front();  // each piece freed once copied
  return out;
}

// ---------------------------------------------------------------------------

struct Index::Connection {
  sqlite3* db = nullptr;
  StatementDeadline deadline;  // the progress handler's, so it outlives db
  // The table's tokenizer ('porter unicode61 remove_diacritics 2'), for
  // highlighting a simple query's terms; made when the connection opens.
  fts5_tokenizer tokenizer{};
  Fts5Tokenizer* tok = nullptr;
  ~Connection() {
    if (tok) tokenizer.xDelete(tok);
    if (db) close_connection(db);
  }
};

// A simple query's phrases as the table's tokenizer makes them: the distinct
// tokens, and each phrase (a quoted word) as a sequence of indexes into them.
struct Index::Terms {
  std::vector<std::string> tokens;
  std::vector<std::vector<int>> phrases;
};

class Index::Lease {
 public:
  Lease(const Index* index, Connection* c, milliseconds deadline) : index_(index), c_(c) {
    c_->deadline.at = Clock::now() + deadline;
  }
  Lease(Lease&& o) noexcept : index_(o.index_), c_(std::exchange(o.c_, nullptr)) {}
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (c_) index_->checkin(c_);
  }
  sqlite3* get() const { return c_->db; }
  Connection& connection() const { return *c_; }

 private:
  const Index* index_;
  Connection* c_;
};

Index::~Index() {
  std::lock_guard lock(mu_);
  for (Connection* c : idle_) delete c;
  idle_.clear();
  sqlite3_free(image_);
}

int Index::connections_opened() const {
  std::lock_guard lock(mu_);
  return opened_;
}

Result<Index::Connection*> Index::open_connection() const {
  auto c = std::make_unique<Connection>();
  if (sqlite3_open_v2(":memory:", &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK)
    return sql_error(c->db, "open");
  if (Status st = harden_connection(c->db, &c->deadline); !st.ok()) return st;
  int rc = sqlite3_deserialize(c->db, "main", static_cast<unsigned char*>(image_),
                               static_cast<sqlite3_int64>(image_size_), static_cast<sqlite3_int64>(image_size_),
                               SQLITE_DESERIALIZE_READONLY);
  if (rc != SQLITE_OK) return sql_error(c->db, "deserialize");
  std::string pragmas = "PRAGMA query_only=1; PRAGMA mmap_size=" + std::to_string(image_size_) + ";";
  if (Status st = exec(c->db, pragmas.c_str()); !st.ok()) return st;
  fts5_api* fts5 = fts5_of(c->db);
  if (!fts5) return Internal("sqlite: no FTS5 API on the connection");
  if (fts5->xCreateFunction(fts5, "memgate_bm25", const_cast<std::vector<uint32_t>*>(&chunk_tokens_),
                            rank_function, nullptr) != SQLITE_OK)
    return Internal("sqlite: cannot register memgate_bm25");
  void* tokenizer_data = nullptr;
  const char* args[] = {"unicode61", "remove_diacritics", "2"};
  if (fts5->xFindTokenizer(fts5, "porter", &tokenizer_data, &c->tokenizer) != SQLITE_OK ||
      c->tokenizer.xCreate(tokenizer_data, args, 3, &c->tok) != SQLITE_OK)
    return Internal("sqlite: cannot make the porter tokenizer");
  return c.release();
}

Result<Index::Lease> Index::checkout(milliseconds deadline) const {
  std::unique_lock lock(mu_);
  for (;;) {
    if (!idle_.empty()) {
      Connection* c = idle_.back();
      idle_.pop_back();
      return Lease(this, c, deadline);
    }
    if (opened_ < pool_size_) {
      ++opened_;
      lock.unlock();
      auto c = open_connection();
      if (!c.ok()) {
        lock.lock();
        --opened_;
        cv_.notify_one();
        return c.status();
      }
      return Lease(this, *c, deadline);
    }
    cv_.wait(lock);
  }
}

void Index::checkin(Connection* c) const {
  std::lock_guard lock(mu_);
  idle_.push_back(c);
  cv_.notify_one();
}

Result<std::string> artifact_database(std::string_view artifact) {
  std::string out;
  auto source = view_source(artifact);
  auto read = read_artifact(*source, [&](uint64_t raw) -> Result<unsigned char*> {
    if (raw > OpenOptions{}.max_image) return ResourceExhausted("the artifact declares an image of " + std::to_string(raw) + " bytes");
    out.resize(raw);
    return reinterpret_cast<unsigned char*>(out.data());
  });
  if (!read.ok()) return read.status();
  return out;
}

Result<std::shared_ptr<Index>> Index::open(std::string_view artifact, int pool_size) {
  auto source = view_source(artifact);
  OpenOptions options;
  options.pool_size = pool_size;
  return open(*source, options);
}

Result<std::shared_ptr<Index>> Index::open(ByteSource& source, const OpenOptions& options) {
  std::shared_ptr<Index> index(new Index());  // frees the image on every path out
  index->pool_size_ = std::max(1, options.pool_size);
  auto read = read_artifact(source, [&](uint64_t raw) -> Result<unsigned char*> {
    if (raw > options.max_image)
      return ResourceExhausted("the knowledge-base artifact declares an image of " + std::to_string(raw) +
                               " bytes, more than the " + std::to_string(options.max_image) + " allowed");
    if (options.memory_budget > 0 && load_peak_for_image(raw) > options.memory_budget)
      return ResourceExhausted("loading the knowledge-base image of " + std::to_string(raw) + " bytes needs about " +
                               std::to_string(load_peak_for_image(raw)) + " bytes, more than the budget of " +
                               std::to_string(options.memory_budget));
    index->image_ = sqlite3_malloc64(raw);
    if (!index->image_) return ResourceExhausted("cannot allocate " + std::to_string(raw) + " bytes for the index");
    index->image_size_ = raw;
    return static_cast<unsigned char*>(index->image_);
  });
  if (!read.ok()) return read.status();
  if (std::memcmp(index->image_, "SQLite format 3", 16) != 0)
    return InvalidArgument("knowledge-base artifact does not hold an SQLite database");
  // The checks below, in this order, before any query touches a table; all of
  // them within one deadline that grows with the image (quick_check reads it all).
  milliseconds deadline = kOpenDeadline + milliseconds(index->image_size_ * 1000 / kOpenBytesPerSecond);
  auto lease = index->checkout(deadline);
  if (!lease.ok()) {
    if (lease.status().code() == Code::kResourceExhausted) return lease.status();
    return InvalidArgument("knowledge-base artifact: " + std::string(lease.status().message()));
  }
  auto refuse = [&](Status st) {
    if (st.code() == Code::kDeadlineExceeded || sqlite3_errcode(lease->get()) == SQLITE_INTERRUPT)
      return InvalidArgument("knowledge-base artifact: checking it took longer than " +
                             std::to_string(deadline.count()) + " ms: " + std::string(st.message()));
    if (st.code() == Code::kInternal) return InvalidArgument(std::string(st.message()));
    return st;
  };
  if (Status st = check_schema(lease->get()); !st.ok()) return refuse(st);
  if (Status st = quick_check(lease->get()); !st.ok()) return refuse(st);
  if (Status st = index->read_meta(lease->get(), *read); !st.ok()) return refuse(st);
  if (Status st = index->read_layout(lease->get()); !st.ok()) return refuse(st);
  return index;
}

Status Index::read_meta(sqlite3* db, uint64_t artifact_bytes) {
  Stmt meta(db, "SELECT key, value FROM meta");
  if (!meta.ok())
    return InvalidArgument("knowledge-base artifact has no meta table: " + std::string(sqlite3_errmsg(db)));
  IndexInfo& info = info_;
  std::string format;
  int rc;
  while ((rc = sqlite3_step(meta.get())) == SQLITE_ROW) {
    std::string key = meta.column(0), value = meta.column(1);
    if (key == "format") format = value;
    else if (key == "fingerprint") info.fingerprint = value;
    else if (key == "built_at") info.built_at = value;
    else if (key == "documents") info.documents = std::atoll(value.c_str());
    else if (key == "chunks") info.chunks = std::atoll(value.c_str());
    else if (key == "chunk_size") info.chunk_size = std::atoll(value.c_str());
  }
  if (rc != SQLITE_DONE) return InvalidArgument("knowledge-base artifact: " + std::string(sqlite3_errmsg(db)));
  if (format != std::to_string(kFormat)) return InvalidArgument("knowledge-base artifact has format '" + format + "'");
  info.database_bytes = image_size_;
  info.artifact_bytes = artifact_bytes;
  return Status::Ok();
}

Status Index::read_layout(sqlite3* db) {
  // Documents in rowid order; each claims the chunk rowids [first_chunk,
  // first_chunk + chunk_count). The arrays are bounded by the image (a chunk
  // row takes more than 8 bytes of it), so a crafted docs table cannot make
  // them grow past what was loaded.
  const uint64_t max_rows = image_size_ / 8 + 1024;
  Stmt d(db, "SELECT id, title, path, first_chunk, chunk_count FROM docs ORDER BY rowid");
  if (!d.ok()) return InvalidArgument(std::string("knowledge-base artifact: docs: ") + sqlite3_errmsg(db));
  int rc;
  uint64_t claimed = 0;  // also bounds the work below when claims overlap
  while ((rc = sqlite3_step(d.get())) == SQLITE_ROW) {
    int64_t first = sqlite3_column_int64(d.get(), 3), count = sqlite3_column_int64(d.get(), 4);
    if (first < 1 || count < 0 || static_cast<uint64_t>(first) + static_cast<uint64_t>(count) > max_rows ||
        (claimed += static_cast<uint64_t>(count)) > max_rows || docs_.size() >= kNoDoc)
      return InvalidArgument("knowledge-base artifact: its documents claim chunks outside the image");
    size_t end = static_cast<size_t>(first + count);
    if (chunk_doc_.size() < end) chunk_doc_.resize(end, kNoDoc);
    for (int64_t r = first; r < first + count; ++r) chunk_doc_[static_cast<size_t>(r)] = static_cast<uint32_t>(docs_.size());
    docs_.push_back({d.column(0), d.column(1), d.column(2)});
  }
  if (rc != SQLITE_DONE) return InvalidArgument(std::string("knowledge-base artifact: docs: ") + sqlite3_errmsg(db));
  // Each chunk's length in tokens: FTS5 keeps it in chunks_docsize as one
  // varint per column; xColumnSize(-1) is their sum, and so is this.
  chunk_tokens_.assign(chunk_doc_.size(), 0);
  Stmt z(db, "SELECT id, sz FROM chunks_docsize");
  if (!z.ok()) return InvalidArgument(std::string("knowledge-base artifact: docsize: ") + sqlite3_errmsg(db));
  while ((rc = sqlite3_step(z.get())) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(z.get(), 0);
    if (id <= 0 || static_cast<uint64_t>(id) >= chunk_tokens_.size()) continue;  // claimed by no document
    const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(z.get(), 1));
    int n = sqlite3_column_bytes(z.get(), 1);
    // SQLite's varint: 7 bits a byte, high bit set on all but the last, big
    // end first; a 9th byte counts whole.
    auto varint = [&](int& i) {
      uint64_t v = 0;
      for (int j = 0; j < 8; ++j) {
        if (i >= n) return v;
        unsigned char c = p[i++];
        v = (v << 7) | (c & 0x7F);
        if (!(c & 0x80)) return v;
      }
      if (i < n) v = (v << 8) | p[i++];
      return v;
    };
    uint64_t total = 0;
    for (int i = 0; i < n;) total += varint(i);
    chunk_tokens_[static_cast<size_t>(id)] = static_cast<uint32_t>(std::min<uint64_t>(total, 0xFFFFFFFFu));
  }
  if (rc != SQLITE_DONE) return InvalidArgument(std::string("knowledge-base artifact: docsize: ") + sqlite3_errmsg(db));
  return Status::Ok();
}

Status check_query(std::string_view query, bool advanced) {
  if (query.size() > 1000) return InvalidArgument("the query is longer than 1000 bytes");
  bool empty = advanced ? query.find_first_not_of(" \t\r\n") == std::string_view::npos : query_words(query).empty();
  if (empty) return InvalidArgument("the query has no word to search for");
  return Status::Ok();
}

Result<std::vector<SearchHit>> Index::run_search(Connection& c, const std::string& match, const Terms* terms,
                                                 int k) const {
  sqlite3* db = c.db;
  SearchScratch& sc = t_scratch;
  if (sc.best.size() < docs_.size()) {
    sc.best.resize(docs_.size());
    sc.best_row.resize(docs_.size(), 0);
  }
  // Whatever happens below, the next search finds the scratch clean.
  struct Reset {
    SearchScratch& sc;
    ~Reset() {
      for (uint32_t d : sc.touched) sc.best_row[d] = 0;
      sc.touched.clear();
    }
  } reset{sc};
  auto failed = [&](int rc) -> Status {
    std::string msg = sqlite3_errmsg(db);
    if (rc == SQLITE_ERROR) return InvalidArgument("bad query: " + msg);
    if (rc == SQLITE_INTERRUPT)
      return DeadlineExceeded("search took longer than " + std::to_string(kQueryDeadline.count()) + " ms");
    return Internal("search: " + msg);
  };
  {
    Stmt q(db, kMatchSql, KeepPrepared{});
    if (!q.ok()) return sql_error(db, "prepare search");
    q.text(1, match);
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      int64_t rowid = sqlite3_column_int64(q.get(), 0);
      if (rowid <= 0 || static_cast<uint64_t>(rowid) >= chunk_doc_.size()) continue;
      uint32_t doc = chunk_doc_[static_cast<size_t>(rowid)];
      if (doc == kNoDoc) continue;
      double score = -sqlite3_column_double(q.get(), 1);
      if (sc.best_row[doc] == 0) {
        sc.touched.push_back(doc);
      } else if (score <= sc.best[doc]) {
        continue;  // rowids ascend: on a tie the first chunk stays
      }
      sc.best[doc] = score;
      sc.best_row[doc] = rowid;
    }
    if (rc != SQLITE_DONE) return failed(rc);
  }
  // The k best documents: by score, then by the chunk's rowid.
  auto better = [&](uint32_t a, uint32_t b) {
    if (sc.best[a] != sc.best[b]) return sc.best[a] > sc.best[b];
    return sc.best_row[a] < sc.best_row[b];
  };
  size_t keep = std::min(sc.touched.size(), static_cast<size_t>(k));
  std::partial_sort(sc.touched.begin(), sc.touched.begin() + static_cast<long>(keep), sc.touched.end(), better);
  std::vector<SearchHit> hits;
  hits.reserve(keep);
  Stmt text(db, kChunkTextSql, KeepPrepared{});
  if (!text.ok()) return sql_error(db, "prepare chunk text");
  for (size_t i = 0; i < keep; ++i) {
    uint32_t doc = sc.touched[i];
    int64_t rowid = sc.best_row[doc];
    SearchHit h;
    h.doc_id = docs_[doc].id;
    h.title = docs_[doc].title;
    h.path = docs_[doc].path;
    h.score = sc.best[doc];
    text.integer(1, rowid);
    int rc = sqlite3_step(text.get());
    if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? Internal("search: a matched chunk has no text") : failed(rc);
    h.heading = text.column(0);
    if (terms) {
      const auto* body = reinterpret_cast<const char*>(sqlite3_column_text(text.get(), 1));
      int n = sqlite3_column_bytes(text.get(), 1);
      sc.tokens.clear();
      TokenSink sink{&sc.tokens, &terms->tokens, nullptr};
      if (body && n > 0) c.tokenizer.xTokenize(c.tok, &sink, FTS5_TOKENIZE_DOCUMENT, body, n, on_token);
      h.snippet = make_snippet(std::string_view(body ? body : "", static_cast<size_t>(n)), sc.tokens, terms->phrases);
    } else {
      Stmt snip(db, kSnippetSql, KeepPrepared{});
      if (!snip.ok()) return sql_error(db, "prepare snippet");
      snip.text(1, match);
      snip.integer(2, rowid);
      int src = sqlite3_step(snip.get());
      if (src == SQLITE_ROW) h.snippet = snip.column(0);
      else if (src != SQLITE_DONE) return failed(src);
    }
    sqlite3_reset(text.get());
    hits.push_back(std::move(h));
  }
  return hits;
}

Result<std::vector<SearchHit>> Index::search(std::string_view query, const SearchOptions& options) const {
  int k = std::clamp(options.k, 1, 50);
  if (Status st = check_query(query, options.advanced); !st.ok()) return st;
  auto lease = checkout(kQueryDeadline);
  if (!lease.ok()) return lease.status();
  Connection& c = lease->connection();
  if (options.advanced) return run_search(c, std::string(query), nullptr, k);
  // The query's words through the table's tokenizer, so the snippet marks what
  // FTS5 matched (stems, folded case and diacritics).
  Terms terms;
  for (std::string_view word : query_words(query)) {
    std::vector<std::string> pieces;
    TokenSink sink{nullptr, nullptr, &pieces};
    c.tokenizer.xTokenize(c.tok, &sink, FTS5_TOKENIZE_QUERY, word.data(), static_cast<int>(word.size()), on_token);
    std::vector<int> phrase;
    for (std::string& t : pieces) {
      auto it = std::find(terms.tokens.begin(), terms.tokens.end(), t);
      if (it == terms.tokens.end()) it = terms.tokens.insert(terms.tokens.end(), std::move(t));
      phrase.push_back(static_cast<int>(it - terms.tokens.begin()));
    }
    if (!phrase.empty()) terms.phrases.push_back(std::move(phrase));
  }
  std::string match = quote_query(query, options.any_word);
  auto hits = run_search(c, match, &terms, k);
  if (!hits.ok() || !hits->empty() || options.any_word) return hits;
  // Nothing has every word: rank by any word instead.
  std::string any = quote_query(query, true);
  if (any == match) return hits;
  return run_search(c, any, &terms, k);
}

Result<DocumentText> Index::document(std::string_view id) const {
  auto lease = checkout(kQueryDeadline);
  if (!lease.ok()) return lease.status();
  sqlite3* db = lease->get();
  auto row = find_document(db, id);
  if (!row.ok()) return row.status();
  DocumentText out;
  out.id = std::move(row->id);
  out.title = std::move(row->title);
  out.path = std::move(row->path);
  int64_t first = row->first_chunk;
  int64_t count = row->chunk_count;
  out.chunks = static_cast<int>(count);
  Stmt c(db, kDocumentChunksSql, KeepPrepared{});
  if (!c.ok()) return sql_error(db, "prepare chunks");
  c.integer(1, first);
  c.integer(2, first + count - 1);
  int rc;
  while ((rc = sqlite3_step(c.get())) == SQLITE_ROW) {
    if (!out.text.empty()) out.text += "\n\n";
    out.text += c.column(0);
  }
  if (rc != SQLITE_DONE) return sql_error(db, "chunks");
  return out;
}

namespace {

// The first line of a chunk that says something, for a description: heading
// marks and blanks trimmed, cut at 200 bytes on a UTF-8 boundary.
std::string describe(std::string_view heading, std::string_view body) {
  std::string_view line = heading;
  while (line.empty() && !body.empty()) {
    size_t nl = body.find('\n');
    line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    while (!line.empty() && (line.front() == '#' || line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == '\t')) line.remove_suffix(1);
  }
  constexpr size_t kMax = 200;
  if (line.size() > kMax) {
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    line = line.substr(0, cut);
  }
  return std::string(line);
}

}  // namespace

Result<std::vector<DocumentEntry>> Index::list_documents(std::string_view from, bool inclusive, size_t limit) const {
  static constexpr const char* kAfter =
      "SELECT d.id, d.title, d.path, d.kind, c.heading, substr(c.body, 1, 600) FROM docs d "
      "LEFT JOIN chunks c ON c.rowid = d.first_chunk WHERE d.id > ?1 ORDER BY d.id LIMIT ?2";
  static constexpr const char* kFrom =
      "SELECT d.id, d.title, d.path, d.kind, c.heading, substr(c.body, 1, 600) FROM docs d "
      "LEFT JOIN chunks c ON c.rowid = d.first_chunk WHERE d.id >= ?1 ORDER BY d.id LIMIT ?2";
  limit = std::clamp<size_t>(limit, 1, 1000);
  auto lease = checkout(kQueryDeadline);
  if (!lease.ok()) return lease.status();
  sqlite3* db = lease->get();
  Stmt q(db, inclusive ? kFrom : kAfter);
  if (!q.ok()) return sql_error(db, "prepare document list");
  q.text(1, from);
  q.integer(2, static_cast<int64_t>(limit));
  std::vector<DocumentEntry> out;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW)
    out.push_back({q.column(0), q.column(1), q.column(2), q.column(3), describe(q.column(4), q.column(5))});
  if (rc != SQLITE_DONE) return sql_error(db, "document list");
  return out;
}

Result<std::string> Index::section(std::string_view id, std::string_view heading, size_t max_bytes) const {
  auto lease = checkout(kQueryDeadline);
  if (!lease.ok()) return lease.status();
  sqlite3* db = lease->get();
  auto row = find_document(db, id);
  if (!row.ok()) return row.status();
  int64_t first = row->first_chunk;
  int64_t count = row->chunk_count;
  // A second section of the same name is not joined to the first (below).
  Stmt c(db, kSectionChunksSql, KeepPrepared{});
  if (!c.ok()) return sql_error(db, "prepare section chunks");
  c.integer(1, first);
  c.integer(2, first + count - 1);
  c.text(3, heading);
  std::string out;
  int64_t previous = -1;
  bool found = false;
  int rc;
  while ((rc = sqlite3_step(c.get())) == SQLITE_ROW) {
    int64_t rowid = sqlite3_column_int64(c.get(), 0);
    if (found && rowid != previous + 1) break;  // the next section of the same name
    if (found) out += "\n\n";
    out += c.column(1);
    found = true;
    previous = rowid;
    if (out.size() >= max_bytes) break;
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sql_error(db, "section chunks");
  if (!found) return NotFound("no section '" + std::string(heading) + "' in document '" + std::string(id) + "'");
  return out;
}

}  // namespace memgate::kb
