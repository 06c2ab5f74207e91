// Corpus ingestion: listing, HTML to text, and chunking.
//
// The HTML reader is a single forward scan, not a DOM: it recognises tags,
// comments and entities, skips the content of elements that are never prose
// (script, style, head apart from its title, nav, and anything marked
// role="navigation" or role="search", with nesting of the same tag counted),
// turns block elements into paragraph breaks and h1..h6 into Markdown heading
// lines, and collapses whitespace outside <pre>. That is enough for generated
// documentation (Sphinx, DocBook) and costs one pass over the bytes.
//
// The chunker works on blocks (heading lines and paragraphs; a fenced code block
// is one paragraph) and packs paragraphs into chunks up to the size limit, so a
// chunk is a coherent span of one section. Text is made valid UTF-8 first
// (invalid bytes become U+FFFD), so every string that leaves here can be put in
// JSON as it is.
#include "memgate/kb/corpus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "memgate/base/units.h"

namespace memgate::kb {
namespace {

namespace fs = std::filesystem;

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex16(uint64_t v) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kDigits[v & 15];
  return out;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) != suffix[i]) return false;
  return true;
}

bool kind_of(std::string_view name, DocKind* kind) {
  if (ends_with_ci(name, ".md") || ends_with_ci(name, ".markdown")) {
    *kind = DocKind::kMarkdown;
  } else if (ends_with_ci(name, ".txt") || ends_with_ci(name, ".text")) {
    *kind = DocKind::kText;
  } else if (ends_with_ci(name, ".html") || ends_with_ci(name, ".htm")) {
    *kind = DocKind::kHtml;
  } else {
    return false;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::string to_valid_utf8(std::string_view in, bool keep_controls) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      if (keep_controls) out += static_cast<char>(c);
      else if (c >= 0x20 || c == '\n' || c == '\t') out += static_cast<char>(c == '\t' ? ' ' : c);
      ++i;
      continue;
    }
    int len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    uint32_t cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    bool ok = len > 0 && i + static_cast<size_t>(len) <= in.size();
    for (int k = 1; ok && k < len; ++k) {
      unsigned char d = static_cast<unsigned char>(in[i + static_cast<size_t>(k)]);
      if ((d & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
               (cp >= 0xD800 && cp <= 0xDFFF)))
      ok = false;
    if (!ok) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(in.substr(i, static_cast<size_t>(len)));
    i += static_cast<size_t>(len);
  }
  return out;
}

namespace {

// Valid UTF-8 with control characters other than \n and \t removed (tabs become spaces).
std::string sanitize_utf8(std::string_view in) { return to_valid_utf8(in, false); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Collapses runs of three or more newlines to two and trims trailing spaces of lines.
std::string tidy_lines(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  int newlines = 0;
  for (char c : in) {
    if (c == '\r') continue;
    if (c == '\n') {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      if (++newlines <= 2 && !out.empty()) out += '\n';
      continue;
    }
    newlines = 0;
    out += c;
  }
  return std::string(trim(out));
}

struct Entity {
  const char* name;
  uint32_t cp;
};
constexpr Entity kEntities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},         {"quot", '"'},     {"apos", '\''},
    {"nbsp", ' '},     {"ndash", 0x2013}, {"mdash", 0x2014},   {"hellip", 0x2026}, {"copy", 0xA9},
    {"reg", 0xAE},     {"trade", 0x2122}, {"laquo", 0xAB},     {"raquo", 0xBB},   {"lsquo", 0x2018},
    {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},   {"para", 0xB6},    {"sect", 0xA7},
    {"middot", 0xB7},  {"bull", 0x2022},  {"times", 0xD7},     {"larr", 0x2190},  {"rarr", 0x2192},
    {"shy", 0xAD},     {"zwj", 0x200D},   {"zwnj", 0x200C},
};

// The longest entity recognised, '&' and ';' included ("&#x10FFFF;" fits).
constexpr size_t kMaxEntity = 13;

