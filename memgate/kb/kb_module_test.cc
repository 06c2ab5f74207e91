// The kb module on its own: settings checked by the factory, build then load,
// the routes it installs (through a real listener), and a refresh swapping the
// index without a coordinator.
#include "memgate/kb/kb_module.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <algorithm>

#include "memgate/base/clock.h"
#include "memgate/base/worker_pool.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/startup/loader.h"
#include "memgate/http/server.h"
#include "memgate/http/test_client.h"
#include "memgate/mcp/server.h"

namespace memgate::kb {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

const std::string kCorpus = std::string(MEMGATE_KB_TESTDATA) + "/corpus";

TEST(KbModuleSettings, BadValuesAreRefusedNamingTheVariable) {
  Config c;
  struct Case {
    std::map<std::string, std::string> env;
    const char* names;
    bool enabled = false;
  };
  const Case cases[] = {
      {{{"KB_CORPUS_DIR", "/no/such/folder"}}, "KB_CORPUS_DIR", true},
      {{{"KB_ARTIFACT_FILE", "/no/such/file"}}, "KB_ARTIFACT_FILE", true},
      {{}, "KB_CORPUS_DIR", true},
      {{{"KB_CHUNK_SIZE", "10"}}, "KB_CHUNK_SIZE"},
      {{{"KB_CHUNK_SIZE", "big"}}, "KB_CHUNK_SIZE"},
      {{{"KB_MAX_FILE_SIZE", "10"}}, "KB_MAX_FILE_SIZE"},
      {{{"KB_MAX_FILE_SIZE", "50%"}}, "KB_MAX_FILE_SIZE"},
      {{{"KB_MAX_FILE_SIZE", "5GB"}}, "KB_MAX_FILE_SIZE"},
      {{{"KB_QUERY_CONNECTIONS", "0"}}, "KB_QUERY_CONNECTIONS"},
      {{{"KB_REFRESH_PERIOD", "30"}}, "KB_REFRESH_PERIOD"},
      {{{"KB_WATCH_INTERVAL", "soon"}}, "KB_WATCH_INTERVAL"},
      {{{"MCP_AUTH_TOKEN", "has space"}}, "MCP_AUTH_TOKEN"},
      {{{"MCP_ALLOWED_ORIGINS", "evil.example"}}, "MCP_ALLOWED_ORIGINS"},
      {{{"MCP_ALLOWED_ORIGINS", "https://a.example/path"}}, "MCP_ALLOWED_ORIGINS"},
      {{{"MCP_ALLOWED_ORIGINS", " , "}}, "MCP_ALLOWED_ORIGINS"},
      {{{"MCP_RESOURCE_PAGE_SIZE", "0"}}, "MCP_RESOURCE_PAGE_SIZE"},
      {{{"MCP_RESOURCE_PAGE_SIZE", "many"}}, "MCP_RESOURCE_PAGE_SIZE"},
      {{{"MCP_AUTH_JWKS", "/no/such/jwks.json"}}, "MCP_AUTH_JWKS"},
      {{{"MCP_AUTH_ISSUER", "https://auth.example"}}, "MCP_AUTH_JWKS"},
      {{{"MCP_AUTH_ISSUER", "auth.example"}}, "MCP_AUTH_ISSUER"},
      {{{"MCP_AUTH_TOOL_SCOPES", "get_document"}}, "MCP_AUTH_TOOL_SCOPES"},
      {{{"MCP_AUTH_CLOCK_SKEW", "10m"}}, "MCP_AUTH_CLOCK_SKEW"},
      {{{"MCP_AUTH_JWKS_RECHECK", "2h"}}, "MCP_AUTH_JWKS_RECHECK"},
  };
  for (const Case& k : cases) {
    c.enable_kb_service = k.enabled;
    auto m = make_kb_module(c, env_of(k.env));
    ASSERT_FALSE(m.ok()) << k.names;
    EXPECT_EQ(m.status().code(), Code::kInvalidArgument);
    EXPECT_NE(m.status().message().find(k.names), std::string::npos) << m.status().message();
  }
  // Disabled, a missing folder is not checked (nothing will read it).
  c.enable_kb_service = false;
  EXPECT_TRUE(make_kb_module(c, env_of({{"KB_CORPUS_DIR", "/no/such/folder"}})).ok());
}

TEST(KbModuleSettings, TheModuleDeclaresTheGuideDefaults) {
  Config c;
  auto m = make_kb_module(c, env_of({{"KB_CORPUS_DIR", kCorpus}}));
  ASSERT_TRUE(m.ok());
  auto& mod = **m;
  EXPECT_EQ(mod.name(), "kb");
  EXPECT_EQ(mod.flag().env, "ENABLE_KB_SERVICE");
  EXPECT_FALSE(mod.flag().default_on);
  ASSERT_TRUE(mod.memory_gate().has_value());
  EXPECT_EQ(mod.memory_gate()->bytes, 1536ull << 20);
  auto fleet = mod.fleet();
  ASSERT_TRUE(fleet.has_value());
  EXPECT_EQ(fleet->lock_key, "init:mcp-kb");
  EXPECT_EQ(fleet->lock_ttl, std::chrono::seconds(20));
  EXPECT_EQ(fleet->done_key, "init:mcp-kb:done");
  EXPECT_EQ(fleet->done_ttl, std::chrono::minutes(10));
  bool has_mcp = false;
  for (auto& r : mod.routes()) has_mcp |= r.pattern == "/mcp" && r.method == http::Method::kPost;
  EXPECT_TRUE(has_mcp);
  EXPECT_TRUE(mod.jobs().empty()) << "disabled: no refresh job";
  Config enabled;
  enabled.enable_kb_service = true;
  auto on = make_kb_module(enabled, env_of({{"KB_CORPUS_DIR", kCorpus}}));
  ASSERT_TRUE(on.ok());
  ASSERT_EQ((*on)->jobs().size(), 1u);
  EXPECT_EQ((*on)->jobs()[0].name, "kb-refresh");
}

// The configuration has already resolved --enable-kb-service over
// ENABLE_KB_SERVICE over the default; the module follows it, not the raw variable.
TEST(KbModuleSettings, TheResolvedConfigurationDecidesNotTheRawVariable) {
  Config off;
  auto by_env = make_kb_module(off, env_of({{"KB_CORPUS_DIR", kCorpus}, {"ENABLE_KB_SERVICE", "true"}}));
  ASSERT_TRUE(by_env.ok());
  EXPECT_TRUE((*by_env)->jobs().empty());
  Config on;
  on.enable_kb_service = true;
  auto by_flag = make_kb_module(on, env_of({{"KB_CORPUS_DIR", kCorpus}, {"ENABLE_KB_SERVICE", "false"}}));
  ASSERT_TRUE(by_flag.ok());
  EXPECT_EQ((*by_flag)->jobs().size(), 1u);
}

class KbModuleServing : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("memgate-kb-module-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::copy(kCorpus, dir_, fs::copy_options::recursive);
    server_ = std::make_unique<http::Server>(http::ServerOptions{"127.0.0.1", 0, 1});
    ASSERT_TRUE(server_->start().ok());
  }
  void TearDown() override {
    if (loader_) loader_->stop();
    else if (module_) module_->stop();
    server_->stop(std::chrono::milliseconds(0));
    workers_.join();
    fs::remove_all(dir_);
  }
  void bring_up(std::map<std::string, std::string> env, std::shared_ptr<mcp::Registry> registry = nullptr) {
    config_.enable_kb_service = true;
    env["KB_CORPUS_DIR"] = dir_.string();
    auto m = make_kb_module(config_, env_of(env), {}, std::move(registry));
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    module_ = *m;
    startup::ModuleContext ctx{config_, server_->router(), workers_, {}, 0, nullptr, "test"};
    auto artifact = module_->build(ctx);
    ASSERT_TRUE(artifact.ok()) << artifact.status().to_string();
    artifact_ = artifact->flatten();
    auto source = take_source(std::move(*artifact));
    ASSERT_TRUE(module_->load(*source, ctx).ok());
  }
  // The module under the real loader (a local fleet: builds here), so refreshes
  // go through the runtime's artifact channel as in the server.
  void bring_up_in_loader() {
    config_.enable_kb_service = true;
    auto m = make_kb_module(config_, env_of({{"KB_CORPUS_DIR", dir_.string()}, {"KB_WATCH_INTERVAL", "0s"}}));
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    module_ = *m;
    startup::LoaderOptions o;
    o.stage_delay = std::chrono::milliseconds(0);
    o.instance_id = "test";
    o.env = [](const std::string& name) -> std::optional<std::string> {
      if (name == "ENABLE_KB_SERVICE") return std::string("true");
      return std::nullopt;
    };
    loader_ = std::make_unique<startup::StagedLoader>(startup::ModuleList{module_}, o, config_, server_->router(),
                                                      workers_, probe_, clock_, fleet_);
    loader_->start();
    ASSERT_TRUE(loader_->wait_finished(std::chrono::seconds(30)));
    ASSERT_TRUE(loader_->ready());
  }
  http::testing::ClientResponse get(const std::string& path, const std::string& headers = "") {
    http::testing::TestConnection c(server_->port());
    auto r = c.get(path, headers);
    EXPECT_TRUE(r.has_value()) << path;
    return r.value_or(http::testing::ClientResponse{});
  }
  http::testing::ClientResponse post_mcp(const std::string& body) {
    http::testing::TestConnection c(server_->port());
    c.send("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Accept: application/json, text/event-stream\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body);
    auto r = c.read_response();
    EXPECT_TRUE(r.has_value());
    return r.value_or(http::testing::ClientResponse{});
  }

  Config config_;
  fs::path dir_;
  WorkerPool workers_{2};
  std::unique_ptr<http::Server> server_;
  std::shared_ptr<startup::Module> module_;
  std::string artifact_;
  memory::SystemMemoryProbe probe_;
  SteadyClock clock_;
  startup::LocalFleetRunner fleet_;
  std::unique_ptr<startup::StagedLoader> loader_;
};

TEST_F(KbModuleServing, BuildThenLoadServesRestAndMcp) {
  bring_up({});
  auto r = get("/api/kb/search?q=waxing+gibbous");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body).at("hits").as_array()[0].at("path"), "astronomy/moon-phases.txt");
  auto mcp = post_mcp(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_knowledge_base","arguments":{"query":"compost","k":2}}})");
  ASSERT_EQ(mcp.status, 200) << mcp.body;
  auto result = json::parse(mcp.body).at("result").as_object();
  EXPECT_EQ(result.at("isError"), false);
  auto hits = result.at("structuredContent").at("hits").as_array();
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].at("path"), "gardening/compost.md");
  // The text content is the structured content, as JSON (written without a tree).
  std::string text(result.at("content").as_array()[0].at("text").as_string());
  EXPECT_EQ(json::parse(text), result.at("structuredContent")) << text;
  std::string id(hits[0].at("id").as_string());
  auto doc = post_mcp(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_document","arguments":{"id":")" +
                      id + R"("}}})");
  EXPECT_EQ(json::parse(doc.body).at("result").at("structuredContent").at("title"), "Composting at Home");
  EXPECT_EQ(get("/mcp").status, 405);
}

