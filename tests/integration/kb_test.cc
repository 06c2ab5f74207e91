// The knowledge base in the real binary: REST once ready, exit 2 on a bad
// setting, `memgate kb build`, and a fleet of two processes over a real
// redis-server (one indexes, the other loads; a corrupt published artifact is
// rebuilt; a changed corpus is re-indexed once and both instances swap to it
// while queries keep being answered).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

std::string source_corpus() {
  const char* src = std::getenv("MEMGATE_SOURCE_DIR");
  return std::string(src ? src : MEMGATE_SOURCE_ROOT) + "/memgate/kb/testdata/corpus";
}

// A private copy of the test corpus, so a test may change it.
std::string copy_corpus(const std::string& into) {
  std::string dir = into + "/corpus";
  fs::copy(source_corpus(), dir, fs::copy_options::recursive);
  return dir;
}

ServerProcess::Env kb_env(const std::string& dir, const std::string& corpus, const std::string& instance) {
  return {{"ENABLE_KB_SERVICE", "true"}, {"KB_CORPUS_DIR", corpus},    {"STAGE_DELAY", "0s"},
          {"INSTANCE_ID", instance},     {"COORD_LOCAL_DIR", dir + "/coord"}};
}

TEST(KbServer, SearchAndDocumentsAnswerOverRestOnceReady) {
  std::string dir = temp_dir("memgate-kb");
  auto server = ServerProcess::start(kb_env(dir, source_corpus(), "kb-a"));
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(wait_for_status(server->port(), "/readyz", 200, 20s)) << server->log();
  auto top = hit_paths(server->port(), "telescope+aperture");
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top[0], "astronomy/telescopes.html");
  HttpReply search = http_get(server->port(), "/api/kb/search?q=fencing%20token&k=1");
  ASSERT_EQ(search.status, 200);
  auto hit = json::parse(search.body).at("hits").as_array().at(0).as_object();
  HttpReply doc = http_get(server->port(), "/api/kb/docs/" + std::string(hit.at("id").as_string()));
  ASSERT_EQ(doc.status, 200) << doc.body;
  EXPECT_EQ(json::parse(doc.body).at("title"), "Distributed Locks with Redis");
  EXPECT_EQ(http_get(server->port(), "/api/kb/docs/0123456789abcdef").status, 404);
  HttpReply bad = http_get(server->port(), "/api/kb/search?q=compost+AND&mode=advanced");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("syntax error"), std::string::npos) << bad.body;
  EXPECT_EQ(http_get(server->port(), "/api/kb/search?q=%22").status, 400);
  // The log tells how the index was made.
  EXPECT_NE(server->log().find("kb: indexed 8 documents"), std::string::npos) << server->log();
  json::object kb = startup_module(server->port(), "kb");
  EXPECT_EQ(kb.at("state"), "ready");
  remove_tree(dir);
}

TEST(KbServer, ADisabledKnowledgeBaseAnswers404NamingItsFlag) {
  std::string dir = temp_dir("memgate-kb-off");
  auto server = ServerProcess::start({{"STAGE_DELAY", "0s"}, {"COORD_LOCAL_DIR", dir}});
  ASSERT_NE(server, nullptr);
  HttpReply r = http_get(server->port(), "/api/kb/search?q=x");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("ENABLE_KB_SERVICE"), std::string::npos) << r.body;
  remove_tree(dir);
}

TEST(KbServer, ABadSettingStopsStartUpWithExit2NamingTheVariable) {
  for (auto [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"KB_CHUNK_SIZE", "12"}, {"KB_CORPUS_DIR", "/no/such/dir"}, {"MCP_ALLOWED_ORIGINS", "not-an-origin"}}) {
    ServerProcess::Env env{{"ENABLE_KB_SERVICE", "true"}, {"KB_CORPUS_DIR", source_corpus()}, {name, value}};
    RunResult r = run_memgate(env, {});
    EXPECT_EQ(r.exit_code, 2) << name << ": " << r.output;
    EXPECT_NE(r.output.find(name), std::string::npos) << r.output;
  }
}

