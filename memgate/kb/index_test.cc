// The FTS5 index: golden rankings on the test corpus, quoting, bad queries,
// documents, the artifact round trip and concurrent queries; the artifact as a
// stream of pieces (writer, streaming open and its refusals); the build within
// a memory budget (on disk, cleaned up) and the estimates behind it.
#include "memgate/kb/index.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "memgate/base/worker_pool.h"
#include "memgate/kb/corpus.h"

namespace memgate::kb {
namespace {

const std::string kCorpus = std::string(MEMGATE_KB_TESTDATA) + "/corpus";

// Hands out the given pieces, then the end marker; or `error` in place of
// piece number `fail_at`. Counts the calls to next().
class PieceSource final : public ByteSource {
 public:
  explicit PieceSource(std::vector<std::string> pieces, size_t fail_at = SIZE_MAX,
                       Status error = Unavailable("connection reset"))
      : pieces_(std::move(pieces)), fail_at_(fail_at), error_(std::move(error)) {
    for (auto& p : pieces_) size_ += p.size();
  }
  uint64_t size() const override { return size_; }
  Result<std::string> next() override {
    ++calls_;
    if (at_ == fail_at_) return error_;
    if (at_ >= pieces_.size()) return std::string();
    return std::move(pieces_[at_++]);
  }
  int calls() const { return calls_; }

 private:
  std::vector<std::string> pieces_;
  size_t fail_at_;
  Status error_;
  uint64_t size_ = 0;
  size_t at_ = 0;
  int calls_ = 0;
};

// `bytes` cut into pieces whose sizes cycle through `sizes`.
std::vector<std::string> cut(std::string_view bytes, std::vector<size_t> sizes) {
  std::vector<std::string> out;
  for (size_t at = 0, i = 0; at < bytes.size(); ++i) {
    size_t n = std::min(sizes[i % sizes.size()], bytes.size() - at);
    out.emplace_back(bytes.substr(at, n));
    at += n;
  }
  return out;
}

// The artifact with the image size in its header replaced.
std::string with_declared_size(std::string artifact, uint64_t size) {
  for (int i = 0; i < 8; ++i) artifact[8 + static_cast<size_t>(i)] = static_cast<char>((size >> (8 * i)) & 0xFF);
  return artifact;
}

// A folder of its own under the system's temporary folder, removed at the end.
class TempFolder {
 public:
  explicit TempFolder(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("memgate-kb-test-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempFolder() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::recursive_directory_iterator(path_)) out.push_back(e.path().string());
    return out;
  }

 private:
  std::filesystem::path path_;
};

// Every field of two result lists, compared.
void expect_same_hits(const Result<std::vector<SearchHit>>& a, const Result<std::vector<SearchHit>>& b,
                      std::string_view q) {
  ASSERT_TRUE(a.ok() && b.ok()) << q;
  ASSERT_EQ(a->size(), b->size()) << q;
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].doc_id, (*b)[i].doc_id) << q;
    EXPECT_EQ((*a)[i].heading, (*b)[i].heading) << q;
    EXPECT_EQ((*a)[i].snippet, (*b)[i].snippet) << q;
    EXPECT_DOUBLE_EQ((*a)[i].score, (*b)[i].score) << q;
  }
}

constexpr const char* kQueries[] = {"compost", "telescope", "moon", "lock", "bread baking", "tomato sauce",
                                    "fencing token", "bm25 ranking", "how do I stop my tomatoes cracking"};

// One build for the whole suite: building is the slow part.
class IndexTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    WorkerPool pool(2);
    BuildOptions o;
    o.workers = &pool;
    o.chunk_size = 400;
    auto a = build_artifact(kCorpus, o, &stats_);
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    artifact_ = new std::string(std::move(*a));
    auto idx = Index::open(*artifact_, 4);
    ASSERT_TRUE(idx.ok()) << idx.status().to_string();
    index_ = new std::shared_ptr<Index>(*idx);
  }
  static void TearDownTestSuite() {
    delete index_;
    delete artifact_;
  }
  static Index& index() { return **index_; }
  static std::vector<std::string> top_paths(std::string_view q, int k = 3, bool advanced = false) {
    auto hits = index().search(q, {k, advanced});
    EXPECT_TRUE(hits.ok()) << q << ": " << hits.status().to_string();
    std::vector<std::string> out;
    if (hits.ok())
      for (auto& h : *hits) out.push_back(h.path);
    return out;
  }
  static inline std::string* artifact_ = nullptr;
  static inline std::shared_ptr<Index>* index_ = nullptr;
  static inline BuildStats stats_;
};

TEST_F(IndexTest, BuildCountsEveryDocumentAndTheArtifactIsCompressed) {
  EXPECT_EQ(stats_.files, 8u);
  EXPECT_EQ(stats_.documents, 8u);
  EXPECT_GE(stats_.chunks, 15u);
  EXPECT_LT(stats_.artifact_bytes, stats_.database_bytes / 2);
  EXPECT_EQ(index().info().documents, 8);
  EXPECT_EQ(index().info().fingerprint, stats_.fingerprint);
  EXPECT_EQ(index().info().chunk_size, 400);
}

struct Golden {
  const char* query;
  const char* top;
};

TEST_F(IndexTest, GoldenQueriesRankTheExpectedDocumentFirst) {
  const Golden kGolden[] = {
      {"compost", "gardening/compost.md"},
      {"tomato sauce", "cooking/tomato-sauce.md"},
      {"pruning suckers", "gardening/tomatoes.md"},          // stems: prune, sucker
      {"telescope aperture", "astronomy/telescopes.html"},
      {"waxing gibbous", "astronomy/moon-phases.txt"},
      {"sourdough starter hydration", "cooking/bread.md"},
      {"fencing token", "computing/redis-locks.md"},
      {"bm25 ranking", "computing/sqlite.html"},
      {"cafe", "cooking/bread.md"},                            // diacritics removed
      {"baked loaf", "cooking/bread.md"},
      {"how do I stop my tomatoes cracking", "gardening/tomatoes.md"},  // no doc has every word
  };
  for (const Golden& g : kGolden) {
    auto top = top_paths(g.query);
    ASSERT_FALSE(top.empty()) << g.query;
    EXPECT_EQ(top[0], g.top) << g.query;
  }
}