TEST_F(KbModuleServing, AnArtifactFileIsLoadedInsteadOfIndexing) {
  bring_up({});
  fs::path file = dir_ / "kb.artifact";
  { std::ofstream(file, std::ios::binary) << artifact_; }
  config_.enable_kb_service = true;
  auto m = make_kb_module(config_, env_of({{"KB_ARTIFACT_FILE", file.string()}}));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  startup::ModuleContext ctx{config_, server_->router(), workers_, {}, 0, nullptr, "test"};
  auto bytes = (*m)->build(ctx);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->flatten(), artifact_);
  { std::ofstream(file, std::ios::binary) << "garbage"; }
  auto bad = (*m)->build(ctx);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("KB_ARTIFACT_FILE"), std::string::npos);
}

TEST_F(KbModuleServing, ARefreshNoticesAChangedCorpusAndSwapsTheIndex) {
  bring_up_in_loader();
  auto jobs = module_->jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(json::parse(get("/api/kb/search?q=quasar").body).at("count"), 0);
  ASSERT_TRUE(jobs[0].run({}).ok());  // nothing changed: nothing to do
  { std::ofstream(dir_ / "new.md") << "# Quasars\n\nA quasar is a very bright galactic nucleus.\n"; }
  ASSERT_TRUE(jobs[0].run({}).ok());
  auto r = get("/api/kb/search?q=quasar");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body).at("hits").as_array()[0].at("path"), "new.md");
  auto report = loader_->modules()[0];
  EXPECT_EQ(report.refreshes, 1);
  EXPECT_EQ(report.state, startup::ModuleState::kReady);
}

