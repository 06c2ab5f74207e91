// The kb's fleet artifact is addressed by its inputs, in the real binary over a
// real redis-server: an instance on another corpus never loads the artifact of
// the first one (even within its done flag's TTL), two instances on two corpora
// at once each build and serve their own, and an artifact stays there for a
// later instance on the same corpus after another corpus was built.
//
// Each corpus is a temp folder of a few Markdown files; a word that is only in
// one corpus tells, through GET /api/kb/search, which index an instance serves.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

// Words that appear in one corpus each (and "compost" in both).
constexpr const char* kOnlyInA = "aardvark";
constexpr const char* kOnlyInB = "zeppelin";

// Writes a small corpus into `dir`: three Markdown files sharing a topic, one of
// them naming `own_word`.
std::string write_corpus(const std::string& dir, const std::string& own_word) {
  fs::create_directories(dir);
  std::map<std::string, std::string> files{
      {"garden.md", "# Garden\n\nCompost feeds the soil; turn the heap every week.\n"},
      {"notes.md", "# Notes\n\nThe " + own_word + " appears in this corpus only.\n\n## More\n\nAbout the " + own_word +
                       ": a word that tells the corpora apart.\n"},
      {"kitchen.md", "# Kitchen\n\nPeelings go to the compost, not the bin.\n"},
  };
  for (auto& [name, text] : files) std::ofstream(dir + "/" + name) << text;
  return dir;
}

class KbInputs : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = RedisServer::start();
    ASSERT_TRUE(redis.ok()) << redis.status().to_string();
    redis_ = std::move(*redis);
    dir_ = temp_dir("memgate-kb-inputs");
    corpus_a_ = write_corpus(dir_ + "/corpus-a", kOnlyInA);
    corpus_b_ = write_corpus(dir_ + "/corpus-b", kOnlyInB);
  }
  void TearDown() override { remove_tree(dir_); }

  ServerProcess::Env env(const std::string& corpus, const std::string& instance) {
    return {{"ENABLE_KB_SERVICE", "true"}, {"KB_CORPUS_DIR", corpus}, {"STAGE_DELAY", "0s"},
            {"INSTANCE_ID", instance},     {"REDIS_URL", redis_->url()}, {"KB_WATCH_INTERVAL", "0s"},
            {"COORD_LOCAL_DIR", dir_ + "/coord-" + instance}};
  }
  // Starts an instance on `corpus` without waiting for it to be ready.
  std::unique_ptr<ServerProcess> launch(const std::string& corpus, const std::string& instance) {
    return ServerProcess::start(env(corpus, instance));
  }
  // Starts an instance on `corpus` and waits for /readyz.
  std::unique_ptr<ServerProcess> start_ready(const std::string& corpus, const std::string& instance) {
    auto s = launch(corpus, instance);
    if (s && !wait_for_status(s->port(), "/readyz", 200, 30s)) {
      ADD_FAILURE() << instance << " was not ready within 30 s; log:\n" << s->log();
      return nullptr;
    }
    return s;
  }

  std::unique_ptr<RedisServer> redis_;
  std::string dir_, corpus_a_, corpus_b_;
};

TEST_F(KbInputs, AnInstanceOnAnotherCorpusWithinTheDoneTtlBuildsItsOwnIndexInsteadOfLoadingTheFirst) {
  std::string fingerprint_a;
  {
    auto a = start_ready(corpus_a_, "kb-a");
    ASSERT_NE(a, nullptr);
    json::object ma = startup_module(a->port(), "kb");
    EXPECT_EQ(text_of(ma, "outcome"), "built") << ma;
    fingerprint_a = text_of(ma, "fingerprint");
    EXPECT_FALSE(hit_paths(a->port(), kOnlyInA).empty());
  }  // a is stopped (SIGKILL by pid); its done flag and artifact stay in Redis
  auto b = start_ready(corpus_b_, "kb-b");
  ASSERT_NE(b, nullptr);
  json::object mb = startup_module(b->port(), "kb");
  EXPECT_EQ(text_of(mb, "outcome"), "built") << "the first corpus's artifact is not this one's: " << mb;
  EXPECT_EQ(text_of(mb, "built_by"), "kb-b") << mb;
  EXPECT_EQ(fingerprint_a.size(), 16u);
  EXPECT_EQ(text_of(mb, "fingerprint").size(), 16u) << mb;
  EXPECT_NE(text_of(mb, "fingerprint"), fingerprint_a) << "other inputs, another fingerprint";
  auto own = hit_paths(b->port(), kOnlyInB);
  ASSERT_FALSE(own.empty()) << "a word only in B is found";
  EXPECT_EQ(own[0], "notes.md");
  EXPECT_TRUE(hit_paths(b->port(), kOnlyInA).empty()) << "a word only in A is not";
  EXPECT_EQ(hit_paths(b->port(), "compost").size(), 2u);
  EXPECT_EQ(b->log().find("kb: ready: "), b->log().rfind("kb: ready: ")) << "served one index: " << b->log();
}

