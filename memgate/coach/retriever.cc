// The coach's side of retrieval: turning a question into search terms, and the
// adapter over the kb index.
//
// A question is prose ("How often should I turn my compost heap?"); the KB's
// plain search wants every word to match, which prose rarely does. So the coach
// keeps the content words and asks for any of them: bm25 ranks the passages that
// contain more (and rarer) of them first, which is what a reader wants. The KB's
// hit carries a short snippet; the prompt needs the section around it, so the
// adapter reads the hit's document and cuts out the section under the hit's
// heading, capped so a passage never costs more than passage_bytes.
#include "memgate/coach/retriever.h"

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "memgate/kb/index.h"

namespace memgate::coach {
namespace {

const std::unordered_set<std::string_view>& stop_words() {
  static const std::unordered_set<std::string_view> words = {
      "a",     "about", "an",    "and",   "are",   "as",    "at",    "be",    "but",   "by",    "can",
      "could", "did",   "do",    "does",  "for",   "from",  "had",   "has",   "have",  "how",   "i",
      "if",    "in",    "into",  "is",    "it",    "its",   "me",    "my",    "of",    "on",    "or",
      "our",   "should", "so",   "than",  "that",  "the",   "their", "them",  "then",  "there", "these",
      "they",  "this",  "to",    "was",   "we",    "were",  "what",  "when",  "where", "which", "while",
      "who",   "why",   "will",  "with",  "would", "you",   "your",  "am",    "any",   "some",  "much",
      "many",  "tell",  "please", "explain", "much", "get",  "make",  "need",  "want",  "just",  "also"};
  return words;
}

// Trims a string to at most `cap` bytes without cutting a UTF-8 sequence.
void cap_utf8(std::string& s, size_t cap) {
  if (s.size() <= cap) return;
  size_t n = cap;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  s += "…";
}

bool is_heading_line(std::string_view line) { return !line.empty() && line[0] == '#'; }

std::string_view heading_text(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] == '#') ++i;
  while (i < line.size() && line[i] == ' ') ++i;
  return line.substr(i);
}

// The section of `text` that starts at the heading line named `heading` (or the
// start of the text when there is none) and runs to the next heading.
std::string section_of(std::string_view text, std::string_view heading) {
  size_t begin = 0;
  if (!heading.empty()) {
    size_t pos = 0;
    bool found = false;
    while (pos <= text.size()) {
      size_t eol = text.find('\n', pos);
      std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
      if (is_heading_line(line) && heading_text(line) == heading) {
        begin = pos;
        found = true;
        break;
      }
      if (eol == std::string_view::npos) break;
      pos = eol + 1;
    }
    if (!found) begin = 0;
  }
  // Up to the next heading line after the first line.
  size_t end = text.size();
  size_t pos = text.find('\n', begin);
  while (pos != std::string_view::npos && pos + 1 < text.size()) {
    if (text[pos + 1] == '#') {
      end = pos;
      break;
    }
    pos = text.find('\n', pos + 1);
  }
  std::string out(text.substr(begin, end - begin));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::vector<std::string> query_terms(std::string_view question, size_t max_terms) {
  std::vector<std::string> terms;
  std::unordered_set<std::string> seen;
  std::string word;
  auto flush = [&] {
    if (word.size() > 1 && !stop_words().contains(word) && !seen.contains(word) && terms.size() < max_terms) {
      seen.insert(word);
      terms.push_back(word);
    }
    word.clear();
  };
  for (char c : question) {
    unsigned char u = static_cast<unsigned char>(c);
    // Letters, digits and any byte of a multi-byte UTF-8 sequence are word bytes.
    if (std::isalnum(u) || u >= 0x80) {
      word += static_cast<char>(u < 0x80 ? std::tolower(u) : u);
    } else {
      flush();
    }
  }
  flush();
  return terms;
}

std::string strip_marks(std::string_view snippet) {
  std::string out;
  out.reserve(snippet.size());
  size_t i = 0;
  while (i < snippet.size()) {
    if (snippet.compare(i, 6, "<mark>") == 0) {
      i += 6;
    } else if (snippet.compare(i, 7, "</mark>") == 0) {
      i += 7;
    } else {
      out += snippet[i++];
    }
  }
  return out;
}

KbRetriever::KbRetriever(std::shared_ptr<const kb::Index> index, size_t passage_bytes)
    : index_(std::move(index)), passage_bytes_(passage_bytes) {}

Result<std::vector<Passage>> KbRetriever::search(std::string_view question, int k) const {
  std::vector<Passage> out;
  if (!index_ || k <= 0) return out;
  std::vector<std::string> terms = query_terms(question);
  if (terms.empty()) return out;
  std::string joined;
  for (const auto& t : terms) joined += (joined.empty() ? "" : " ") + t;
  kb::SearchOptions options;
  options.k = std::clamp(k, 1, 50);
  options.advanced = true;  // our own quoting below: any of the terms
  auto hits = index_->search(kb::quote_query(joined, /*any_word=*/true), options);
  if (!hits.ok()) return hits.status();
  for (kb::SearchHit& h : *hits) {
    Passage p;
    p.doc_id = std::move(h.doc_id);
    p.title = std::move(h.title);
    p.path = std::move(h.path);
    p.heading = std::move(h.heading);
    p.snippet = strip_marks(h.snippet);
    p.score = h.score;
    auto doc = index_->document(p.doc_id);
    p.text = doc.ok() ? section_of(doc->text, p.heading) : p.snippet;
    cap_utf8(p.text, passage_bytes_);
    out.push_back(std::move(p));
  }
  return out;
}

RetrieverRegistry& RetrieverRegistry::global() {
  static RetrieverRegistry registry;
  return registry;
}

void RetrieverRegistry::set(std::shared_ptr<const Retriever> retriever) {
  std::lock_guard lock(mu_);
  retriever_ = std::move(retriever);
}

std::shared_ptr<const Retriever> RetrieverRegistry::get() const {
  std::lock_guard lock(mu_);
  return retriever_;
}

}  // namespace memgate::coach