TEST_F(KbModuleServing, ItsInputsChangeWithTheCorpusAndTheChunkSizeAndNothingElse) {
  config_.enable_kb_service = true;
  auto a = make_kb_module(config_, env_of({{"KB_CORPUS_DIR", dir_.string()}}));
  auto same = make_kb_module(config_, env_of({{"KB_CORPUS_DIR", dir_.string()}, {"KB_QUERY_CONNECTIONS", "3"}}));
  auto chunked = make_kb_module(config_, env_of({{"KB_CORPUS_DIR", dir_.string()}, {"KB_CHUNK_SIZE", "800"}}));
  ASSERT_TRUE(a.ok() && same.ok() && chunked.ok());
  std::string before = (*a)->input_fingerprint();
  EXPECT_EQ(before, (*same)->input_fingerprint());
  EXPECT_NE(before, (*chunked)->input_fingerprint());
  { std::ofstream(dir_ / "new.md") << "# New\n\nnew text\n"; }
  EXPECT_NE(before, (*a)->input_fingerprint());
}

TEST_F(KbModuleServing, ItsPeakEstimateGrowsWithTheCorpusAndCanBuildWithinABudget) {
  config_.enable_kb_service = true;
  auto m = make_kb_module(config_, env_of({{"KB_CORPUS_DIR", dir_.string()}}));
  ASSERT_TRUE(m.ok());
  startup::PeakEstimate small = (*m)->estimate_peaks();
  { std::ofstream(dir_ / "big.md") << std::string(4 << 20, 'a') << " word\n"; }
  startup::PeakEstimate big = (*m)->estimate_peaks();
  EXPECT_GT(big.build, small.build);
  EXPECT_GT(big.load, small.load);
  EXPECT_GT(big.min_build_budget, 0u);
  EXPECT_LT(big.min_build_budget, big.build);
}