TEST(KbServer, KbBuildWritesAnArtifactThatKbArtifactFileLoads) {
  std::string dir = temp_dir("memgate-kb-build");
  std::string file = dir + "/kb.artifact";
  RunResult built = run_memgate({}, {"kb", "build", source_corpus(), "-o", file});
  ASSERT_EQ(built.exit_code, 0) << built.output;
  EXPECT_NE(built.output.find("indexed 8 documents"), std::string::npos) << built.output;
  EXPECT_NE(built.output.find("100%"), std::string::npos) << "progress is reported: " << built.output;
  RunResult info = run_memgate({}, {"kb", "info", file});
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_NE(info.output.find("\"documents\":8"), std::string::npos) << info.output;
  EXPECT_EQ(run_memgate({}, {"kb", "build", dir + "/missing", "-o", file}).exit_code, 2);
  EXPECT_EQ(run_memgate({}, {"kb", "frobnicate"}).exit_code, 2);

  auto server = ServerProcess::start({{"ENABLE_KB_SERVICE", "true"}, {"KB_ARTIFACT_FILE", file},
                                      {"STAGE_DELAY", "0s"}, {"COORD_LOCAL_DIR", dir + "/coord"}});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(wait_for_status(server->port(), "/readyz", 200, 20s)) << server->log();
  auto top = hit_paths(server->port(), "sourdough");
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top[0], "cooking/bread.md");
  EXPECT_NE(server->log().find("using KB_ARTIFACT_FILE"), std::string::npos);
  EXPECT_EQ(server->log().find("kb: indexed"), std::string::npos) << "loaded, not indexed";
  remove_tree(dir);
}

class KbFleet : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = RedisServer::start();
    ASSERT_TRUE(redis.ok()) << redis.status().to_string();
    redis_ = std::move(*redis);
    dir_ = temp_dir("memgate-kb-fleet");
    corpus_ = copy_corpus(dir_);
  }
  void TearDown() override { remove_tree(dir_); }
  std::unique_ptr<ServerProcess> start(const std::string& instance, ServerProcess::Env extra = {}) {
    ServerProcess::Env env = kb_env(dir_, corpus_, instance);
    env.emplace_back("REDIS_URL", redis_->url());
    for (auto& e : extra) env.push_back(e);
    auto s = ServerProcess::start(env);
    EXPECT_NE(s, nullptr);
    if (s) {
      EXPECT_TRUE(wait_for_status(s->port(), "/readyz", 200, 30s)) << s->log();
    }
    return s;
  }
  std::string redis_cli(std::vector<std::string> args) {
    std::string log = dir_ + "/redis-cli.out";
    std::remove(log.c_str());
    std::vector<std::string> argv{"redis-cli", "-p", std::to_string(redis_->port())};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = Subprocess::start(argv, {}, log);
    EXPECT_TRUE(p.ok());
    if (p.ok()) {
      EXPECT_EQ((*p)->wait_for(10s), 0);
    }
    return read_file(log);
  }

  std::unique_ptr<RedisServer> redis_;
  std::string dir_, corpus_;
};

TEST_F(KbFleet, OneInstanceIndexesAndTheOtherLoadsItsArtifact) {
  auto a = start("kb-a");
  ASSERT_NE(a, nullptr);
  auto b = start("kb-b");
  ASSERT_NE(b, nullptr);
  json::object ma = startup_module(a->port(), "kb"), mb = startup_module(b->port(), "kb");
  EXPECT_EQ(ma.at("outcome"), "built") << ma;
  EXPECT_EQ(mb.at("outcome"), "loaded") << mb;
  EXPECT_EQ(mb.at("built_by"), "kb-a");
  EXPECT_EQ(b->log().find("kb: indexed"), std::string::npos) << "b must not index";
  for (const char* q : {"compost", "moon+phases", "bm25", "baked+loaf"}) {
    HttpReply ra = http_get(a->port(), std::string("/api/kb/search?q=") + q);
    HttpReply rb = http_get(b->port(), std::string("/api/kb/search?q=") + q);
    EXPECT_EQ(ra.status, 200);
    EXPECT_EQ(ra.body, rb.body) << q;
  }
}

TEST_F(KbFleet, ACorruptPublishedArtifactIsRebuilt) {
  auto a = start("kb-a");
  ASSERT_NE(a, nullptr);
  // The artifact lives under the key of its inputs, hash-tagged: {init:mcp-kb@<fingerprint>}.
  json::object ma = startup_module(a->port(), "kb");
  std::string fingerprint(ma.at("fingerprint").as_string());
  ASSERT_EQ(fingerprint.size(), 16u) << ma;
  std::string base = "{init:mcp-kb@" + fingerprint + "}";
  EXPECT_EQ(redis_cli({"EXISTS", base + ":done"}), "1\n") << "the done flag is under the inputs' key";
  EXPECT_EQ(redis_cli({"EXISTS", base + ":artifact"}), "1\n") << "the artifact's meta is under the inputs' key";
  std::string keys = redis_cli({"--scan", "--pattern", base + ":artifact:*:0"});
  ASSERT_FALSE(keys.empty()) << "no artifact chunk in redis under " << base;
  std::string key = keys.substr(0, keys.find('\n'));
  redis_cli({"SETRANGE", key, "40", "corrupted-bytes"});
  auto b = start("kb-b");
  ASSERT_NE(b, nullptr);
  json::object mb = startup_module(b->port(), "kb");
  EXPECT_EQ(mb.at("outcome"), "rebuilt_bad_artifact") << mb;
  auto top = hit_paths(b->port(), "compost");
  ASSERT_FALSE(top.empty());
  EXPECT_EQ(top[0], "gardening/compost.md");
}

