// The kb in the real binary under a real memory cgroup (tests/support/
// memory_cgroup.h), over a real redis-server: the memgate process is in the
// cgroup from its first byte, so the kernel's limit is the container's.
//
// The corpus is synthetic (write_synthetic_corpus): a few hundred Markdown
// files of made-up words, whose in-memory index build peaks well above what
// loading its artifact takes. The limits below sit between those two peaks, or
// below both; the first test measures the corpus without a limit and checks
// that it still does, so a change in the product's memory shows up there first,
// with the figures, rather than as an OOM kill in the others.
//
//   alone, limit between the peaks   → builds within a budget, ready, no OOM kill
//   limit below the load peak        → kb skipped(memory), both numbers in its reason
//   with an unlimited peer           → waits for the peer's artifact and loads it
//
// The tests skip (with the reason) where a memory cgroup cannot be made.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"
#include "tests/support/memory_cgroup.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

constexpr uint64_t kMiB = 1ull << 20;

// The synthetic corpus: kFiles files of about kFileBytes each.
constexpr int kFiles = 300;
constexpr size_t kFileBytes = 80 * 1024;
// A word only in file 0, to see that search works.
constexpr const char* kMarker = "zanzibarite";

// Measured by the first test (2 CPUs, jemalloc, chunk size 1200): the corpus is
// 23.5 MiB; its unbounded build peaks at ~127 MiB above the process's start
// (cgroup peak ~132 MiB) in ~2 s; a load from Redis at ~50 MiB (cgroup peak
// ~54 MiB); the artifact is 18.2 MiB.
//
// Between the load peak and the unbounded build peak: a build fits only within a budget.
constexpr uint64_t kBetweenLimit = 88 * kMiB;
// Below what loading the artifact needs (the binary's own ~10 MiB included).
constexpr uint64_t kBelowLoadLimit = 28 * kMiB;

// A small deterministic generator (splitmix64).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  double unit() { return static_cast<double>(next() >> 11) / static_cast<double>(1ull << 53); }

 private:
  uint64_t s_;
};

// Writes kFiles Markdown files (headings, paragraphs, punctuation) of words
// drawn with a skewed distribution from 40000 made-up words, so the index has a
// long tail of rare terms as real text does; file 0 also has kMarker. The same
// seed gives the same bytes. Returns the total bytes written.
uint64_t write_synthetic_corpus(const std::string& dir, uint64_t seed) {
  static const char* kOnsets[] = {"b",  "c",  "d",  "f",  "g",  "h",  "j",  "k",  "l",  "m",
                                  "n",  "p",  "r",  "s",  "t",  "v",  "w",  "z",  "br", "ch",
                                  "cl", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr"};
  static const char* kVowels[] = {"a", "e", "i", "o", "u", "ai", "ea", "ie", "ou", "y"};
  Rng rng(seed);
  std::vector<std::string> vocab;
  vocab.reserve(40000);
  while (vocab.size() < 40000) {
    std::string w;
    size_t syllables = 1 + rng.below(4);
    for (size_t i = 0; i < syllables; ++i) {
      w += kOnsets[rng.below(std::size(kOnsets))];
      w += kVowels[rng.below(std::size(kVowels))];
    }
    if (rng.below(3) == 0) w += "n";
    vocab.push_back(std::move(w));
  }
  auto word = [&]() -> const std::string& {
    double u = rng.unit();
    return vocab[static_cast<size_t>(u * u * u * static_cast<double>(vocab.size() - 1))];
  };
  fs::create_directories(dir);
  uint64_t total = 0;
  for (int f = 0; f < kFiles; ++f) {
    std::string text = "# " + word() + " " + word() + " " + std::to_string(f) + "\n\n";
    if (f == 0) text += "The " + std::string(kMarker) + " is in this file only.\n\n";
    while (text.size() < kFileBytes) {
      if (rng.below(6) == 0) text += "## " + word() + " " + word() + "\n\n";
      size_t n = 40 + rng.below(80);
      for (size_t i = 0; i < n; ++i) {
        text += word();
        text += (i + 1 == n) ? ".\n\n" : (rng.below(12) == 0 ? ", " : " ");
      }
    }
    char name[32];
    std::snprintf(name, sizeof name, "/section-%02d/page-%04d.md", f % 16, f);
    fs::create_directories(fs::path(dir + name).parent_path());
    std::ofstream(dir + name, std::ios::binary) << text;
    total += text.size();
  }
  return total;
}

json::object kb_module(uint16_t port) { return startup_module(port, "kb"); }

uint64_t memory_number(const json::object& kb, const char* field) {
  const json::value* mem = kb.if_contains("memory");
  if (!mem || !mem->is_object()) return 0;
  const json::value* v = mem->as_object().if_contains(field);
  return v && v->is_number() ? v->to_number<uint64_t>() : 0;
}

std::string memory_text(const json::object& kb, const char* field) {
  const json::value* mem = kb.if_contains("memory");
  return mem && mem->is_object() ? text_of(mem->as_object(), field) : std::string();
}

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / static_cast<double>(kMiB));
  return buf;
}