// MCP_RESOURCE_PAGE_SIZE reaches the module's /mcp: pages of 3 over the 8 documents.
TEST_F(KbModuleServing, TheResourcePageSizeSettingSetsThePagesOfMcp) {
  bring_up({{"MCP_RESOURCE_PAGE_SIZE", "3"}}, std::make_shared<mcp::Registry>());
  auto r = post_mcp(R"({"jsonrpc":"2.0","id":1,"method":"resources/list","params":{}})");
  ASSERT_EQ(r.status, 200) << r.body;
  json::object result = json::parse(r.body).at("result").as_object();
  EXPECT_EQ(result.at("resources").as_array().size(), 3u) << r.body;
  EXPECT_TRUE(result.contains("nextCursor")) << r.body;
}

// resources/list, read, templates and completion on the kb's own documents: the
// module's /mcp over loopback, and a second server over the same registry with
// pages of 2 to walk the cursors.
TEST_F(KbModuleServing, EveryDocumentIsAResourceListedInPagesThatAlwaysAdvance) {
  auto registry = std::make_shared<mcp::Registry>();
  bring_up({}, registry);
  mcp::ServerOptions o;
  o.resource_page_size = 2;
  mcp::McpServer paged(o, registry);
  auto ask = [&](const std::string& method, json::object params) {
    std::string body = json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", params}});
    mcp::HttpExchange ex;
    ex.method = "POST";
    ex.body = body;
    ex.header = [](std::string_view) -> std::string_view { return ""; };
    return json::parse(paged.handle(ex).body).as_object();
  };
  std::vector<json::object> all;
  std::set<std::string> cursors;
  json::object params;
  for (int guard = 0; guard < 20; ++guard) {
    json::object page = ask("resources/list", params).at("result").as_object();
    EXPECT_LE(page.at("resources").as_array().size(), 2u);
    for (auto& r : page.at("resources").as_array()) all.push_back(r.as_object());
    if (!page.contains("nextCursor")) break;
    ASSERT_TRUE(cursors.insert(std::string(page.at("nextCursor").as_string())).second);
    params["cursor"] = page.at("nextCursor");
  }
  ASSERT_EQ(all.size(), 8u) << "every document of the test corpus (readme.rst is not one), once";
  std::set<std::string> uris;
  std::map<std::string, json::object> by_name;
  for (auto& r : all) {
    uris.insert(std::string(r.at("uri").as_string()));
    by_name[std::string(r.at("name").as_string())] = r;
    EXPECT_EQ(std::string(r.at("uri").as_string()).rfind("kb://doc/", 0), 0u);
  }
  EXPECT_EQ(uris.size(), 8u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const json::object& a, const json::object& b) {
    return a.at("uri").as_string() < b.at("uri").as_string();
  }));
  ASSERT_TRUE(by_name.count("Composting at Home"));
  json::object compost = by_name["Composting at Home"];
  EXPECT_EQ(compost.at("mimeType"), "text/markdown");
  EXPECT_FALSE(compost.at("description").as_string().empty());
  ASSERT_TRUE(by_name.count("Distributed Locks with Redis"));
  for (auto& [name, r] : by_name) {
    if (std::string(r.at("uri").as_string()).size() > 0 && name.find("Moon") != std::string::npos) {
      EXPECT_EQ(r.at("mimeType"), "text/plain") << name;
    }
  }
  EXPECT_EQ(ask("resources/list", {{"cursor", "bm90LW91cnM"}}).at("error").at("code"), mcp::kInvalidParams);

  // Over loopback, the module's own /mcp: read, templates, the search template, completion.
  std::string uri(compost.at("uri").as_string());
  auto read = post_mcp(R"({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":")" + uri + R"("}})");
  ASSERT_EQ(read.status, 200) << read.body;
  auto contents = json::parse(read.body).at("result").at("contents").as_array();
  ASSERT_EQ(contents.size(), 1u);
  EXPECT_EQ(contents[0].at("uri").as_string(), uri);
  EXPECT_EQ(contents[0].at("mimeType"), "text/markdown");
  EXPECT_NE(std::string(contents[0].at("text").as_string()).find("ompost"), std::string::npos);
  auto missing = post_mcp(R"({"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"kb://doc/0000000000000000"}})");
  EXPECT_EQ(json::parse(missing.body).at("error").at("code"), mcp::kInvalidParams) << missing.body;
  auto templates = post_mcp(R"({"jsonrpc":"2.0","id":5,"method":"resources/templates/list"})");
  auto list = json::parse(templates.body).at("result").at("resourceTemplates").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].at("uriTemplate"), "kb://doc/{id}");
  EXPECT_EQ(list[1].at("uriTemplate"), "kb://search{?q,k}");
  auto search = post_mcp(R"({"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"kb://search?q=waxing%20gibbous&k=1"}})");
  auto found = json::parse(search.body).at("result").at("contents").as_array();
  ASSERT_EQ(found.size(), 1u) << search.body;
  EXPECT_EQ(found[0].at("mimeType"), "application/json");
  auto hits = json::parse(found[0].at("text").as_string()).at("hits").as_array();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].at("path"), "astronomy/moon-phases.txt");
  for (const char* bad : {"kb://search", "kb://search?q=moon&k=0", "kb://search?q=moon&k=x", "kb://search?q="}) {
    auto r = post_mcp(R"({"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":")" + std::string(bad) + R"("}})");
    EXPECT_EQ(json::parse(r.body).at("error").at("code"), mcp::kInvalidParams) << bad << ": " << r.body;
  }
  std::string prefix = uri.substr(std::string("kb://doc/").size(), 3);
  auto completion = post_mcp(R"({"jsonrpc":"2.0","id":8,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"kb://doc/{id}"},"argument":{"name":"id","value":")" +
                             prefix + R"("}}})");
  auto values = json::parse(completion.body).at("result").at("completion").at("values").as_array();
  ASSERT_FALSE(values.empty()) << completion.body;
  bool has = false;
  for (auto& v : values) {
    EXPECT_EQ(std::string(v.as_string()).rfind(prefix, 0), 0u);
    has = has || v.as_string() == uri.substr(9);
  }
  EXPECT_TRUE(has);
}

}  // namespace
}  // namespace memgate::kb