TEST_F(KbFleet, AChangedCorpusIsReindexedOnceAndEveryInstanceSwapsWithoutDroppingAQuery) {
  ServerProcess::Env jobs{{"ENABLE_SCHEDULED_JOBS", "true"}, {"KB_REFRESH_PERIOD", "1s"},
                          {"KB_WATCH_INTERVAL", "100ms"},    {"MONITOR_INTERVAL", "1s"}};
  auto a = start("kb-a", jobs);
  ASSERT_NE(a, nullptr);
  auto b = start("kb-b", jobs);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(hit_paths(a->port(), "quasar").empty());

  std::atomic<bool> done{false};
  std::atomic<int> queries{0}, failures{0};
  std::thread load([&] {
    for (int i = 0; i < 100000 && !done; ++i) {
      uint16_t port = i % 2 ? a->port() : b->port();
      if (http_get(port, "/api/kb/search?q=compost").status != 200) ++failures;
      ++queries;
    }
  });
  std::string fingerprint_before(startup_module(a->port(), "kb").at("fingerprint").as_string());
  // Written beside the corpus, then renamed in: a watcher never sees half a file
  // (which would be inputs of their own, and a second build).
  {
    std::string staged = dir_ + "/quasars.md";
    { std::ofstream(staged) << "# Quasars\n\nA quasar is an extremely luminous galactic nucleus.\n"; }
    fs::rename(staged, corpus_ + "/quasars.md");
  }
  bool both = wait_until(
      [&] {
        auto ta = hit_paths(a->port(), "quasar"), tb = hit_paths(b->port(), "quasar");
        return !ta.empty() && !tb.empty() && ta[0] == "quasars.md" && tb[0] == "quasars.md";
      },
      30s);
  done = true;
  load.join();
  ASSERT_TRUE(both) << a->log() << "\n----\n" << b->log();
  EXPECT_GT(queries.load(), 0);
  EXPECT_EQ(failures.load(), 0) << "a query failed during the swap";
  auto count = [](const std::string& log, const std::string& what) {
    size_t n = 0;
    for (size_t p = log.find(what); p != std::string::npos; p = log.find(what, p + 1)) ++n;
    return n;
  };
  // Each instance refreshed once (the log line follows the swap: poll for it);
  // one of them built the new artifact, the other loaded it.
  std::string refreshed = "module kb: refreshed to the artifact of inputs";
  ASSERT_TRUE(wait_until([&] { return count(a->log(), refreshed) >= 1 && count(b->log(), refreshed) >= 1; }, 10s))
      << a->log() << "\n----\n" << b->log();
  EXPECT_EQ(count(a->log(), refreshed), 1u) << a->log();
  EXPECT_EQ(count(b->log(), refreshed), 1u) << b->log();
  auto count_built = [&](const std::string& log) {
    size_t n = 0;
    for (size_t p = log.find(refreshed); p != std::string::npos; p = log.find(refreshed, p + 1)) {
      size_t eol = log.find('\n', p);
      if (log.substr(p, eol - p).find("(built, by ") != std::string::npos) ++n;
    }
    return n;
  };
  EXPECT_EQ(count_built(a->log()) + count_built(b->log()), 1u) << "re-indexed once for the fleet";
  json::object ra = startup_module(a->port(), "kb"), rb = startup_module(b->port(), "kb");
  EXPECT_EQ(ra.at("refreshes"), 1) << ra;
  EXPECT_EQ(rb.at("refreshes"), 1) << rb;
  EXPECT_NE(ra.at("fingerprint"), json::value(fingerprint_before)) << "the new corpus has inputs of its own";
  EXPECT_EQ(ra.at("fingerprint"), rb.at("fingerprint"));
  // Nothing is published under the old layout's single key any more.
  EXPECT_EQ(redis_cli({"EXISTS", "kb:current"}), "0\n");
  // A restart within the done flag's TTL loads the refreshed index.
  auto c = start("kb-c");
  ASSERT_NE(c, nullptr);
  json::object mc = startup_module(c->port(), "kb");
  EXPECT_EQ(mc.at("outcome"), "loaded") << mc;
  EXPECT_EQ(mc.at("fingerprint"), ra.at("fingerprint"));
  auto tc = hit_paths(c->port(), "quasar");
  ASSERT_FALSE(tc.empty());
  EXPECT_EQ(tc[0], "quasars.md");
}

}  // namespace
}  // namespace memgate::testing