// Polls /startupz until the kb module is in `state` (or `within` runs out).
bool wait_for_kb_state(ServerProcess& s, const std::string& state, std::chrono::milliseconds within,
                       json::object* last) {
  return wait_until(
      [&] {
        *last = kb_module(s.port());
        return text_of(*last, "state") == state;
      },
      within);
}

// Polls /readyz until it answers 200 or the process is gone (an OOM kill ends
// the wait at once rather than at the deadline); true when ready.
bool wait_ready(ServerProcess& s, std::chrono::milliseconds within) {
  bool ready = false;
  wait_until(
      [&] {
        ready = http_get(s.port(), "/readyz").status == 200;
        return ready || !s.process().running();
      },
      within);
  return ready;
}

class KbUnderAMemoryLimit : public ::testing::Test {
 protected:
  void SetUp() override {
    // A probe: can this machine make a limited cgroup at all?
    auto probe = MemoryCgroup::create(kBetweenLimit);
    if (!probe.ok()) GTEST_SKIP() << probe.status().message();
    dir_ = temp_dir("memgate-memlimit");
    corpus_bytes_ = write_synthetic_corpus(dir_ + "/corpus", 20240601);
    // The corpus's pages are in the page cache now, charged to this process's
    // cgroup, not to a limited server's; the server's own log is charged to it,
    // and is a few KiB.
  }
  void TearDown() override {
    if (!dir_.empty()) remove_tree(dir_);
  }

  ServerProcess::Env env(const std::string& instance) const {
    return {{"ENABLE_KB_SERVICE", "true"},
            {"KB_CORPUS_DIR", dir_ + "/corpus"},
            {"KB_WATCH_INTERVAL", "0s"},
            {"STAGE_DELAY", "0s"},
            {"GATE_RETRIES", "0"},
            {"INSTANCE_ID", instance},
            {"COORD_LOCAL_DIR", dir_ + "/coord-" + instance}};
  }
  std::unique_ptr<RedisServer> redis() {
    auto r = RedisServer::start();
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(*r) : nullptr;
  }
  // A message with the cgroup's readings and the server's log, for a failure.
  static std::string readings(const MemoryCgroup& cg, ServerProcess* s) {
    std::string out = "cgroup " + cg.path() + ": limit " + mib(cg.limit().value_or(0)) + ", peak " +
                      mib(cg.peak().value_or(0)) + ", usage " + mib(cg.usage().value_or(0)) + ", oom kills " +
                      std::to_string(cg.oom_kills().value_or(0));
    if (s) out += "\nlog:\n" + s->log();
    return out;
  }

  std::string dir_;
  uint64_t corpus_bytes_ = 0;
};

