#include "memgate/coach/retriever.h"

#include <gtest/gtest.h>

#include "memgate/kb/index.h"

namespace memgate::coach {
namespace {

std::shared_ptr<const kb::Index> test_index() {
  static std::shared_ptr<const kb::Index> index = [] {
    kb::BuildOptions o;
    auto artifact = kb::build_artifact(std::string(MEMGATE_KB_TESTDATA) + "/corpus", o);
    EXPECT_TRUE(artifact.ok()) << artifact.status().to_string();
    auto opened = kb::Index::open(*artifact, 2);
    EXPECT_TRUE(opened.ok()) << opened.status().to_string();
    return std::shared_ptr<const kb::Index>(*opened);
  }();
  return index;
}

TEST(QueryTerms, KeepContentWordsLowerCasedOnceEachInOrder) {
  EXPECT_EQ(query_terms("How often should I turn my Compost heap? The HEAP, I mean."),
            (std::vector<std::string>{"often", "turn", "compost", "heap", "mean"}));
  EXPECT_TRUE(query_terms("how do I ... ?").empty());
}

TEST(QueryTerms, StopAtTheCap) { EXPECT_EQ(query_terms("alpha beta gamma delta", 2).size(), 2u); }

TEST(StripMarks, RemovesOnlyTheMarkTags) { EXPECT_EQ(strip_marks("a <mark>heap</mark> of <b>"), "a heap of <b>"); }

TEST(KbRetriever, FindsTheSectionThatAnswersAQuestionInProse) {
  KbRetriever r(test_index());
  auto passages = r.search("How often should I turn my compost heap?", 3);
  ASSERT_TRUE(passages.ok()) << passages.status().to_string();
  ASSERT_FALSE(passages->empty());
  const Passage& best = passages->front();
  EXPECT_EQ(best.path, "gardening/compost.md");
  EXPECT_EQ(best.title, "Composting at Home");
  EXPECT_NE(best.text.find("every two weeks"), std::string::npos) << best.text;
  EXPECT_EQ(best.text.find("Greens and browns"), std::string::npos) << "only the hit's section: " << best.text;
  EXPECT_EQ(best.doc_id.size(), 16u);
  EXPECT_GT(best.score, 0);
}

TEST(KbRetriever, CapsEachPassage) {
  KbRetriever r(test_index(), 64);
  auto passages = r.search("compost heap", 2);
  ASSERT_TRUE(passages.ok());
  ASSERT_FALSE(passages->empty());
  for (const Passage& p : *passages) EXPECT_LE(p.text.size(), 64u + 3) << p.text;
}

TEST(KbRetriever, AQuestionWithNoContentWordFindsNothing) {
  KbRetriever r(test_index());
  auto passages = r.search("what is it?", 3);
  ASSERT_TRUE(passages.ok());
  EXPECT_TRUE(passages->empty());
}

TEST(RetrieverRegistry, HandsOutWhatWasPublishedUntilItIsWithdrawn) {
  RetrieverRegistry registry;
  EXPECT_EQ(registry.get(), nullptr);
  auto r = std::make_shared<KbRetriever>(test_index());
  registry.set(r);
  EXPECT_EQ(registry.get(), r);
  registry.set(nullptr);
  EXPECT_EQ(registry.get(), nullptr);
}

}  // namespace
}  // namespace memgate::coach