// Decodes the entity starting at s[i] == '&'; returns the bytes consumed (0: not an entity).
// Looks at most kMaxEntity bytes ahead: searching the rest of the text for a
// ';' made a long run of '&' (or of "&amp" without the ';') quadratic.
size_t decode_entity(std::string_view s, size_t i, std::string& out) {
  size_t end = s.substr(0, std::min(s.size(), i + kMaxEntity)).find(';', i + 1);
  if (end == std::string_view::npos) return 0;
  std::string_view name = s.substr(i + 1, end - i - 1);
  if (name.empty()) return 0;
  if (name[0] == '#') {
    uint32_t cp = 0;
    bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
    std::string_view digits = name.substr(hex ? 2 : 1);
    if (digits.empty()) return 0;
    for (char c : digits) {
      int d = (c >= '0' && c <= '9') ? c - '0'
              : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
              : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                            : -1;
      if (d < 0) return 0;
      cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
      if (cp > 0x10FFFF) cp = 0x110000;
    }
    append_utf8(out, cp == 0xA0 ? ' ' : cp);
    return end - i + 1;
  }
  for (const Entity& e : kEntities) {
    if (name == e.name) {
      if (e.cp != 0xAD && e.cp != 0x200D && e.cp != 0x200C) append_utf8(out, e.cp);
      return end - i + 1;
    }
  }
  return 0;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_block_tag(std::string_view t) {
  static constexpr std::array<std::string_view, 30> kBlocks = {
      "p",     "div",  "li",      "ul",     "ol",     "tr",     "table",  "pre",    "section", "article",
      "blockquote", "dl", "dt",   "dd",     "hr",     "header", "footer", "main",   "aside",   "figure",
      "figcaption", "form", "fieldset", "address", "details", "summary", "caption", "tbody", "thead", "body"};
  return std::find(kBlocks.begin(), kBlocks.end(), t) != kBlocks.end();
}

bool is_skipped_tag(std::string_view t) {
  return t == "script" || t == "style" || t == "nav" || t == "template" || t == "noscript" || t == "svg" ||
         t == "iframe" || t == "object";
}

// The value of attribute `name` in a tag's attribute text, lower-cased; empty when absent.
std::string attribute(std::string_view attrs, std::string_view name) {
  std::string low = lower(attrs);
  size_t pos = 0;
  while ((pos = low.find(name, pos)) != std::string::npos) {
    bool starts = pos == 0 || low[pos - 1] == ' ' || low[pos - 1] == '\t' || low[pos - 1] == '\n';
    size_t eq = pos + name.size();
    while (eq < low.size() && low[eq] == ' ') ++eq;
    if (!starts || eq >= low.size() || low[eq] != '=') {
      pos += name.size();
      continue;
    }
    size_t v = eq + 1;
    while (v < low.size() && low[v] == ' ') ++v;
    if (v >= low.size()) return {};
    char q = low[v];
    if (q == '"' || q == '\'') {
      size_t close = low.find(q, v + 1);
      return low.substr(v + 1, close == std::string::npos ? std::string::npos : close - v - 1);
    }
    size_t close = low.find_first_of(" \t\n>", v);
    return low.substr(v, close == std::string::npos ? std::string::npos : close - v);
  }
  return {};
}

struct Tag {
  std::string name;  // lower case, empty for comments, doctypes and junk
  bool closing = false;
  bool self_closing = false;
  std::string_view attrs;
  size_t end = 0;  // index just past '>'
};

// Parses a tag at s[i] == '<'. Returns false when this '<' does not start a tag.
bool parse_tag(std::string_view s, size_t i, Tag* tag) {
  size_t j = i + 1;
  if (j >= s.size()) return false;
  if (s.compare(j, 3, "!--") == 0) {
    size_t close = s.find("-->", j + 3);
    tag->end = close == std::string_view::npos ? s.size() : close + 3;
    tag->name.clear();
    return true;
  }
  if (s[j] == '!' || s[j] == '?') {
    size_t close = s.find('>', j);
    tag->end = close == std::string_view::npos ? s.size() : close + 1;
    tag->name.clear();
    return true;
  }
  tag->closing = s[j] == '/';
  if (tag->closing) ++j;
  size_t name_start = j;
  while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '-' || s[j] == ':')) ++j;
  if (j == name_start || !std::isalpha(static_cast<unsigned char>(s[name_start]))) return false;
  tag->name = lower(s.substr(name_start, j - name_start));
  size_t attr_start = j;
  char quote = 0;
  for (; j < s.size(); ++j) {
    char c = s[j];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      break;
    }
  }
  tag->attrs = s.substr(attr_start, std::min(j, s.size()) - attr_start);
  tag->self_closing = !tag->attrs.empty() && tag->attrs.back() == '/';
  tag->end = j < s.size() ? j + 1 : s.size();
  return true;
}

