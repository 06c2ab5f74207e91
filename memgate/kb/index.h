// Index: the knowledge base as an SQLite FTS5 database, built from a corpus,
// shipped as an artifact, and queried by many threads at once.
//
// build_artifact_chunked() reads and chunks the corpus (on a worker pool when
// given one), writes every chunk into a database with an FTS5 table (porter
// stemming over unicode61 tokens; columns title, heading, body), then returns the
// database image compressed with zstd, as ~1 MiB pieces: the artifact. The
// database is in memory, or, when BuildOptions::memory_budget is below what that
// needs (build_budget.h), in a private scratch file with a bounded page cache.
//
// The image in an artifact is untrusted (any fleet member can write one):
// every connection is opened defensively (SQLITE_DBCONFIG_DEFENSIVE, views and
// triggers disabled, trusted_schema off, read-only, a progress handler that
// interrupts any statement past its deadline), and open() refuses an image
// whose schema is not exactly ours (no views, triggers or unknown objects) or
// that fails PRAGMA quick_check, before it runs any other query.
//
// Index::open() turns an artifact back into a queryable index without indexing:
// the image is decompressed once, piece by piece as they are read from a
// ByteSource, into one buffer of the declared size, and every connection of the
// pool is a read-only sqlite3_deserialize over that same buffer, so N
// connections cost one image plus N small page caches. Queries check a
// connection out of the pool (opening one more, up to the pool size, when all
// are busy), so concurrent queries never serialize on one connection.
//
// Ranking is bm25 with the title weighted above the section heading and both
// above the body; snippets mark matches with <mark>...</mark>. A search scores
// every matching chunk once, keeps the best chunk of each document, and reads
// text and makes snippets only for the k hits it returns (index.cc says how).
//
// Index is thread-safe. An Index is immutable once opened; a refresh opens a new
// one and swaps a shared_ptr, so queries in flight finish on the old one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/chunked_bytes.h"
#include "memgate/base/status.h"
#include "memgate/kb/artifact.h"
#include "memgate/kb/build_budget.h"

struct sqlite3;

namespace memgate {
class WorkerPool;
}

namespace memgate::kb {

struct BuildProgress {
  size_t files_done = 0;
  size_t files_total = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  std::chrono::milliseconds elapsed{0};
  bool finished = false;
  // Estimated time left, from the bytes done so far; 0 when unknown.
  std::chrono::milliseconds eta() const;
  int percent() const;
};
using ProgressFn = std::function<void(const BuildProgress&)>;

struct BuildOptions {
  size_t chunk_size = 1200;        // KB_CHUNK_SIZE
  uint64_t max_file_bytes = kDefaultMaxFileBytes;  // KB_MAX_FILE_SIZE: larger files are skipped, with a warning
  WorkerPool* workers = nullptr;   // parse files in parallel; null: on the calling thread
  size_t max_helpers = 0;          // tasks posted to `workers`; 0: one per worker
  ProgressFn progress;             // called at most every progress_every, and once at the end
  std::chrono::milliseconds progress_every{1000};
  std::stop_token stop;            // a requested stop ends the build with kCancelled
  int zstd_level = 3;
  // Bytes above the process's RSS at the start that the build may use; 0: no
  // bound. Below estimate_peaks().build_bytes the database is built in a file
  // under temp_dir (removed afterwards) with caches sized from the budget; on
  // the corpora measured that was no slower (build_budget.h has the figures).
  uint64_t memory_budget = 0;
  std::string temp_dir;            // for that file; empty: $TMPDIR, else /tmp
};

struct BuildStats {
  size_t files = 0;
  size_t documents = 0;
  size_t chunks = 0;
  uint64_t source_bytes = 0;    // bytes read from the corpus
  uint64_t database_bytes = 0;  // the serialized image
  uint64_t artifact_bytes = 0;  // compressed
  std::string fingerprint;      // corpus_fingerprint of what was indexed
  std::chrono::milliseconds index_time{0};    // reading, chunking, inserting, optimizing
  std::chrono::milliseconds compress_time{0}; // serializing and compressing
  bool on_disk = false;         // built in a scratch file (memory_budget)
};

// Builds the index of the corpus in `dir` and returns the artifact as pieces of
// about 1 MiB. Fails with kInvalidArgument when dir is not a folder, kCancelled
// when stopped, kFailedPrecondition when an on-disk build cannot make its
// scratch folder, kResourceExhausted when the disk or memory runs out. The
// scratch folder is gone when this returns, whatever the outcome.
Result<ChunkedBytes> build_artifact_chunked(const std::string& dir, const BuildOptions& options,
                                            BuildStats* stats = nullptr);
// The same artifact as one string (the pieces joined): for small corpora and tests.
Result<std::string> build_artifact(const std::string& dir, const BuildOptions& options, BuildStats* stats = nullptr);

// The SQLite database inside an artifact (the image sqlite3_serialize gave),
// e.g. to open it with the sqlite3 shell. kInvalidArgument as Index::open.
Result<std::string> artifact_database(std::string_view artifact);

struct SearchOptions {
  int k = 10;             // hits wanted (documents), 1..50
  bool advanced = false;  // the query is FTS5 syntax; otherwise every word is quoted
  // Simple mode only: rank by any of the words from the start (bm25 puts the
  // chunks with more of them first) instead of all words, then any as a fallback.
  bool any_word = false;
};

struct SearchHit {
  std::string doc_id;
  std::string title;
  std::string path;
  std::string heading;  // the section the hit is in
  std::string snippet;  // with <mark>...</mark> around matches
  double score = 0;     // higher is better (the negated bm25)
};

struct DocumentText {
  std::string id;
  std::string title;
  std::string path;
  std::string text;  // the chunks joined with blank lines
  int chunks = 0;
};

// One document as a listing shows it (the MCP resources/list).
struct DocumentEntry {
  std::string id;
  std::string title;
  std::string path;
  std::string kind;         // "markdown", "html" or "text"
  std::string description;  // the first section's heading, else its first line; at most 200 bytes
};

struct IndexInfo {
  std::string fingerprint;  // of the corpus it was built from
  std::string built_at;     // ISO 8601, UTC
  int64_t documents = 0;
  int64_t chunks = 0;
  int64_t chunk_size = 0;
  uint64_t database_bytes = 0;
  uint64_t artifact_bytes = 0;
};

// The FTS5 query default mode runs for `text`: each word quoted (so no operator,
// column filter or prefix syntax survives), joined with spaces (all words) or
// with " OR " (any word). Empty when `text` has no word.
std::string quote_query(std::string_view text, bool any_word);

// Whether Index::search would take this query before running anything: at
// most 1000 bytes and, unless advanced, at least one word. kInvalidArgument
// with the reason otherwise (the REST route answers it before the worker hop).
Status check_query(std::string_view query, bool advanced);

struct OpenOptions {
  int pool_size = 8;                // caps the connections opened for concurrent queries
  // A header declaring a bigger image is refused before anything is allocated,
  // and zstd never writes past the declared size.
  uint64_t max_image = 1ull << 30;
  // Bytes the load may add to the process; 0: no bound. A load needs about
  // load_peak_for_image() of the declared image (build_budget.h).
  uint64_t memory_budget = 0;
};

class Index {
 public:
  // Opens the artifact `source` streams (made by build_artifact_chunked): reads
  // its header, allocates the image once, and decompresses each piece into it
  // as it arrives, so the source may release every piece after use (take_source).
  // Reads the source to its end. Fails, having freed everything, with
  // kResourceExhausted before allocating when the header declares more than
  // options.max_image or the load would not fit options.memory_budget;
  // kInvalidArgument when the bytes are not an artifact of ours (bad magic,
  // frame shorter or longer than declared, bytes after it, failed checksum, not
  // a database of ours: a schema other than ours, a failed quick_check, or
  // checks that outrun the open deadline); the source's own error
  // (kUnavailable) as it is.
  static Result<std::shared_ptr<Index>> open(ByteSource& source, const OpenOptions& options = {});
  // The same over an artifact held in one string (read in 1 MiB views).
  static Result<std::shared_ptr<Index>> open(std::string_view artifact, int pool_size = 8);
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Every query below fails with kDeadlineExceeded when its statements run
  // longer than a few seconds (kQueryDeadline in index.cc).
  //
  // The best hits, one per document (its best chunk), best first: the k
  // documents whose best chunk ranks highest. kInvalidArgument with SQLite's
  // reason for an advanced query it rejects, or as check_query says.
  Result<std::vector<SearchHit>> search(std::string_view query, const SearchOptions& options) const;
  // The document with this id; kNotFound when there is none.
  Result<DocumentText> document(std::string_view id) const;
  // One section of a document: the text under `heading` (the first section of
  // that name; "" is the text before the first heading) up to the next heading,
  // as the document has it, read chunk by chunk and no further once `max_bytes`
  // are in (so the result may pass max_bytes by up to one chunk). Reads only
  // those chunks, not the whole document. kNotFound when the document or the
  // section is not there.
  Result<std::string> section(std::string_view id, std::string_view heading, size_t max_bytes) const;

