// /mcp as an OAuth 2.1 resource server in the real binary: the metadata
// document, 401/403/200 over real HTTP for tokens this test mints with keys it
// generates (their JWKS written to a file the server reads), the official
// TypeScript SDK client calling with a bearer token, and start-up refusing a
// bad configuration.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "memgate/mcp/jwt_testing.h"
#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;
using mcp::testing::TestKey;

constexpr const char* kIssuer = "https://auth.example/realms/memgate";
constexpr const char* kAudience = "https://mcp.example/mcp";

std::string source_dir() {
  const char* src = std::getenv("MEMGATE_SOURCE_DIR");
  return src ? src : MEMGATE_SOURCE_ROOT;
}

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

class McpAuth : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new TestKey(TestKey::rsa("rsa-2026"));
    ec_ = new TestKey(TestKey::ec("ec-2026"));
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
  }

  void SetUp() override {
    dir_ = temp_dir("memgate-mcp-auth");
    jwks_ = dir_ + "/jwks.json";
    std::ofstream(jwks_) << mcp::testing::jwks_json({rsa_, ec_});
  }
  void TearDown() override { remove_tree(dir_); }

  ServerProcess::Env env(ServerProcess::Env extra = {}) const {
    ServerProcess::Env e{{"ENABLE_KB_SERVICE", "true"},
                         {"KB_CORPUS_DIR", source_dir() + "/memgate/kb/testdata/corpus"},
                         {"STAGE_DELAY", "0s"},
                         {"COORD_LOCAL_DIR", dir_},
                         {"MCP_AUTH_JWKS", jwks_},
                         {"MCP_AUTH_ISSUER", kIssuer},
                         {"MCP_AUTH_AUDIENCE", kAudience},
                         {"MCP_AUTH_SCOPES", "mcp.use"},
                         {"MCP_AUTH_TOOL_SCOPES", "get_document=kb.read"}};
    for (auto& x : extra) e.push_back(x);
    return e;
  }
  std::unique_ptr<ServerProcess> start(ServerProcess::Env extra = {}) {
    auto s = ServerProcess::start(env(std::move(extra)));
    EXPECT_NE(s, nullptr);
    if (s) {
      EXPECT_TRUE(wait_for_status(s->port(), "/readyz", 200, 20s)) << s->log();
    }
    return s;
  }

  static std::string token(const TestKey& key, json::object changes = {}) {
    json::object c{{"iss", kIssuer},     {"aud", kAudience}, {"sub", "test-user"},
                   {"exp", now() + 600}, {"iat", now()},     {"scope", "mcp.use kb.read"}};
    for (auto& [k, v] : changes) c[k] = v;
    return key.sign(key.header(), c);
  }

  std::string dir_, jwks_;
  static TestKey* rsa_;
  static TestKey* ec_;
};
TestKey* McpAuth::rsa_ = nullptr;
TestKey* McpAuth::ec_ = nullptr;

const std::string kPing = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";

HttpReply post(uint16_t port, const std::string& body, const std::string& token, const std::string& target = "/mcp") {
  std::map<std::string, std::string> h{{"Content-Type", "application/json"},
                                       {"Accept", "application/json, text/event-stream"}};
  if (!token.empty()) h["Authorization"] = "Bearer " + token;
  return http_request(port, "POST", target, body, h);
}

std::string call(const char* tool, const char* args) {
  return std::string(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":")") + tool +
         R"(","arguments":)" + args + "}}";
}

TEST_F(McpAuth, TheProtectedResourceMetadataIsServedAtBothWellKnownPaths) {
  auto server = start();
  ASSERT_NE(server, nullptr);
  for (const char* path : {"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"}) {
    SCOPED_TRACE(path);
    HttpReply r = http_get(server->port(), path);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("content-type"), "application/json");
    json::value doc = json::parse(r.body);
    EXPECT_EQ(doc.at("resource"), kAudience) << "MCP_AUTH_RESOURCE defaults to the audience";
    EXPECT_EQ(doc.at("authorization_servers"), (json::array{kIssuer}));
    EXPECT_EQ(doc.at("scopes_supported"), (json::array{"kb.read", "mcp.use"}));
    EXPECT_EQ(doc.at("bearer_methods_supported"), (json::array{"header"}));
  }
}