TEST_F(IndexTest, ATitleMatchOutranksTheSameWordInABody) {
  // "tomato" is in both tomato documents' bodies; only the sauce has it in its title,
  // and the growing guide has it in its title as "Tomatoes" (same stem). Both rank
  // above the compost heap, which never says it.
  auto top = top_paths("tomatoes", 5);
  ASSERT_GE(top.size(), 2u);
  EXPECT_TRUE((top[0] == "gardening/tomatoes.md" || top[0] == "cooking/tomato-sauce.md")) << top[0];
  auto sauce = top_paths("sauce", 5);
  ASSERT_EQ(sauce.size(), 1u);
}

TEST_F(IndexTest, HitsCarryIdTitlePathScoreAndAHighlightedSnippet) {
  auto hits = index().search("aperture", {5, false});
  ASSERT_TRUE(hits.ok());
  ASSERT_FALSE(hits->empty());
  const SearchHit& h = (*hits)[0];
  EXPECT_EQ(h.doc_id, document_id("astronomy/telescopes.html"));
  EXPECT_EQ(h.title, "Choosing a Telescope \xE2\x80\x94 Sky Notes");
  EXPECT_GT(h.score, 0);
  EXPECT_NE(h.snippet.find("<mark>aperture</mark>"), std::string::npos) << h.snippet;
  for (size_t i = 1; i < hits->size(); ++i) EXPECT_LE((*hits)[i].score, (*hits)[i - 1].score);
}

// A corpus written by the test: one document whose many chunks all match,
// beside others that match once.
std::shared_ptr<Index> build_index_of(const std::vector<std::pair<std::string, std::string>>& files,
                                      size_t chunk_size = 200) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("memgate-kb-search-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  for (const auto& [name, text] : files) {
    std::filesystem::create_directories((dir / name).parent_path());
    std::ofstream(dir / name) << text;
  }
  BuildOptions o;
  o.chunk_size = chunk_size;
  auto artifact = build_artifact(dir.string(), o);
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(artifact.ok()) << artifact.status().to_string();
  if (!artifact.ok()) return nullptr;
  auto index = Index::open(*artifact, 2);
  EXPECT_TRUE(index.ok()) << index.status().to_string();
  return index.ok() ? *index : nullptr;
}

TEST(IndexSearch, ADocumentWithManyMatchingChunksIsOneHitAndTheOthersStillCome) {
  std::string many = "# Heaps\n\n";
  for (int i = 0; i < 40; ++i)
    many += "## Part " + std::to_string(i) + "\n\nA compost heap needs turning, says part " + std::to_string(i) + ".\n\n";
  auto index = build_index_of({{"many.md", many},
                               {"one.md", "# One\n\nThe compost heap by the shed.\n"},
                               {"two.md", "# Two\n\nA heap of compost, turned weekly.\n"},
                               {"none.md", "# None\n\nNothing about it here.\n"}});
  ASSERT_TRUE(index);
  auto hits = index->search("compost heap", {10, false});
  ASSERT_TRUE(hits.ok()) << hits.status().to_string();
  std::vector<std::string> paths;
  for (const SearchHit& h : *hits) paths.push_back(h.path);
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (std::vector<std::string>{"many.md", "one.md", "two.md"}))
      << "k=10 gives every matching document once, even behind 40 chunks of one";
  auto one = index->search("compost heap", {1, false});
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].doc_id, (*hits)[0].doc_id) << "k=1 is the best of k=10";
}

TEST_F(IndexTest, HitsAreTheDocumentsOfFts5sOwnRankingWithItsScoresAndSnippets) {
  // The reference: FTS5's ORDER BY rank over every chunk on the same image,
  // reduced to the first (best) chunk of each document.
  auto image = artifact_database(*artifact_);
  ASSERT_TRUE(image.ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  auto* copy = static_cast<unsigned char*>(sqlite3_malloc64(image->size()));
  std::memcpy(copy, image->data(), image->size());
  ASSERT_EQ(sqlite3_deserialize(db, "main", copy, static_cast<sqlite3_int64>(image->size()),
                                static_cast<sqlite3_int64>(image->size()),
                                SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY),
            SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT d.id, -c.rank, snippet(chunks, 2, '<mark>', '</mark>', '…', 24) "
                               "FROM chunks c JOIN docs d ON d.rowid = c.doc WHERE chunks MATCH ?1 ORDER BY c.rank",
                               -1, &q, nullptr),
            SQLITE_OK);
  struct Case {
    const char* text;
    bool advanced;
  };
  std::string many = "compost OR heap";  // more phrases than bits in a word
  for (int i = 0; i < 70; ++i) many += " OR word" + std::to_string(i);
  for (auto [text, advanced] : {Case{many.c_str(), true}, Case{"compost", false}, Case{"tomato sauce", false}, Case{"telescope aperture", false},
                                Case{"bread", false}, Case{"the", false}, Case{"comp*", true},
                                Case{"sourdough OR fencing", true}, Case{"NEAR(compost heap, 5)", true},
                                Case{"title:telescope", true}}) {
    std::string match = advanced ? std::string(text) : quote_query(text, false);
    sqlite3_bind_text(q, 1, match.c_str(), -1, SQLITE_TRANSIENT);
    struct Want {
      std::string id;
      double score;
      std::string snippet;
    };
    std::vector<Want> want;
    while (sqlite3_step(q) == SQLITE_ROW) {
      std::string id = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
      bool seen = false;
      for (auto& w : want) seen |= w.id == id;
      if (!seen) want.push_back({id, sqlite3_column_double(q, 1), reinterpret_cast<const char*>(sqlite3_column_text(q, 2))});
    }
    sqlite3_reset(q);
    auto hits = index().search(text, {50, advanced});
    ASSERT_TRUE(hits.ok()) << text;
    ASSERT_EQ(hits->size(), want.size()) << text;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ((*hits)[i].doc_id, want[i].id) << text << " #" << i;
      EXPECT_DOUBLE_EQ((*hits)[i].score, want[i].score) << text << " #" << i;
      EXPECT_EQ((*hits)[i].snippet, want[i].snippet) << text << " #" << i << ": the snippet snippet() makes";
    }
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
}