// The premise of the tests below, measured: without a limit, the build peaks
// above kBetweenLimit and a load of its artifact stays well below it.
TEST_F(KbUnderAMemoryLimit, TheSyntheticCorpusBuildsAboveTheLimitsUsedHereAndLoadsWellBelowThem) {
  auto redis_server = redis();
  ASSERT_NE(redis_server, nullptr);
  // "Unlimited": a cgroup with a limit far above anything here, to read its peak.
  auto build_cg = MemoryCgroup::create(2048 * kMiB);
  auto load_cg = MemoryCgroup::create(2048 * kMiB);
  ASSERT_TRUE(build_cg.ok() && load_cg.ok());
  ServerProcess::Env builder_env = env("builder");
  builder_env.emplace_back("REDIS_URL", redis_server->url());
  auto builder = ServerProcess::start_in(**build_cg, builder_env);
  ASSERT_NE(builder, nullptr);
  ASSERT_TRUE(wait_for_status(builder->port(), "/readyz", 200, 50s)) << builder->log();
  json::object built = kb_module(builder->port());
  ASSERT_EQ(text_of(built, "outcome"), "built") << built;

  ServerProcess::Env loader_env = env("loader");
  loader_env.emplace_back("REDIS_URL", redis_server->url());
  auto loader = ServerProcess::start_in(**load_cg, loader_env);
  ASSERT_NE(loader, nullptr);
  ASSERT_TRUE(wait_for_status(loader->port(), "/readyz", 200, 30s)) << loader->log();
  json::object loaded = kb_module(loader->port());
  ASSERT_EQ(text_of(loaded, "outcome"), "loaded") << loaded;

  uint64_t build_peak = memory_number(built, "measured_build_peak_bytes");
  uint64_t load_peak = memory_number(loaded, "measured_load_peak_bytes");
  uint64_t build_cg_peak = (*build_cg)->peak().value_or(0);
  uint64_t load_cg_peak = (*load_cg)->peak().value_or(0);
  std::string figures = "corpus " + mib(corpus_bytes_) + " in " + std::to_string(kFiles) + " files; build peak " +
                        mib(build_peak) + " (cgroup peak " + mib(build_cg_peak) + ", predicted " +
                        mib(memory_number(built, "predicted_build_bytes")) + ") in " +
                        std::to_string(built.at("duration_ms").to_number<int64_t>()) + " ms; load peak " +
                        mib(load_peak) + " (cgroup peak " + mib(load_cg_peak) + ", predicted " +
                        mib(memory_number(loaded, "predicted_load_bytes")) + "); artifact " +
                        mib(built.at("artifact_bytes").to_number<uint64_t>());
  RecordProperty("figures", figures);
  std::printf("%s\n", figures.c_str());
  EXPECT_GT(build_cg_peak, kBetweenLimit + 8 * kMiB) << figures;
  EXPECT_GT(build_peak, kBetweenLimit) << figures;
  EXPECT_LT(load_cg_peak, kBetweenLimit * 3 / 4) << figures;
  EXPECT_GT(load_cg_peak, kBelowLoadLimit) << figures;
  EXPECT_GT(build_peak, 2 * load_peak) << "the build peaks clearly above the load: " << figures;
}

TEST_F(KbUnderAMemoryLimit, AloneBetweenTheLoadAndTheBuildPeakItBuildsWithinABudgetAndBecomesReady) {
  auto cg = MemoryCgroup::create(kBetweenLimit);
  ASSERT_TRUE(cg.ok()) << cg.status().message();
  ServerProcess::Env e = env("alone");
  e.emplace_back("FLEET_PEER_WAIT", "0s");
  auto server = ServerProcess::start_in(**cg, e);  // no REDIS_URL: no peer can publish
  ASSERT_NE(server, nullptr) << readings(**cg, nullptr);
  bool ready = wait_ready(*server, 50s);
  json::object kb = kb_module(server->port());
  EXPECT_EQ((*cg)->oom_kills().value_or(0), 0u) << readings(**cg, server.get());
  ASSERT_TRUE(ready) << kb << "\n" << readings(**cg, server.get());
  EXPECT_EQ(text_of(kb, "state"), "ready") << kb;
  EXPECT_EQ(text_of(kb, "outcome"), "built") << kb;
  EXPECT_EQ(memory_text(kb, "decision"), "build within budget") << kb;
  uint64_t budget = memory_number(kb, "build_budget_bytes");
  EXPECT_GT(budget, 0u) << kb;
  EXPECT_LT(budget, kBetweenLimit) << kb;
  HttpReply r = http_get(server->port(), std::string("/api/kb/search?q=") + kMarker);
  ASSERT_EQ(r.status, 200) << r.body;
  auto hits = json::parse(r.body).at("hits").as_array();
  ASSERT_EQ(hits.size(), 1u) << r.body;
  EXPECT_EQ(hits[0].at("path"), "section-00/page-0000.md");
  EXPECT_TRUE(server->process().running()) << readings(**cg, server.get());
  EXPECT_EQ((*cg)->oom_kills().value_or(0), 0u) << readings(**cg, server.get());
}