// The end of a raw-text element (script, style) whose opening tag ended at
// `from`: past the '>' of the first "</name" (any case) followed by a character
// that cannot continue a tag name, or s.size(). A scan for "</", never a tag
// parse: parsing each '<' inside a script (to its '>' or the end of the text)
// made a script full of "<a" or "<!--" quadratic.
size_t skip_raw_text(std::string_view s, size_t from, std::string_view name) {
  for (size_t at = s.find("</", from); at != std::string_view::npos; at = s.find("</", at + 2)) {
    size_t after = at + 2 + name.size();
    if (after > s.size()) break;
    bool same = true;
    for (size_t k = 0; k < name.size() && same; ++k)
      same = std::tolower(static_cast<unsigned char>(s[at + 2 + k])) == name[k];
    if (!same) continue;
    if (after < s.size()) {
      unsigned char next = static_cast<unsigned char>(s[after]);
      if (std::isalnum(next) || next == '-' || next == ':') continue;
    }
    size_t gt = s.find('>', after);
    return gt == std::string_view::npos ? s.size() : gt + 1;
  }
  return s.size();
}

// Finds the end of the element whose opening tag ended at `from` (same tag name,
// nesting counted); returns the index past its closing tag, or s.size().
size_t skip_element(std::string_view s, size_t from, const std::string& name) {
  if (name == "script" || name == "style") return skip_raw_text(s, from, name);
  int depth = 1;
  size_t i = from;
  while (i < s.size()) {
    size_t lt = s.find('<', i);
    if (lt == std::string_view::npos) return s.size();
    Tag t;
    if (!parse_tag(s, lt, &t)) {
      i = lt + 1;
      continue;
    }
    if (t.name == name && !t.self_closing) depth += t.closing ? -1 : 1;
    i = t.end;
    if (depth == 0) return i;
  }
  return s.size();
}

bool is_heading_line(std::string_view line, size_t* level) {
  size_t n = 0;
  while (n < line.size() && line[n] == '#') ++n;
  if (n == 0 || n > 6 || n >= line.size() || line[n] != ' ') return false;
  if (level) *level = n;
  return true;
}

bool is_fence(std::string_view line) {
  std::string_view t = trim(line);
  return t.substr(0, 3) == "```" || t.substr(0, 3) == "~~~";
}

std::string file_stem(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  size_t dot = name.rfind('.');
  return std::string(dot == std::string_view::npos || dot == 0 ? name : name.substr(0, dot));
}

// Cuts `text` (longer than max) into pieces of at most max bytes at sentence, line
// or word boundaries, never inside a UTF-8 sequence.
void split_long(std::string_view text, size_t max, std::vector<std::string>* pieces) {
  while (text.size() > max) {
    size_t cut = std::string_view::npos;
    for (std::string_view sep : {". ", "\n", " "}) {
      size_t at = text.rfind(sep, max - sep.size());
      if (at != std::string_view::npos && at >= max / 3) {
        cut = at + sep.size();
        break;
      }
    }
    if (cut == std::string_view::npos) {
      cut = max;
      while (cut > 1 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    }
    std::string_view piece = trim(text.substr(0, cut));
    if (!piece.empty()) pieces->emplace_back(piece);
    text = trim(text.substr(cut));
  }
  if (!text.empty()) pieces->emplace_back(text);
}

// Whether `real` (a canonical path) is `root` (canonical) or under it.
bool within(const fs::path& root, const fs::path& real) {
  std::string_view r = root.native(), p = real.native();
  if (r == "/") return true;
  return p == r || (p.size() > r.size() && p.compare(0, r.size(), r) == 0 && p[r.size()] == '/');
}

// The kernel's pseudo-filesystems: never corpus text, whatever folder holds them.
bool is_system_path(const fs::path& real) {
  std::string_view p = real.native();
  for (std::string_view top : {"/proc", "/sys", "/dev"})
    if (p == top || (p.size() > top.size() && p.compare(0, top.size(), top) == 0 && p[top.size()] == '/')) return true;
  return false;
}

}  // namespace

