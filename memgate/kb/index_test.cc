// The FTS5 index: golden rankings on the test corpus, quoting, bad queries,
// documents, the artifact round trip and concurrent queries.
#include "memgate/kb/index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "memgate/base/worker_pool.h"
#include "memgate/kb/corpus.h"

namespace memgate::kb {
namespace {

const std::string kCorpus = std::string(MEMGATE_KB_TESTDATA) + "/corpus";

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

}  // namespace
}  // namespace memgate::kb
