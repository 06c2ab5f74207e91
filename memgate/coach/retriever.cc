// The coach's side of retrieval: turning a question into search terms, and the
// adapter over the kb index.
//
// A question is prose ("How often should I turn my compost heap?"); the KB's
// plain search wants every word to match, which prose rarely does. So the coach
// keeps the content words and asks for any of them: bm25 ranks the passages that
// contain more (and rarer) of them first, which is what a reader wants. The KB's
// hit carries a short snippet; the prompt needs the section around it, so the
// adapter reads the chunks under the hit's heading (not the whole document),
// capped so a passage never costs more than passage_bytes.
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
  options.any_word = true;  // any of the terms; the kb quotes each one
  auto hits = index_->search(joined, options);
  if (!hits.ok()) return hits.status();
  for (kb::SearchHit& h : *hits) {
    Passage p;
    p.doc_id = std::move(h.doc_id);
    p.title = std::move(h.title);
    p.path = std::move(h.path);
    p.heading = std::move(h.heading);
    p.snippet = strip_marks(h.snippet);
    p.score = h.score;
    // Only the hit's section, and only as much of it as a passage may hold.
    auto section = index_->section(p.doc_id, p.heading, passage_bytes_);
    p.text = section.ok() ? std::move(*section) : p.snippet;
    while (!p.text.empty() && (p.text.back() == '\n' || p.text.back() == ' ')) p.text.pop_back();
    cap_utf8(p.text, passage_bytes_);
    out.push_back(std::move(p));
  }
  return out;
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