TEST_F(KbInputs, TwoInstancesOnTwoCorporaAtOnceEachBuildAndServeTheirOwn) {
  // Both start before either is ready: they contend at the same moment, for two keys.
  auto a = launch(corpus_a_, "kb-a");
  auto b = launch(corpus_b_, "kb-b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(wait_for_status(a->port(), "/readyz", 200, 30s)) << a->log();
  ASSERT_TRUE(wait_for_status(b->port(), "/readyz", 200, 30s)) << b->log();
  json::object ma = startup_module(a->port(), "kb"), mb = startup_module(b->port(), "kb");
  EXPECT_EQ(text_of(ma, "outcome"), "built") << ma;
  EXPECT_EQ(text_of(mb, "outcome"), "built") << mb;
  EXPECT_EQ(text_of(ma, "built_by"), "kb-a");
  EXPECT_EQ(text_of(mb, "built_by"), "kb-b");
  EXPECT_NE(text_of(ma, "fingerprint"), text_of(mb, "fingerprint"));
  EXPECT_FALSE(hit_paths(a->port(), kOnlyInA).empty());
  EXPECT_TRUE(hit_paths(a->port(), kOnlyInB).empty()) << "a serves B's word";
  EXPECT_FALSE(hit_paths(b->port(), kOnlyInB).empty());
  EXPECT_TRUE(hit_paths(b->port(), kOnlyInA).empty()) << "b serves A's word";
  // Each indexed once, its own corpus.
  for (auto* s : {a.get(), b.get()}) {
    std::string log = s->log();
    EXPECT_NE(log.find("kb: indexed 3 documents"), std::string::npos) << log;
    EXPECT_EQ(log.find("kb: indexed"), log.rfind("kb: indexed")) << log;
  }
}

TEST_F(KbInputs, ARestartOnTheFirstCorpusLoadsItsArtifactAfterAnotherCorpusWasBuilt) {
  std::string fingerprint_a;
  {
    auto a = start_ready(corpus_a_, "kb-a");
    ASSERT_NE(a, nullptr);
    json::object ma = startup_module(a->port(), "kb");
    ASSERT_EQ(text_of(ma, "outcome"), "built") << ma;
    fingerprint_a = text_of(ma, "fingerprint");
  }
  {
    auto b = start_ready(corpus_b_, "kb-b");
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(text_of(startup_module(b->port(), "kb"), "outcome"), "built");
  }
  auto again = start_ready(corpus_a_, "kb-a2");
  ASSERT_NE(again, nullptr);
  json::object m = startup_module(again->port(), "kb");
  EXPECT_EQ(text_of(m, "outcome"), "loaded") << "A's artifact is still there: " << m;
  EXPECT_EQ(text_of(m, "built_by"), "kb-a") << m;
  EXPECT_EQ(text_of(m, "fingerprint"), fingerprint_a);
  EXPECT_EQ(again->log().find("kb: indexed"), std::string::npos) << "loaded, not indexed:\n" << again->log();
  EXPECT_FALSE(hit_paths(again->port(), kOnlyInA).empty());
  EXPECT_TRUE(hit_paths(again->port(), kOnlyInB).empty());
}

}  // namespace
}  // namespace memgate::testing
