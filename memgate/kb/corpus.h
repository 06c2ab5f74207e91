// Corpus: turning a folder of Markdown, plain text and HTML into documents and
// chunks ready to index.
//
// A document is one file. Its id is a hash of its path relative to the corpus
// folder (16 hex digits), so it is the same on every instance and across
// rebuilds. HTML is reduced to text (scripts, styles and comments dropped,
// entities decoded, headings kept as Markdown headings); Markdown and text are
// read as they are. Text is then split into chunks: a heading always starts a
// chunk, paragraphs are added to the current chunk while it stays under the
// chunk size, and a paragraph longer than the chunk size is cut at sentence or
// word boundaries. Every byte of text lands in exactly one chunk, so a document
// is its chunks joined with blank lines.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::kb {

enum class DocKind { kMarkdown, kText, kHtml };

struct SourceFile {
  std::string path;      // relative to the corpus folder, '/'-separated
  std::string abs_path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  DocKind kind = DocKind::kText;
};

struct Chunk {
  std::string heading;  // the nearest heading above this text ("" before the first)
  std::string body;     // the text, heading line included when the chunk starts at one
};

struct Document {
  std::string id;     // 16 hex digits, from the relative path
  std::string title;
  std::string path;   // relative to the corpus folder
  DocKind kind = DocKind::kText;
  std::vector<Chunk> chunks;
  uint64_t source_bytes = 0;
};

// `in` as valid UTF-8: every byte that is not part of a well-formed sequence
// (overlong, surrogate, past U+10FFFF, cut short) becomes U+FFFD. ASCII is kept
// as it is when keep_controls, else control characters other than \n and \t
// are dropped and tabs become spaces (what the indexer stores).
std::string to_valid_utf8(std::string_view in, bool keep_controls);

// The stable id of a document at `relative_path`.
std::string document_id(std::string_view relative_path);

// Every indexable file under `dir` (.md, .markdown, .txt, .text, .html, .htm),
// sorted by path; hidden files and folders are skipped. A symlinked file is
// listed (under its own path) only when its real path stays inside `dir`'s
// real path and not in /proc, /sys or /dev; any other symlink is skipped with
// a warning. Symlinked folders are not entered (one pointing inside lists
// nothing new; one pointing outside is warned about). A listed file's abs_path
// is its real path, which load_document opens without following a symlink.
// A file larger than `max_file_bytes` (KB_MAX_FILE_SIZE) is left out of the
// listing, so of the fingerprint, the byte count and the peak estimate too, and
// appended to `too_large` when given (the build warns about each; a watcher's
// scan stays quiet). Fails when `dir` is not a readable folder.
inline constexpr uint64_t kDefaultMaxFileBytes = uint64_t{64} << 20;
Result<std::vector<SourceFile>> scan_corpus(const std::string& dir, uint64_t max_file_bytes = kDefaultMaxFileBytes,
                                            std::vector<SourceFile>* too_large = nullptr);

// The bytes of every file in a listing (as scan_corpus measured them).
uint64_t corpus_bytes(const std::vector<SourceFile>& files);
// The bytes of every indexable file under `dir`; fails as scan_corpus.
Result<uint64_t> corpus_bytes(const std::string& dir);

// A hash of the listing (paths, sizes, modification times): changes when a file
// is added, removed or modified. 16 hex digits.
std::string corpus_fingerprint(const std::vector<SourceFile>& files);

// HTML reduced to text: the <title> (or first <h1>) and the body as Markdown-like
// text where headings become "# ..." lines and block elements paragraphs.
struct HtmlText {
  std::string title;
  std::string text;
};
HtmlText html_to_text(std::string_view html);

// Splits text (Markdown headings recognised outside code fences) into chunks of
// at most `max_bytes` bytes each (a lone word longer than that is cut).
std::vector<Chunk> chunk_text(std::string_view text, size_t max_bytes);

// Reads and chunks one file. The title is the HTML title, the first Markdown
// heading, or the first line of a text file when short, else the file name.
// A file that has grown past `max_file_bytes` since it was listed is refused
// before a byte of it is read.
Result<Document> load_document(const SourceFile& file, size_t max_chunk_bytes,
                               uint64_t max_file_bytes = kDefaultMaxFileBytes);

}  // namespace memgate::kb