std::string document_id(std::string_view relative_path) { return hex16(fnv1a(relative_path)); }

Result<std::vector<SourceFile>> scan_corpus(const std::string& dir, uint64_t max_file_bytes,
                                            std::vector<SourceFile>* too_large) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return InvalidArgument("'" + dir + "' is not a folder");
  std::vector<SourceFile> files;
  fs::path root = fs::path(dir);
  fs::path real_root = fs::canonical(root, ec);
  if (ec) return InvalidArgument("cannot resolve '" + dir + "': " + ec.message());
  // Symlinked folders are never entered (the iterator's default): one that
  // points inside the corpus would list files already listed under their own
  // paths (or loop), and one that points outside is refused below.
  auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) return InvalidArgument("cannot read '" + dir + "': " + ec.message());
  for (auto end = fs::recursive_directory_iterator(); it != end; it.increment(ec)) {
    if (ec) return Unavailable("while listing '" + dir + "': " + ec.message());
    const fs::directory_entry& entry = *it;
    std::string name = entry.path().filename().string();
    bool is_dir = entry.is_directory(ec);
    if (!name.empty() && name[0] == '.') {
      if (is_dir) it.disable_recursion_pending();
      continue;
    }
    if (is_dir && !entry.is_symlink(ec)) continue;
    DocKind kind = DocKind::kText;
    if (!is_dir && !kind_of(name, &kind)) continue;
    // Every file is judged by where it really is: a symlink must land inside
    // the corpus folder, and never in /proc, /sys or /dev.
    fs::path real = fs::canonical(entry.path(), ec);
    if (ec || !within(real_root, real) || (is_system_path(real) && !is_system_path(real_root))) {
      std::error_code link_ec;
      if (entry.is_symlink(link_ec))
        spdlog::warn("kb: skipping {}: a symlink to {}, outside the corpus folder",
                     entry.path().lexically_relative(root).generic_string(),
                     ec ? std::string("a target that does not resolve") : real.string());
      if (is_dir) it.disable_recursion_pending();
      ec.clear();
      continue;
    }
    if (is_dir) continue;  // a linked folder inside: its files are listed where they are
    if (!entry.is_regular_file(ec)) continue;
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    SourceFile f;
    // Read from where it really is, so the checked target is the one read.
    f.abs_path = real.string();
    // Lexical, not canonical: a symlinked file keeps the path it has in the corpus.
    f.path = entry.path().lexically_relative(root).generic_string();
    if (f.path.empty()) f.path = name;
    f.size = static_cast<uint64_t>(st.st_size);
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    f.kind = kind;
    if (f.size > max_file_bytes) {
      if (too_large) too_large->push_back(std::move(f));
      continue;
    }
    files.push_back(std::move(f));
  }
  std::sort(files.begin(), files.end(), [](const SourceFile& a, const SourceFile& b) { return a.path < b.path; });
  return files;
}

uint64_t corpus_bytes(const std::vector<SourceFile>& files) {
  uint64_t total = 0;
  for (const SourceFile& f : files) total += f.size;
  return total;
}

Result<uint64_t> corpus_bytes(const std::string& dir) {
  auto files = scan_corpus(dir);
  if (!files.ok()) return files.status();
  return corpus_bytes(*files);
}

std::string corpus_fingerprint(const std::vector<SourceFile>& files) {
  uint64_t h = fnv1a("memgate-kb-corpus");
  for (const SourceFile& f : files) {
    h = fnv1a(f.path, h);
    h = fnv1a(std::to_string(f.size) + ":" + std::to_string(f.mtime_ns) + ";", h);
  }
  return hex16(h);
}

