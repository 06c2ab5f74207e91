// Retriever: where the coach finds the passages it grounds an answer in.
//
// The coach does not own a knowledge base; it asks a Retriever for the best
// passages for a question. Without one (the KB is off, or not loaded yet) the
// coach answers with no passages and says so. KbRetriever adapts the kb module's
// FTS5 index; tests use a fake.
//
// RetrieverRegistry is the meeting point between the two modules. The runtime
// (server/modules.cc) makes one and hands it to both: whoever holds a loaded
// index publishes a Retriever there, and the coach reads it per request, so a
// KB that loads after the coach (or is swapped by a refresh) is picked up
// without restarting anything. There is no process-wide instance.
//
// Thread-safety: Retriever implementations must be safe from any thread (the
// coach calls search() on worker threads); the registry is thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::kb {
class Index;
}

namespace memgate::coach {

// One passage of the knowledge base, as the coach cites it.
struct Passage {
  std::string doc_id;
  std::string title;
  std::string path;
  std::string heading;  // the section it comes from ("" before the first heading)
  std::string text;     // the section's text, capped; the prompt quotes it
  std::string snippet;  // a short excerpt around the matches, plain text
  double score = 0;     // higher is better
};

class Retriever {
 public:
  virtual ~Retriever() = default;
  // The best passages for `question`, at most `k`, best first. An empty list
  // when nothing matches. Errors are the index's own (the coach then answers
  // without passages and logs why).
  virtual Result<std::vector<Passage>> search(std::string_view question, int k) const = 0;
};

// Turns a question into the words worth searching for: lower-cased, stop words
// ("how", "do", "the" ...) and one-letter words dropped, duplicates removed, at
// most `max_terms`, in the order they appear.
std::vector<std::string> query_terms(std::string_view question, size_t max_terms = 16);

// The kb module's index as a Retriever. Searches for any of the question's terms
// (bm25 ranks the passages that match more of them first) and reads each hit's
// section from its document, capped at `passage_bytes`.
class KbRetriever final : public Retriever {
 public:
  explicit KbRetriever(std::shared_ptr<const kb::Index> index, size_t passage_bytes = 1200);
  Result<std::vector<Passage>> search(std::string_view question, int k) const override;

 private:
  std::shared_ptr<const kb::Index> index_;
  size_t passage_bytes_;
};

// The slot for the current Retriever (empty: no knowledge base).
class RetrieverRegistry {
 public:
  // Publishes (or, with null, withdraws) the retriever the coach uses from now on.
  void set(std::shared_ptr<const Retriever> retriever);
  // The current retriever, or null.
  std::shared_ptr<const Retriever> get() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Retriever> retriever_;
};

// Removes <mark> and </mark> from a KB snippet.
std::string strip_marks(std::string_view snippet);

}  // namespace memgate::coach