TEST(IndexSearch, SnippetsMarkTheQueryTermsAsTheIndexMatchesThem) {
  std::string body = "# Numbers\n\nSome opening words that go on for a while before anything of interest. ";
  body += "Floats are inexact, a floating point number rounds. Then more words follow the point for a long while, ";
  body += "long enough that the window has to cut the text somewhere after it.\n";
  auto index = build_index_of({{"numbers.md", body}}, 2000);
  ASSERT_TRUE(index);
  auto hits = index->search("FLOATING points", {5, false});
  ASSERT_TRUE(hits.ok()) << hits.status().to_string();
  ASSERT_EQ(hits->size(), 1u);
  const std::string& s = (*hits)[0].snippet;
  EXPECT_NE(s.find("<mark>Floats</mark>"), std::string::npos) << s << ": stems and case as FTS5 matches them";
  EXPECT_NE(s.find("<mark>floating</mark> <mark>point</mark>"), std::string::npos) << s;
  EXPECT_EQ(s.find("<mark>Some"), std::string::npos) << s;
  EXPECT_EQ(s.rfind("…", 0), 0u) << s << ": cut at the front";
  EXPECT_EQ(s.size() - s.rfind("…"), std::string("…").size()) << s << ": and at the end";
  // A phrase (two tokens in one word) is marked only where its tokens are adjacent.
  auto phrase = index->search("number-point", {5, false});
  ASSERT_TRUE(phrase.ok());
  EXPECT_EQ(phrase->size(), 0u) << "'number point' is not adjacent in the text";
  auto adjacent = index->search("floating-point", {5, false});
  ASSERT_TRUE(adjacent.ok());
  ASSERT_EQ(adjacent->size(), 1u);
  EXPECT_NE((*adjacent)[0].snippet.find("<mark>floating point</mark>"), std::string::npos) << (*adjacent)[0].snippet;
  EXPECT_EQ((*adjacent)[0].snippet.find("<mark>Floats"), std::string::npos) << "a lone token of a phrase is not marked";
}

TEST(IndexSearch, AnyWordRanksTheChunksWithMoreOfTheWordsFirst) {
  auto index = build_index_of({{"both.md", "# Both\n\nTurn the compost heap weekly.\n"},
                               {"one.md", "# One\n\nA compost bin.\n"},
                               {"other.md", "# Other\n\nA sand heap.\n"}});
  ASSERT_TRUE(index);
  SearchOptions any;
  any.k = 10;
  any.any_word = true;
  auto hits = index->search("compost heap", any);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 3u);
  EXPECT_EQ((*hits)[0].path, "both.md");
  auto all = index->search("compost heap", {10, false});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u) << "simple mode without any_word wants every word when some chunk has them all";
}

TEST(CheckQuery, RefusesWhatSearchWouldRefuseBeforeAnyIndexIsTouched) {
  EXPECT_TRUE(check_query("compost", false).ok());
  EXPECT_EQ(check_query("  ()  * ", false).code(), Code::kInvalidArgument);
  EXPECT_TRUE(check_query("comp*", true).ok());
  EXPECT_EQ(check_query("   ", true).code(), Code::kInvalidArgument);
  EXPECT_EQ(check_query(std::string(1001, 'a'), false).code(), Code::kInvalidArgument);
}

TEST_F(IndexTest, StrippedMarkupIsNotSearchable) {
  EXPECT_TRUE(top_paths("script").empty());
  EXPECT_TRUE(top_paths("planets").empty());
  EXPECT_TRUE(top_paths("xylophone").empty()) << "hidden files and other extensions are not indexed";
  EXPECT_EQ(top_paths("shop"), std::vector<std::string>{}) << "navigation is not indexed";
}

TEST_F(IndexTest, FtsOperatorsInUserTextAreQuotedNotObeyed) {
  // Each of these would be FTS5 syntax (or a syntax error) if passed through.
  for (const char* q : {"compost OR tomatoes", "title:compost", "comp*", "NEAR(compost heap)", "\"compost",
                        "compost)", "-compost", "compost AND", "^compost", "{title}: compost", "compost\" OR \"bread"}) {
    auto hits = index().search(q, {10, false});
    ASSERT_TRUE(hits.ok()) << q << ": " << hits.status().to_string();
  }
  // "OR" is a word here, not an operator: no document has "or" next to both.
  auto top = top_paths("comp*");
  EXPECT_TRUE(top.empty()) << "a prefix query must not run unless asked for";
  EXPECT_EQ(quote_query("a \"b\" c*", false), "\"a\" \"\"\"b\"\"\" \"c*\"");
  EXPECT_EQ(quote_query("a b", true), "\"a\" OR \"b\"");
  EXPECT_EQ(quote_query("  ()  * ", false), "");
}

TEST_F(IndexTest, AdvancedModeAllowsTheFtsSyntax) {
  auto top = top_paths("comp*", 3, true);
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top[0], "gardening/compost.md");
  top = top_paths("title:telescope", 3, true);
  ASSERT_EQ(top.size(), 1u);
  top = top_paths("sourdough OR fencing", 5, true);
  EXPECT_EQ(top.size(), 2u);
}

TEST_F(IndexTest, BadQueriesAreInvalidArgumentsWithTheReason) {
  for (const char* q : {"compost AND", "\"unbalanced", "nosuchcolumn:compost", "NEAR(", "(("}) {
    auto hits = index().search(q, {5, true});
    ASSERT_FALSE(hits.ok()) << q;
    EXPECT_EQ(hits.status().code(), Code::kInvalidArgument) << q;
    EXPECT_FALSE(hits.status().message().empty());
  }
  auto empty = index().search("   ", {5, false});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), Code::kInvalidArgument);
  auto punct = index().search("?!*", {5, false});
  EXPECT_EQ(punct.status().code(), Code::kInvalidArgument);
  auto huge = index().search(std::string(2000, 'a'), {5, false});
  EXPECT_EQ(huge.status().code(), Code::kInvalidArgument);
}