HtmlText html_to_text(std::string_view html) {
  HtmlText out;
  std::string text;
  text.reserve(html.size() / 2);
  int pre = 0;
  int heading = 0;      // level of the heading being read, 0 outside
  bool in_head = false;
  bool in_title = false;
  bool h1_done = false;
  std::string h1_text;
  auto break_paragraph = [&] {
    while (!text.empty() && text.back() == ' ') text.pop_back();
    if (text.empty()) return;
    if (text.back() != '\n') text += "\n\n";
    else if (text.size() < 2 || text[text.size() - 2] != '\n') text += '\n';
  };
  auto put_char = [&](char c) {
    if (in_title) {
      out.title += c;
      return;
    }
    if (in_head) return;
    if (heading == 1 && !h1_done) h1_text += c;
    if (pre == 0 || heading > 0) {
      if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
        if (!text.empty() && text.back() != ' ' && text.back() != '\n') text += ' ';
        return;
      }
    }
    text += c;
  };
  size_t i = 0;
  while (i < html.size()) {
    char c = html[i];
    if (c == '<') {
      Tag t;
      if (!parse_tag(html, i, &t)) {
        put_char('<');
        ++i;
        continue;
      }
      i = t.end;
      if (t.name.empty()) continue;
      if (!t.closing && !t.self_closing) {
        std::string role = attribute(t.attrs, "role");
        if (is_skipped_tag(t.name) || role == "navigation" || role == "search") {
          i = skip_element(html, i, t.name);
          continue;
        }
      }
      if (t.name == "head") {
        in_head = !t.closing;
        continue;
      }
      if (t.name == "title") {
        in_title = !t.closing && !t.self_closing;
        continue;
      }
      if (t.name == "pre") {
        pre += t.closing ? (pre > 0 ? -1 : 0) : 1;
        break_paragraph();
        continue;
      }
      if (t.name.size() == 2 && t.name[0] == 'h' && t.name[1] >= '1' && t.name[1] <= '6') {
        if (in_head) continue;
        if (!t.closing) {
          heading = t.name[1] - '0';
          break_paragraph();
          text.append(static_cast<size_t>(heading), '#');
          text += ' ';
        } else {
          if (heading == 1 && !h1_done) h1_done = true;
          heading = 0;
          text += "\n\n";
        }
        continue;
      }
      if (t.name == "br") {
        if (heading) put_char(' ');
        else text += '\n';
        continue;
      }
      if (t.name == "td" || t.name == "th") {
        put_char(' ');
        continue;
      }
      if (is_block_tag(t.name) && heading == 0) break_paragraph();
      continue;
    }
    if (c == '&') {
      std::string decoded;
      size_t used = decode_entity(html, i, decoded);
      if (used) {
        for (char d : decoded) put_char(d);
        i += used;
        continue;
      }
    }
    put_char(c);
    ++i;
  }
  // The pilcrow Sphinx adds to headings as a permalink is noise.
  std::string cleaned;
  cleaned.reserve(text.size());
  for (size_t k = 0; k < text.size(); ++k) {
    if (text.compare(k, 2, "\xC2\xB6") == 0) {
      ++k;
      continue;
    }
    cleaned += text[k];
  }
  out.text = sanitize_utf8(tidy_lines(cleaned));
  std::string title(trim(out.title));
  std::string collapsed;
  for (char ch : title) {
    if (ch == '\n' || ch == '\t' || ch == '\r') ch = ' ';
    if (ch == ' ' && !collapsed.empty() && collapsed.back() == ' ') continue;
    collapsed += ch;
  }
  if (collapsed.empty()) {
    std::string h1(trim(h1_text));
    if (h1.size() >= 2 && h1.compare(h1.size() - 2, 2, "\xC2\xB6") == 0) h1.resize(h1.size() - 2);
    collapsed = std::string(trim(h1));
  }
  out.title = sanitize_utf8(collapsed);
  return out;
}