TEST_F(McpAuth, MissingBadExpiredOrForeignTokensAre401AndAMissingScopeIs403) {
  auto server = start();
  ASSERT_NE(server, nullptr);
  uint16_t port = server->port();
  const std::string metadata =
      "resource_metadata=\"https://mcp.example/"
      ".well-known/oauth-protected-resource/mcp\"";

  HttpReply none = post(port, kPing, "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.header("www-authenticate"), "Bearer " + metadata + ", scope=\"mcp.use\"");

  std::string good = token(*rsa_);
  struct Bad {
    const char* what;
    std::string token;
    const char* description;
  };
  std::string tampered = good.substr(0, good.rfind('.')) + "." + token(*ec_).substr(token(*ec_).rfind('.') + 1);
  json::object none_header{{"alg", "none"}, {"kid", "rsa-2026"}};
  std::vector<Bad> bad = {
      {"expired", token(*ec_, {{"exp", now() - 3600}}), "the token has expired"},
      {"not yet valid", token(*ec_, {{"nbf", now() + 3600}}), "the token is not valid yet (nbf)"},
      {"another audience", token(*rsa_, {{"aud", "https://other.example/mcp"}}),
       "the token is not for this resource (aud)"},
      {"another issuer", token(*rsa_, {{"iss", "https://evil.example"}}),
       "the token's issuer is not the one configured"},
      {"badly signed", tampered, "the token's signature does not verify"},
      {"alg none", mcp::testing::signing_input(none_header, {{"iss", kIssuer}}) + ".AA",
       "the token's alg is not RS256 or ES256"},
      {"not a JWT", "opaque-token-123", "the token is not a compact JWT (three parts)"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.what);
    HttpReply r = post(port, kPing, b.token);
    EXPECT_EQ(r.status, 401) << r.body;
    std::string challenge = r.header("www-authenticate");
    EXPECT_EQ(challenge.rfind("Bearer " + metadata + ", error=\"invalid_token\"", 0), 0u) << challenge;
    EXPECT_NE(challenge.find(std::string("error_description=\"") + b.description + "\""), std::string::npos)
        << challenge;
    EXPECT_EQ(r.body.find(b.token.substr(0, 12)), std::string::npos) << "token text in the body: " << r.body;
  }

  // A token in the query string is never read.
  HttpReply query = post(port, kPing, "", "/mcp?access_token=" + good);
  EXPECT_EQ(query.status, 401);

  // A good token without the endpoint's scope: 403.
  HttpReply no_scope = post(port, kPing, token(*ec_, {{"scope", "kb.read"}}));
  EXPECT_EQ(no_scope.status, 403);
  EXPECT_NE(no_scope.header("www-authenticate").find("error=\"insufficient_scope\", scope=\"mcp.use\""),
            std::string::npos)
      << no_scope.header("www-authenticate");

  // Good tokens, RS256 and ES256.
  EXPECT_EQ(post(port, kPing, good).status, 200);
  EXPECT_EQ(post(port, kPing, token(*ec_)).status, 200);

  // A tool with a scope of its own: 403 without it, the answer with it.
  std::string search_only = token(*ec_, {{"scope", "mcp.use"}});
  HttpReply search = post(port, call("search_knowledge_base", R"({"query":"fencing token"})"), search_only);
  EXPECT_EQ(search.status, 200) << search.body;
  EXPECT_NE(search.body.find("redis-locks.md"), std::string::npos) << search.body;
  HttpReply denied = post(port, call("get_document", R"({"id":"0"})"), search_only);
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_NE(denied.header("www-authenticate").find("error=\"insufficient_scope\", scope=\"mcp.use kb.read\""),
            std::string::npos)
      << denied.header("www-authenticate");
  HttpReply allowed = post(port, call("get_document", R"({"id":"0"})"), token(*ec_));
  EXPECT_EQ(allowed.status, 200) << "the token carries kb.read (the tool answers its own isError)";

  // Each outcome is counted on /metrics: two without credentials (one with its
  // token in the query string), seven bad tokens, one without the endpoint's
  // scope, five accepted (one of them then refused for get_document's scope).
  HttpReply scrape = http_get(server->admin_port(), "/metrics");
  ASSERT_EQ(scrape.status, 200);
  for (const char* line : {"memgate_mcp_auth_requests_total{outcome=\"missing\"} 2",
                           "memgate_mcp_auth_requests_total{outcome=\"invalid\"} 7",
                           "memgate_mcp_auth_requests_total{outcome=\"insufficient_scope\"} 1",
                           "memgate_mcp_auth_requests_total{outcome=\"accepted\"} 5",
                           "memgate_mcp_auth_tool_refusals_total 1"})
    EXPECT_NE(scrape.body.find(line), std::string::npos) << line;

  // No token text ever reaches the server's log.
  std::string log = server->log();
  for (const std::string& t : {good, tampered, search_only}) {
    std::string signature = t.substr(t.rfind('.') + 1);
    EXPECT_EQ(log.find(signature.substr(0, 24)), std::string::npos) << "a token's signature in the log";
  }
}