TEST_F(IndexTest, ADocumentIsItsChunksJoined) {
  auto doc = index().document(document_id("gardening/compost.md"));
  ASSERT_TRUE(doc.ok()) << doc.status().to_string();
  EXPECT_EQ(doc->title, "Composting at Home");
  EXPECT_EQ(doc->path, "gardening/compost.md");
  EXPECT_EQ(doc->text.rfind("# Composting at Home", 0), 0u);
  EXPECT_NE(doc->text.find("ready in three months."), std::string::npos);
  EXPECT_GE(doc->chunks, 2);
  auto missing = index().document("0000000000000000");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(index().document("' OR 1=1 --").status().code(), Code::kNotFound);
}

TEST_F(IndexTest, ASectionIsTheTextUnderItsHeadingAndNothingElse) {
  std::string id = document_id("gardening/compost.md");
  auto turning = index().section(id, "Turning the heap", 4096);
  ASSERT_TRUE(turning.ok()) << turning.status().to_string();
  EXPECT_EQ(turning->rfind("## Turning the heap", 0), 0u) << *turning;
  EXPECT_NE(turning->find("every two weeks"), std::string::npos);
  EXPECT_EQ(turning->find("three parts browns"), std::string::npos) << "the section before is not in it";
  auto intro = index().section(id, "Composting at Home", 4096);
  ASSERT_TRUE(intro.ok());
  EXPECT_NE(intro->find("crumbly humus"), std::string::npos);
  EXPECT_EQ(intro->find("Greens and browns"), std::string::npos) << "a subsection is its own section";
  EXPECT_EQ(index().section(id, "No such heading", 4096).status().code(), Code::kNotFound);
  EXPECT_EQ(index().section("0000000000000000", "Turning the heap", 4096).status().code(), Code::kNotFound);
}

TEST(IndexSection, ALongSectionIsReadOnlyAsFarAsAsked) {
  // One section of twelve paragraphs, chunked at 200 bytes, then a second
  // section of the same name further down (not part of the first).
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("memgate-kb-section-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string text = "# Long\n\n## Steps\n\n";
  for (int i = 0; i < 12; ++i)
    text += "Paragraph " + std::to_string(i) + " says something about the steps at some length, enough to fill a line.\n\n";
  text += "## Other\n\nElsewhere.\n\n## Steps\n\nA second section with the same name.\n";
  { std::ofstream(dir / "long.md") << text; }
  BuildOptions o;
  o.chunk_size = 200;
  auto artifact = build_artifact(dir.string(), o);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(artifact.ok()) << artifact.status().to_string();
  auto index = Index::open(*artifact, 1);
  ASSERT_TRUE(index.ok());
  std::string id = document_id("long.md");
  auto all = (*index)->section(id, "Steps", 1 << 20);
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  EXPECT_NE(all->find("Paragraph 11"), std::string::npos);
  EXPECT_EQ(all->find("second section"), std::string::npos) << "only the first section of that name";
  auto some = (*index)->section(id, "Steps", 300);
  ASSERT_TRUE(some.ok());
  EXPECT_GE(some->size(), 300u);
  EXPECT_LT(some->size(), 300u + 200u + 2u) << "at most one chunk past what was asked";
  EXPECT_EQ(all->rfind(*some, 0), 0u) << "the start of the same text";
}

TEST_F(IndexTest, TheSameCorpusBuildsTheSameAnswersAndALoadedArtifactAnswersTheSame) {
  BuildOptions o;
  o.chunk_size = 400;
  auto again = build_artifact(kCorpus, o);  // no pool: parsed on this thread
  ASSERT_TRUE(again.ok());
  auto other = Index::open(*again, 2);
  ASSERT_TRUE(other.ok());
  for (const char* q : {"compost", "telescope", "moon", "lock", "bread baking"}) {
    auto a = index().search(q, {10, false});
    auto b = (*other)->search(q, {10, false});
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size()) << q;
    for (size_t i = 0; i < a->size(); ++i) {
      EXPECT_EQ((*a)[i].doc_id, (*b)[i].doc_id) << q;
      EXPECT_EQ((*a)[i].snippet, (*b)[i].snippet) << q;
      EXPECT_DOUBLE_EQ((*a)[i].score, (*b)[i].score) << q;
    }
  }
}

TEST(IndexBuild, AFileAboveTheSizeBoundIsSkippedAndTheRestIsIndexed) {
  TempFolder dir("too-large");
  std::ofstream(dir.path() + "/small.md") << "# Small\nthe quick brown fox\n";
  std::ofstream(dir.path() + "/huge.txt") << std::string(20000, 'z') << " needle\n";
  BuildOptions o;
  o.max_file_bytes = 8192;
  BuildStats stats;
  auto a = build_artifact(dir.path(), o, &stats);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(stats.documents, 1u);
  EXPECT_LT(stats.source_bytes, 8192u);
  auto idx = Index::open(*a, 1);
  ASSERT_TRUE(idx.ok());
  auto fox = (*idx)->search("fox", {5, false});
  ASSERT_TRUE(fox.ok());
  EXPECT_EQ(fox->size(), 1u);
  auto needle = (*idx)->search("needle", {5, false});
  ASSERT_TRUE(needle.ok());
  EXPECT_TRUE(needle->empty());
}