std::vector<Chunk> chunk_text(std::string_view text, size_t max_bytes) {
  if (max_bytes < 16) max_bytes = 16;
  struct Block {
    bool heading = false;
    std::string text;
    std::string title;  // for headings: the text without the '#'s
  };
  std::vector<Block> blocks;
  std::string para;
  bool fence = false;
  auto flush_para = [&] {
    std::string_view t = trim(para);
    if (!t.empty()) blocks.push_back({false, std::string(t), {}});
    para.clear();
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t level = 0;
    if (is_fence(line)) {
      if (!fence) flush_para();
      fence = !fence;
      para += line;
      para += '\n';
      if (!fence) flush_para();
    } else if (fence) {
      para += line;
      para += '\n';
    } else if (is_heading_line(line, &level)) {
      flush_para();
      Block b;
      b.heading = true;
      b.text = std::string(trim(line));
      b.title = std::string(trim(line.substr(level)));
      blocks.push_back(std::move(b));
    } else if (trim(line).empty()) {
      flush_para();
    } else {
      para += line;
      para += '\n';
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  flush_para();

  std::vector<Chunk> chunks;
  Chunk current;
  std::string heading;
  auto flush = [&] {
    if (!trim(current.body).empty()) chunks.push_back(std::move(current));
    current = Chunk{heading, {}};
  };
  for (Block& b : blocks) {
    if (b.heading) {
      flush();
      heading = b.title.size() > max_bytes ? b.title.substr(0, max_bytes) : b.title;
      current.heading = heading;
    }
    std::vector<std::string> pieces;
    if (b.text.size() > max_bytes) split_long(b.text, max_bytes, &pieces);
    else pieces.push_back(std::move(b.text));
    for (std::string& p : pieces) {
      if (!current.body.empty() && current.body.size() + 2 + p.size() > max_bytes) flush();
      if (!current.body.empty()) current.body += "\n\n";
      current.body += p;
    }
  }
  flush();
  return chunks;
}

Result<Document> load_document(const SourceFile& file, size_t max_chunk_bytes, uint64_t max_file_bytes) {
  // Not through a symlink (scan_corpus resolved them, so one here appeared
  // since), and never anything but a regular file (a FIFO would block a build).
  int fd = ::open(file.abs_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return Unavailable("cannot open '" + file.abs_path + "': " + std::strerror(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Unavailable("cannot stat '" + file.abs_path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Unavailable("'" + file.abs_path + "' is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_file_bytes)
    return ResourceExhausted("it has grown to " + format_bytes(static_cast<uint64_t>(st.st_size)) +
                             ", more than KB_MAX_FILE_SIZE (" + format_bytes(max_file_bytes) + ")");
  // Read straight into one string of the file's size (a stringstream would
  // hold a second copy while handing it over).
  std::string raw(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < raw.size()) {
    ssize_t n = ::read(fd, raw.data() + got, raw.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable("cannot read '" + file.abs_path + "': " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  raw.resize(got);
  Document doc;
  doc.id = document_id(file.path);
  doc.path = file.path;
  doc.kind = file.kind;
  doc.source_bytes = raw.size();
  std::string text;
  if (file.kind == DocKind::kHtml) {
    HtmlText h = html_to_text(raw);
    doc.title = std::move(h.title);
    text = std::move(h.text);
  } else {
    text = sanitize_utf8(tidy_lines(raw));
    if (file.kind == DocKind::kMarkdown) {
      size_t pos = 0;
      bool fence = false;
      while (pos < text.size() && doc.title.empty()) {
        size_t nl = text.find('\n', pos);
        std::string_view line(text.data() + pos, (nl == std::string::npos ? text.size() : nl) - pos);
        size_t level = 0;
        if (is_fence(line)) fence = !fence;
        else if (!fence && is_heading_line(line, &level)) doc.title = std::string(trim(line.substr(level)));
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
    } else {
      std::string_view first = trim(std::string_view(text).substr(0, text.find('\n')));
      if (!first.empty() && first.size() <= 120) doc.title = std::string(first);
    }
  }
  if (doc.title.empty()) doc.title = sanitize_utf8(file_stem(file.path));
  doc.chunks = chunk_text(text, max_chunk_bytes);
  return doc;
}

}  // namespace memgate::kb