TEST_F(McpAuth, TheOfficialClientCallsWithABearerTokenInItsRequestHeaders) {
  std::string client = source_dir() + "/tests/integration/mcp_client";
  if (!fs::exists(client + "/node_modules/@modelcontextprotocol/sdk/package.json"))
    GTEST_SKIP() << "the SDK is installed by memgate_mcp_integration_test (npm ci in " << client << ")";
  auto server = start();
  ASSERT_NE(server, nullptr);
  std::string url = "http://127.0.0.1:" + std::to_string(server->port()) + "/mcp";
  auto run = [&](const std::string& t) -> std::pair<int, std::string> {
    std::string dir = temp_dir("memgate-mcp-auth-client");
    std::vector<std::string> argv{"node", client + "/client.mjs", url};
    if (!t.empty()) argv.push_back(t);
    auto p = Subprocess::start(argv, {}, dir + "/out.log");
    if (!p.ok()) return {-1, p.status().to_string()};
    int code = (*p)->wait_for(60s).value_or(-1);
    std::string out = read_file(dir + "/out.log");
    remove_tree(dir);
    return {code, out};
  };
  // With a token carrying every scope, the whole script passes: connect, list,
  // both tools (structuredContent validated), the raw stateless requests.
  auto [ok_code, ok_out] = run(token(*ec_));
  EXPECT_EQ(ok_code, 0) << ok_out;
  EXPECT_NE(ok_out.find("\"negotiatedVersion\":\"2025-11-25\""), std::string::npos) << ok_out;
  EXPECT_NE(ok_out.find("Distributed Locks with Redis"), std::string::npos) << ok_out;
  // Without a token the client cannot connect; with one lacking kb.read it
  // fails at get_document, on the 403.
  auto [none_code, none_out] = run("");
  EXPECT_NE(none_code, 0);
  EXPECT_NE(none_out.find("401"), std::string::npos) << none_out;
  auto [scope_code, scope_out] = run(token(*rsa_, {{"scope", "mcp.use"}}));
  EXPECT_NE(scope_code, 0);
  EXPECT_NE(scope_out.find("403"), std::string::npos) << scope_out;
}

TEST_F(McpAuth, ABadKeySetOrAMissingSettingStopsStartUpNamingIt) {
  std::string bad = dir_ + "/bad.json";
  std::ofstream(bad) << R"({"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]})";
  std::ofstream(dir_ + "/empty.json") << "";
  struct Case {
    ServerProcess::Env env;
    std::string expect;
  };
  ServerProcess::Env base{{"ENABLE_KB_SERVICE", "true"},
                          {"KB_CORPUS_DIR", source_dir() + "/memgate/kb/testdata/corpus"},
                          {"COORD_LOCAL_DIR", dir_}};
  std::vector<Case> cases = {
      {{{"MCP_AUTH_JWKS", bad}, {"MCP_AUTH_ISSUER", kIssuer}, {"MCP_AUTH_AUDIENCE", kAudience}},
       "MCP_AUTH_JWKS='" + bad + "' is not valid: expected a JWKS file"},
      {{{"MCP_AUTH_JWKS", dir_ + "/empty.json"}, {"MCP_AUTH_ISSUER", kIssuer}, {"MCP_AUTH_AUDIENCE", kAudience}},
       "MCP_AUTH_JWKS='"},
      {{{"MCP_AUTH_JWKS", dir_ + "/absent.json"}, {"MCP_AUTH_ISSUER", kIssuer}, {"MCP_AUTH_AUDIENCE", kAudience}},
       "MCP_AUTH_JWKS='"},
      {{{"MCP_AUTH_JWKS", jwks_}, {"MCP_AUTH_AUDIENCE", kAudience}}, "MCP_AUTH_ISSUER is not"},
      {{{"MCP_AUTH_JWKS", jwks_}, {"MCP_AUTH_ISSUER", kIssuer}}, "MCP_AUTH_AUDIENCE is not"},
      {{{"MCP_AUTH_JWKS", jwks_}, {"MCP_AUTH_ISSUER", kIssuer}, {"MCP_AUTH_AUDIENCE", "urn:memgate"}},
       "MCP_AUTH_RESOURCE is unset"},
      {{{"MCP_AUTH_JWKS", jwks_},
        {"MCP_AUTH_ISSUER", kIssuer},
        {"MCP_AUTH_AUDIENCE", kAudience},
        {"MCP_AUTH_TOKEN", "static-tok"}},
       "MCP_AUTH_TOKEN and MCP_AUTH_JWKS are exclusive"},
      {{{"MCP_AUTH_JWKS", jwks_},
        {"MCP_AUTH_ISSUER", kIssuer},
        {"MCP_AUTH_AUDIENCE", kAudience},
        {"MCP_AUTH_TOOL_SCOPES", "get_documents=kb.read"}},
       "MCP_AUTH_TOOL_SCOPES names get_documents"},
      {{{"MCP_AUTH_ISSUER", kIssuer}}, "take effect only with MCP_AUTH_JWKS"},
      {{{"MCP_AUTH_JWKS", jwks_}, {"MCP_AUTH_ISSUER", "auth.example"}, {"MCP_AUTH_AUDIENCE", kAudience}},
       "MCP_AUTH_ISSUER='auth.example' is not valid"},
      {{{"MCP_AUTH_CLOCK_SKEW", "1h"}}, "MCP_AUTH_CLOCK_SKEW='1h' is not valid"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expect);
    ServerProcess::Env env = base;
    for (auto& e : c.env) env.push_back(e);
    RunResult r = run_memgate(env, {});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("static-tok"), std::string::npos) << "a secret in the output";
  }
}

}  // namespace
}  // namespace memgate::testing