TEST_F(IndexTest, ACorruptArtifactIsRefusedAsInvalid) {
  std::string bad = *artifact_;
  bad[bad.size() / 2] ^= 0x5A;
  auto r = Index::open(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  EXPECT_EQ(Index::open("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Index::open("MGKB junk junk junk junk").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Index::open(artifact_->substr(0, artifact_->size() - 10)).status().code(), Code::kInvalidArgument);
}

TEST_F(IndexTest, ConcurrentQueriesUseSeveralConnectionsAndAllSucceed) {
  auto idx = Index::open(*artifact_, 4);
  ASSERT_TRUE(idx.ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto h = (*idx)->search(t % 2 ? "compost heap" : "telescope", {5, false});
        if (!h.ok() || h->empty()) ++failures;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE((*idx)->connections_opened(), 2);
  EXPECT_LE((*idx)->connections_opened(), 4);
}

TEST_F(IndexTest, ProgressIsReportedWithAPercentageAndFinishesAt100) {
  std::vector<BuildProgress> seen;
  BuildOptions o;
  o.progress = [&](const BuildProgress& p) { seen.push_back(p); };
  o.progress_every = std::chrono::milliseconds(0);
  ASSERT_TRUE(build_artifact(kCorpus, o).ok());
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().finished);
  EXPECT_EQ(seen.back().percent(), 100);
  EXPECT_EQ(seen.back().files_done, 8u);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].percent(), seen[i - 1].percent());
}

TEST_F(IndexTest, AStoppedBuildIsCancelled) {
  std::stop_source stop;
  stop.request_stop();
  BuildOptions o;
  o.stop = stop.get_token();
  auto r = build_artifact(kCorpus, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled);
}

// --- The artifact as a stream -------------------------------------------------

TEST_F(IndexTest, AStreamedArtifactAnswersAsTheOneShotOpenWhateverThePieceSizes) {
  // 1 byte, 7 bytes, a header split three ways (3 + 5 + 11 bytes), 1 MiB.
  const std::vector<std::vector<size_t>> patterns = {{1}, {7}, {3, 5, 11, 4096}, {ChunkedBytes::kDefaultPiece}};
  for (const auto& sizes : patterns) {
    PieceSource source(cut(*artifact_, sizes));
    auto streamed = Index::open(source, OpenOptions{.pool_size = 2});
    ASSERT_TRUE(streamed.ok()) << sizes[0] << ": " << streamed.status().to_string();
    EXPECT_EQ((*streamed)->info().artifact_bytes, artifact_->size());
    EXPECT_EQ((*streamed)->info().database_bytes, index().info().database_bytes);
    EXPECT_EQ((*streamed)->info().fingerprint, index().info().fingerprint);
    for (const char* q : kQueries) expect_same_hits(index().search(q, {10, false}), (*streamed)->search(q, {10, false}), q);
  }
}

TEST_F(IndexTest, AStreamFromTakeSourceIsReadToItsEnd) {
  auto source = take_source(ChunkedBytes::copy_of(*artifact_, 1000));
  auto opened = Index::open(*source);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  auto end = source->next();
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end->empty()) << "every piece was taken";
}

TEST_F(IndexTest, ATruncatedStreamIsRefusedAsInvalid) {
  for (size_t keep : {size_t{10}, size_t{16}, size_t{20}, artifact_->size() / 2, artifact_->size() - 1}) {
    PieceSource source(cut(std::string_view(*artifact_).substr(0, keep), {7}));
    auto r = Index::open(source);
    ASSERT_FALSE(r.ok()) << keep;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << keep << ": " << r.status().to_string();
  }
}

TEST_F(IndexTest, BytesAfterTheFrameAreRefusedAsInvalid) {
  PieceSource extra_piece(std::vector<std::string>{*artifact_, "x"});
  EXPECT_EQ(Index::open(extra_piece).status().code(), Code::kInvalidArgument);
  PieceSource in_last_piece(cut(*artifact_ + "trailing", {1000}));
  EXPECT_EQ(Index::open(in_last_piece).status().code(), Code::kInvalidArgument);
  PieceSource second_frame(std::vector<std::string>{*artifact_, artifact_->substr(16)});
  EXPECT_EQ(Index::open(second_frame).status().code(), Code::kInvalidArgument);
}

TEST_F(IndexTest, AHeaderThatDisagreesWithTheFrameIsRefusedAsInvalid) {
  uint64_t image = index().info().database_bytes;
  for (uint64_t declared : {image - 1, image + 1, image * 2, uint64_t{600}}) {
    PieceSource source(cut(with_declared_size(*artifact_, declared), {4096}));
    auto r = Index::open(source);
    ASSERT_FALSE(r.ok()) << declared;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << declared << ": " << r.status().to_string();
  }
}

TEST_F(IndexTest, ASourceErrorIsPassedOnAsItIs) {
  for (size_t fail_at : {size_t{0}, size_t{1}, size_t{3}}) {
    PieceSource source(cut(*artifact_, {7, 4096}), fail_at);
    EXPECT_EQ(Index::open(source).status().code(), Code::kUnavailable) << fail_at;
  }
  PieceSource bad_checksum(cut(*artifact_, {4096}), 2, InvalidArgument("piece 2 failed its checksum"));
  EXPECT_EQ(Index::open(bad_checksum).status().code(), Code::kInvalidArgument);
}

TEST_F(IndexTest, AnImageOverMaxImageIsRefusedAsExhaustedAfterReadingOnlyTheHeader) {
  PieceSource source(cut(*artifact_, {64}));
  auto r = Index::open(source, OpenOptions{.max_image = index().info().database_bytes - 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted) << r.status().to_string();
  EXPECT_EQ(source.calls(), 1) << "the 34 bytes of headers were in the first piece";
}

TEST_F(IndexTest, ALoadOverItsMemoryBudgetIsRefusedBeforeAllocating) {
  uint64_t image = index().info().database_bytes;
  PieceSource source(cut(*artifact_, {64}));
  auto r = Index::open(source, OpenOptions{.memory_budget = image / 2});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted) << r.status().to_string();
  EXPECT_EQ(source.calls(), 1);
  PieceSource exactly(cut(*artifact_, {64}));
  EXPECT_TRUE(Index::open(exactly, OpenOptions{.memory_budget = load_peak_for_image(image)}).ok());
}