TEST_F(KbUnderAMemoryLimit, BelowTheLoadPeakTheKbIsSkippedForMemoryAndTheServerStaysHealthy) {
  auto cg = MemoryCgroup::create(kBelowLoadLimit);
  ASSERT_TRUE(cg.ok()) << cg.status().message();
  ServerProcess::Env e = env("small");
  e.emplace_back("FLEET_PEER_WAIT", "0s");
  auto server = ServerProcess::start_in(**cg, e);
  ASSERT_NE(server, nullptr) << readings(**cg, nullptr);
  json::object kb;
  ASSERT_TRUE(wait_for_kb_state(*server, "skipped(memory)", 30s, &kb)) << kb << "\n" << readings(**cg, server.get());
  std::string reason = text_of(kb, "reason");
  // Both numbers: what the step needs and the headroom there was.
  EXPECT_TRUE(std::regex_search(reason, std::regex(R"(needs ~[0-9.]+ [KMG]i?B, headroom [0-9.]+ [KMG]i?B)")))
      << reason;
  EXPECT_EQ(memory_text(kb, "decision"), "skip (memory)") << kb;
  EXPECT_GT(memory_number(kb, "predicted_load_bytes"), memory_number(kb, "headroom_bytes")) << kb;
  EXPECT_GE(memory_number(kb, "refusals"), 1u) << kb;
  EXPECT_EQ(http_get(server->port(), "/healthz").status, 200);
  EXPECT_TRUE(wait_for_status(server->port(), "/readyz", 200, 10s)) << "a skipped module is settled";
  HttpReply search = http_get(server->port(), "/api/kb/search?q=anything");
  EXPECT_NE(search.status, 200) << search.body;
  EXPECT_TRUE(server->process().running()) << readings(**cg, server.get());
  EXPECT_EQ((*cg)->oom_kills().value_or(0), 0u) << readings(**cg, server.get());
}

TEST_F(KbUnderAMemoryLimit, WithAnUnlimitedPeerTheLimitedInstanceWaitsForItsArtifactInsteadOfBuilding) {
  auto redis_server = redis();
  ASSERT_NE(redis_server, nullptr);
  auto cg = MemoryCgroup::create(kBetweenLimit);
  ASSERT_TRUE(cg.ok()) << cg.status().message();
  ServerProcess::Env e = env("limited");
  e.emplace_back("REDIS_URL", redis_server->url());
  e.emplace_back("FLEET_PEER_WAIT", "40s");
  auto limited = ServerProcess::start_in(**cg, e);
  ASSERT_NE(limited, nullptr);
  // Nothing is published yet and a build does not fit: it waits, and says so.
  json::object kb;
  ASSERT_TRUE(wait_for_kb_state(*limited, "waiting_for_peer", 20s, &kb)) << kb << "\n" << readings(**cg, limited.get());
  EXPECT_EQ(memory_text(kb, "decision"), "wait for a peer") << kb;
  EXPECT_TRUE(wait_until([&] { return limited->log().find("module kb: build needs ~") != std::string::npos; }, 5s))
      << "the log says why it waits:\n" << limited->log();

  ServerProcess::Env pe = env("peer");
  pe.emplace_back("REDIS_URL", redis_server->url());
  auto peer = ServerProcess::start(pe);  // no cgroup: no limit
  ASSERT_NE(peer, nullptr);
  ASSERT_TRUE(wait_for_status(peer->port(), "/readyz", 200, 50s)) << peer->log();
  EXPECT_EQ(text_of(kb_module(peer->port()), "outcome"), "built");

  bool ready = wait_ready(*limited, 30s);
  kb = kb_module(limited->port());
  ASSERT_TRUE(ready) << kb << "\n" << readings(**cg, limited.get());
  std::string outcome = text_of(kb, "outcome");
  EXPECT_TRUE(outcome == "waited" || outcome == "loaded") << kb;
  EXPECT_EQ(text_of(kb, "built_by"), "peer") << kb;
  // The record keeps every decision of the step: the wait, then the load.
  EXPECT_NE(memory_text(kb, "decisions").find("wait for a peer"), std::string::npos) << kb;
  EXPECT_EQ(memory_text(kb, "decisions").find("build"), std::string::npos) << kb;
  EXPECT_EQ(memory_number(kb, "measured_build_peak_bytes"), 0u) << "it did not build: " << kb;
  EXPECT_EQ(limited->log().find("kb: indexed"), std::string::npos) << limited->log();
  HttpReply r = http_get(limited->port(), std::string("/api/kb/search?q=") + kMarker);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body).at("hits").as_array().size(), 1u) << r.body;
  EXPECT_EQ((*cg)->oom_kills().value_or(0), 0u) << readings(**cg, limited.get());
  auto peak = (*cg)->peak();
  ASSERT_TRUE(peak.ok()) << peak.status().message();
  EXPECT_LT(*peak, kBetweenLimit * 9 / 10) << readings(**cg, limited.get());
}

}  // namespace
}  // namespace memgate::testing