  // Documents in id order from `from`: those after it, or from it on with
  // `inclusive` ("" lists from the first), at most `limit` (clamped to
  // 1..1000). Reads each listed document's first chunk for its description, and
  // nothing of the others (the id index gives the order). For pages whose
  // position is the last id seen: a document added or removed meanwhile never
  // makes one appear twice.
  Result<std::vector<DocumentEntry>> list_documents(std::string_view from, bool inclusive, size_t limit) const;

  const IndexInfo& info() const { return info_; }
  // Connections opened so far (for tests and metrics).
  int connections_opened() const;

 private:
  class Lease;
  struct Connection;  // a pooled connection and the deadline its statements run under
  Index() = default;
  Result<Connection*> open_connection() const;
  // A connection whose statements are interrupted once `deadline` from now has
  // passed (a query then fails with kDeadlineExceeded).
  Result<Lease> checkout(std::chrono::milliseconds deadline) const;
  void checkin(Connection* c) const;
  struct Terms;  // a simple query's phrases, as the index's tokenizer makes them
  Result<std::vector<SearchHit>> run_search(Connection& c, const std::string& match, const Terms* terms,
                                            int k) const;
  Status read_meta(sqlite3* db, uint64_t artifact_bytes);
  Status read_layout(sqlite3* db);

  // What every search needs per matching chunk, in memory so no row is read
  // for it: the chunk's document (an index into docs_, kNoDoc for a row no
  // document claims) and its length in tokens (bm25's D), both indexed by the
  // chunk's rowid; and each document's id, title and path. Filled once by
  // open() (read_layout), read-only afterwards: 8 bytes a chunk, ~100 a document.
  struct DocRef {
    std::string id, title, path;
  };
  static constexpr uint32_t kNoDoc = 0xFFFFFFFFu;
  std::vector<uint32_t> chunk_doc_;
  std::vector<uint32_t> chunk_tokens_;
  std::vector<DocRef> docs_;

  void* image_ = nullptr;  // sqlite3_malloc64'd, shared read-only by every connection
  uint64_t image_size_ = 0;
  int pool_size_ = 8;
  IndexInfo info_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::vector<Connection*> idle_;  // guarded by mu_
  mutable int opened_ = 0;              // guarded by mu_
};

}  // namespace memgate::kb