TEST_F(IndexTest, TheImageSizeIsReadFromTheFirstSixteenBytes) {
  auto size = artifact_image_size(artifact_->substr(0, 16));
  ASSERT_TRUE(size.ok()) << size.status().to_string();
  EXPECT_EQ(*size, index().info().database_bytes);
  EXPECT_EQ(artifact_image_size(artifact_->substr(0, 15)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(artifact_image_size("XXXX" + artifact_->substr(4, 12)).status().code(), Code::kInvalidArgument);
  std::string other_format = artifact_->substr(0, 16);
  other_format[4] = 9;
  EXPECT_EQ(artifact_image_size(other_format).status().code(), Code::kInvalidArgument);
}

TEST_F(IndexTest, AWriterCutsTheArtifactIntoPiecesOfTheSizeAskedThatOpenAsTheOriginal) {
  auto image = artifact_database(*artifact_);
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  auto writer = ArtifactWriter::start(image->size(), {.level = 1, .piece_size = 4096});
  ASSERT_TRUE(writer.ok());
  for (size_t at = 0, n = 1; at < image->size(); at += n, n = n * 3 + 1)
    ASSERT_TRUE((*writer)->write(std::string_view(*image).substr(at, n)).ok());
  auto pieces = (*writer)->finish();
  ASSERT_TRUE(pieces.ok()) << pieces.status().to_string();
  ASSERT_GT(pieces->pieces().size(), 1u);
  for (const std::string& p : pieces->pieces()) EXPECT_LE(p.size(), 4096u);
  std::string flat = pieces->flatten();
  EXPECT_EQ(artifact_database(flat).value(), *image);
  auto source = take_source(std::move(*pieces));
  auto opened = Index::open(*source);
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  expect_same_hits(index().search("compost", {5, false}), (*opened)->search("compost", {5, false}), "compost");
}

TEST(ArtifactWriter, AnImageLongerOrShorterThanDeclaredIsRefused) {
  std::string image(1024, 'a');
  auto longer = ArtifactWriter::start(1000, {});
  ASSERT_TRUE(longer.ok());
  EXPECT_EQ((*longer)->write(image).code(), Code::kInvalidArgument);
  auto shorter = ArtifactWriter::start(2048, {});
  ASSERT_TRUE(shorter.ok());
  ASSERT_TRUE((*shorter)->write(image).ok());
  EXPECT_EQ((*shorter)->finish().status().code(), Code::kInvalidArgument);
}

// --- Building within a memory budget -------------------------------------------

TEST_F(IndexTest, ABuildWithinASmallBudgetGoesToDiskAnswersAsTheInMemoryBuildAndLeavesNothingBehind) {
  TempFolder temp("budget");
  WorkerPool pool(2);
  BuildOptions o;
  o.workers = &pool;
  o.chunk_size = 400;
  o.memory_budget = 1;  // below any estimate
  o.temp_dir = temp.path();
  BuildStats stats;
  auto pieces = build_artifact_chunked(kCorpus, o, &stats);
  ASSERT_TRUE(pieces.ok()) << pieces.status().to_string();
  EXPECT_TRUE(stats.on_disk);
  EXPECT_FALSE(stats_.on_disk);
  EXPECT_EQ(stats.documents, stats_.documents);
  EXPECT_EQ(stats.chunks, stats_.chunks);
  EXPECT_EQ(temp.entries(), std::vector<std::string>{}) << "the scratch folder is removed";
  auto source = take_source(std::move(*pieces));
  auto disk = Index::open(*source, OpenOptions{.pool_size = 2});
  ASSERT_TRUE(disk.ok()) << disk.status().to_string();
  EXPECT_EQ((*disk)->info().fingerprint, index().info().fingerprint);
  for (const char* q : kQueries) expect_same_hits(index().search(q, {10, false}), (*disk)->search(q, {10, false}), q);
  for (const char* q : {"comp*", "title:telescope", "sourdough OR fencing"})
    expect_same_hits(index().search(q, {10, true}), (*disk)->search(q, {10, true}), q);
  std::string id = document_id("gardening/compost.md");
  EXPECT_EQ((*disk)->document(id).value().text, index().document(id).value().text);
}

TEST_F(IndexTest, ABudgetAboveTheEstimateKeepsTheBuildInMemory) {
  BuildOptions o;
  o.chunk_size = 400;
  o.memory_budget = uint64_t{1} << 40;
  o.temp_dir = "/no/such/folder";  // not used
  BuildStats stats;
  ASSERT_TRUE(build_artifact_chunked(kCorpus, o, &stats).ok());
  EXPECT_FALSE(stats.on_disk);
}

TEST(IndexBudget, AStoppedBudgetedBuildRemovesItsPrivateScratchFile) {
  TempFolder temp("stopped");
  std::stop_source stop;
  std::vector<std::string> seen;
  mode_t mode = 0;
  BuildOptions o;
  o.memory_budget = 1;
  o.temp_dir = temp.path();
  o.stop = stop.get_token();
  o.progress_every = std::chrono::milliseconds(0);
  o.progress = [&](const BuildProgress&) {
    if (stop.stop_requested()) return;
    seen = temp.entries();
    for (const std::string& e : seen) {
      struct stat st {};
      if (e.ends_with("/build.db") && ::stat(e.c_str(), &st) == 0) mode = st.st_mode & 0777;
    }
    stop.request_stop();  // after the first document is in
  };
  auto r = build_artifact_chunked(kCorpus, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCancelled);
  ASSERT_FALSE(seen.empty()) << "the build was on disk when stopped";
  EXPECT_EQ(mode, 0600u) << "the scratch database is private";
  EXPECT_EQ(temp.entries(), std::vector<std::string>{});
}

TEST(IndexBudget, ABudgetedBuildWithNoUsableTempFolderFailsAsAPrecondition) {
  BuildOptions o;
  o.memory_budget = 1;
  o.temp_dir = "/no/such/folder";
  EXPECT_EQ(build_artifact_chunked(kCorpus, o).status().code(), Code::kFailedPrecondition);
}

TEST(BuildBudget, EstimatesGrowWithTheCorpusAndTextWeighsMoreThanHtml) {
  PeakEstimate small = estimate_peaks(10'000'000, 1200);
  PeakEstimate big = estimate_peaks(100'000'000, 1200);
  EXPECT_LT(small.build_bytes, big.build_bytes);
  EXPECT_LT(small.image_bytes, big.image_bytes);
  EXPECT_GT(estimate_peaks(10'000'000, 400).image_bytes, small.image_bytes) << "smaller chunks, more rows";
  EXPECT_GE(big.load_bytes, big.image_bytes);
  EXPECT_LT(big.load_bytes, big.image_bytes * 115 / 100);
  EXPECT_LT(big.disk_build_bytes, big.build_bytes);
  std::vector<SourceFile> html{{"a.html", "", 10'000'000, 0, DocKind::kHtml}};
  std::vector<SourceFile> text{{"a.md", "", 10'000'000, 0, DocKind::kMarkdown}};
  EXPECT_EQ(estimate_peaks(html, 1200).image_bytes, small.image_bytes);
  EXPECT_GT(estimate_peaks(text, 1200).image_bytes, 3 * small.image_bytes);
}

TEST(BuildBudget, APlanStaysInMemoryWhenTheEstimateFitsAndGoesToDiskWhenNot) {
  PeakEstimate e = estimate_peaks(65'000'000, 1200);
  EXPECT_FALSE(plan_build(e, 0).on_disk);
  EXPECT_FALSE(plan_build(e, e.build_bytes).on_disk);
  BuildPlan tight = plan_build(e, 64ull << 20);
  ASSERT_TRUE(tight.on_disk) << "65 MB of HTML does not build in memory within 64 MiB";
  EXPECT_EQ(tight.helpers, 1u);
  EXPECT_GT(tight.cache_kib, 0);
  EXPECT_GT(tight.fts_hashsize, 0);
  EXPECT_GT(tight.window_bytes, 0u);
  EXPECT_GT(tight.batch_bytes, 0u);
  BuildPlan tiny = plan_build(e, 1);
  EXPECT_TRUE(tiny.on_disk);
  EXPECT_LE(tiny.cache_kib, tight.cache_kib);
  EXPECT_LE(tiny.fts_hashsize, tight.fts_hashsize);
}

// ---------------------------------------------------------------------------
// Untrusted images and decompression bombs.

// `image` wrapped in the artifact format, as a build would ship it.
std::string wrap_image(std::string_view image) {
  auto writer = ArtifactWriter::start(image.size(), {});
  EXPECT_TRUE(writer.ok());
  EXPECT_TRUE((*writer)->write(image).ok());
  auto pieces = (*writer)->finish();
  EXPECT_TRUE(pieces.ok());
  std::string out;
  while (!pieces->empty()) out += pieces->take_front();
  return out;
}

// The image of a database made by running `sql` on `base` (or on an empty database).
std::string craft_image(const char* sql, std::string_view base = {}) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  if (!base.empty()) {
    auto* copy = static_cast<unsigned char*>(sqlite3_malloc64(base.size()));
    std::memcpy(copy, base.data(), base.size());
    EXPECT_EQ(sqlite3_deserialize(db, "main", copy, static_cast<sqlite3_int64>(base.size()),
                                  static_cast<sqlite3_int64>(base.size()),
                                  SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE),
              SQLITE_OK);
  }
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_int64 n = 0;
  unsigned char* bytes = sqlite3_serialize(db, "main", &n, 0);
  std::string image(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n));
  sqlite3_free(bytes);
  sqlite3_close(db);
  return image;
}

// Index::open on `artifact`, on a thread of its own: a hang is a failure that
// ends the test binary (a stuck statement cannot be taken back) rather than CI.
Result<std::shared_ptr<Index>> open_within(std::string artifact, std::chrono::seconds limit,
                                           std::chrono::milliseconds* took = nullptr) {
  auto start = std::chrono::steady_clock::now();
  auto done = std::make_shared<std::promise<Result<std::shared_ptr<Index>>>>();
  auto result = done->get_future();
  std::thread([done, a = std::move(artifact)] { done->set_value(Index::open(a)); }).detach();
  if (result.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "Index::open still running after " << limit.count() << " s";
    std::fflush(stdout);
    std::_Exit(1);
  }
  if (took) *took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return result.get();
}

constexpr const char* kEndlessMeta =
    "CREATE VIEW meta(key, value) AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
    "SELECT 'k' || n, 'v' FROM r;";

TEST(IndexUntrusted, AnImageWhoseMetaIsAnEndlessViewIsRefusedQuicklyNotRunForever) {
  std::string image = craft_image((std::string("PRAGMA page_size=512; ") + kEndlessMeta).c_str());
  EXPECT_LE(image.size(), 1024u);
  std::chrono::milliseconds took{};
  auto r = open_within(wrap_image(image), std::chrono::seconds(10), &took);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  EXPECT_LT(took.count(), 10000);
}

TEST_F(IndexTest, AnImageOfOursWithMetaSwappedForAnEndlessViewIsRefusedQuickly) {
  auto image = artifact_database(*artifact_);
  ASSERT_TRUE(image.ok());
  std::string sql = std::string("DROP TABLE meta; ") + kEndlessMeta;
  auto r = open_within(wrap_image(craft_image(sql.c_str(), *image)), std::chrono::seconds(10));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
}

TEST_F(IndexTest, AnImageWhoseDocumentsClaimChunksPastTheImageIsRefusedBeforeAnythingIsAllocatedForThem) {
  auto image = artifact_database(*artifact_);
  ASSERT_TRUE(image.ok());
  // Each claim within the image, together far more than it could hold (every
  // document claiming half of what the image could).
  std::string overlapping =
      "UPDATE docs SET first_chunk = 1, chunk_count = " + std::to_string(image->size() / 16) + ";";
  for (std::string sql : {std::string("UPDATE docs SET first_chunk = 4000000000 WHERE rowid = 1;"),
                          std::string("UPDATE docs SET chunk_count = 4000000000 WHERE rowid = 1;"),
                          std::string("UPDATE docs SET first_chunk = -5 WHERE rowid = 1;"), overlapping}) {
    auto r = open_within(wrap_image(craft_image(sql.c_str(), *image)), std::chrono::seconds(10));
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << sql << ": " << r.status().to_string();
  }
  // A chunk no document claims is never a hit (and nothing fails).
  auto r = open_within(wrap_image(craft_image("UPDATE docs SET chunk_count = 0;", *image)), std::chrono::seconds(10));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto hits = (*r)->search("compost", {10, false});
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE(hits->empty());
}

TEST_F(IndexTest, AnImageWithATriggerAViewAnExtraTableOrAnExtraIndexIsRefusedAsInvalid) {
  auto image = artifact_database(*artifact_);
  ASSERT_TRUE(image.ok());
  for (const char* sql : {
           "CREATE TRIGGER t AFTER INSERT ON docs BEGIN SELECT 1; END;",
           "CREATE VIEW v AS SELECT 1;",
           "CREATE TABLE extra(x); INSERT INTO extra VALUES(1);",
           "CREATE INDEX docs_title ON docs(title);",
           "CREATE TABLE meta2(key TEXT PRIMARY KEY, value TEXT NOT NULL);",
       }) {
    auto r = open_within(wrap_image(craft_image(sql, *image)), std::chrono::seconds(10));
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << sql << ": " << r.status().to_string();
  }
}

TEST_F(IndexTest, AnImageMissingOneOfOurTablesOrWithAnotherDefinitionIsRefusedAsInvalid) {
  auto image = artifact_database(*artifact_);
  ASSERT_TRUE(image.ok());
  for (const char* sql : {
           "DROP TABLE docs; CREATE TABLE docs(rowid INTEGER PRIMARY KEY, id TEXT, title TEXT, path TEXT, kind TEXT,"
           " bytes INTEGER, first_chunk INTEGER, chunk_count INTEGER);",
           "DROP TABLE docs;",
       }) {
    auto r = open_within(wrap_image(craft_image(sql, *image)), std::chrono::seconds(10));
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << sql << ": " << r.status().to_string();
  }
}

TEST_F(IndexTest, AnImageWithACorruptPageIsRefusedByQuickCheck) {
  auto image = artifact_database(*artifact_);
  ASSERT_TRUE(image.ok());
  // The root page of chunks_content gets a b-tree page type that does not exist.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_deserialize(db, "main", reinterpret_cast<unsigned char*>(image->data()),
                                static_cast<sqlite3_int64>(image->size()), static_cast<sqlite3_int64>(image->size()),
                                SQLITE_DESERIALIZE_READONLY),
            SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_schema WHERE name = 'chunks_content'", -1, &q, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  int64_t root = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  size_t page_size = (static_cast<unsigned char>((*image)[16]) << 8) | static_cast<unsigned char>((*image)[17]);
  if (page_size == 1) page_size = 65536;
  std::string bad = *image;
  bad[static_cast<size_t>(root - 1) * page_size] = 0x07;
  auto r = open_within(wrap_image(bad), std::chrono::seconds(10));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
}

TEST_F(IndexTest, AnOpenedIndexStillAnswersWithTheDefensiveSettings) {
  auto r = open_within(*artifact_, std::chrono::seconds(10));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto hits = (*r)->search("compost", {});
  ASSERT_TRUE(hits.ok()) << hits.status().to_string();
  EXPECT_FALSE(hits->empty());
  EXPECT_EQ((*r)->search("NEAR(compost", {3, true}).status().code(), Code::kInvalidArgument);
}

// Peak RSS of the process in bytes (VmHWM), after clear_peak_rss() where the kernel allows it.
uint64_t peak_rss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  return 0;
}
void clear_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// An artifact of `size` zero bytes: zstd makes a frame of run-length blocks,
// about 4 bytes for every 128 KiB.
std::string zeros_artifact(uint64_t size) {
  ArtifactWriter::Options o;
  o.level = 1;
  auto writer = ArtifactWriter::start(size, o);
  EXPECT_TRUE(writer.ok());
  std::string zeros(8 << 20, '\0');
  for (uint64_t done = 0; done < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), size - done));
    EXPECT_TRUE((*writer)->write(std::string_view(zeros.data(), n)).ok());
    done += n;
  }
  auto pieces = (*writer)->finish();
  EXPECT_TRUE(pieces.ok());
  std::string out;
  while (!pieces->empty()) out += pieces->take_front();
  return out;
}

// The artifact with the declared image size changed in both headers (ours and
// the zstd frame's content size field), the blocks left as they are.
std::string with_frame_declaring(std::string artifact, uint64_t size) {
  artifact = with_declared_size(std::move(artifact), size);
  size_t frame = kArtifactHeaderSize;
  auto fhd = static_cast<unsigned char>(artifact[frame + 4]);
  bool single_segment = fhd & 0x20;
  size_t dict_bytes = std::array<size_t, 4>{0, 1, 2, 4}[fhd & 3];
  size_t fcs_bytes = std::array<size_t, 4>{single_segment ? 1u : 0u, 2, 4, 8}[fhd >> 6];
  EXPECT_GE(fcs_bytes, 2u);
  size_t at = frame + 5 + (single_segment ? 0 : 1) + dict_bytes;
  uint64_t value = fcs_bytes == 2 ? size - 256 : size;
  for (size_t i = 0; i < fcs_bytes; ++i) artifact[at + i] = static_cast<char>((value >> (8 * i)) & 0xFF);
  return artifact;
}

constexpr uint64_t kBomb = 2000ull << 20;  // ~2 GB of zeros

TEST(IndexBomb, TheDefaultMaxImageIsOneGibibyte) { EXPECT_EQ(OpenOptions{}.max_image, 1ull << 30); }

TEST(IndexBomb, ASmallArtifactDeclaringTwoGigabytesIsRefusedWithoutAllocatingThem) {
  std::string bomb = zeros_artifact(kBomb);
  EXPECT_LT(bomb.size(), 80u << 10);
  clear_peak_rss();
  sqlite3_memory_highwater(1);
  uint64_t before = peak_rss();
  auto r = Index::open(bomb);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted) << r.status().to_string();
  EXPECT_LT(sqlite3_memory_highwater(0), 64 << 20);
  if (before > 0) {
    EXPECT_LT(peak_rss(), before + (256u << 20));
  }
}

TEST(IndexBomb, AFrameDeclaringLittleButProducingTwoGigabytesIsRefusedAtTheDeclaredSize) {
  std::string bomb = with_frame_declaring(zeros_artifact(kBomb), 1 << 20);
  EXPECT_EQ(*artifact_image_size(bomb), 1u << 20);
  clear_peak_rss();
  sqlite3_memory_highwater(1);
  uint64_t before = peak_rss();
  OpenOptions o;
  o.max_image = 4ull << 30;  // the caller allows big images: the declared size still bounds this one
  auto source = view_source(bomb);
  auto r = Index::open(*source, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  EXPECT_LT(sqlite3_memory_highwater(0), 64 << 20);
  if (before > 0) {
    EXPECT_LT(peak_rss(), before + (256u << 20));
  }
}

}  // namespace
}  // namespace memgate::kb
