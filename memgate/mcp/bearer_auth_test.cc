// BearerAuth on its own (challenges, scopes, the metadata document, the
// settings' text forms) and inside McpServer::handle, on a fake clock.
#include "memgate/mcp/bearer_auth.h"

#include <gtest/gtest.h>
#include <prometheus/metric_family.h>

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <map>

#include "memgate/mcp/bearer_metrics.h"
#include "memgate/mcp/jwt_testing.h"
#include "memgate/mcp/server.h"

namespace memgate::mcp {
namespace {

namespace json = boost::json;
using std::chrono::seconds;
using testing::TestKey;

constexpr const char* kIssuer = "https://auth.example";
constexpr const char* kResource = "https://mcp.example/mcp";

const TestKey& key() {
  static const TestKey k = TestKey::ec("ec-1");
  return k;
}

class BearerAuthTest : public ::testing::Test {
 protected:
  BearerOptions options(std::vector<std::string> required = {}, ToolScopes tools = {}) {
    BearerOptions o;
    auto keys = Jwks::parse(testing::jwks_json({&key()}));
    EXPECT_TRUE(keys.ok()) << keys.status().to_string();
    o.keys = *keys;
    o.issuer = kIssuer;
    o.audience = kResource;
    o.resource = kResource;
    o.required_scopes = std::move(required);
    o.tool_scopes = std::move(tools);
    o.leeway = seconds(30);
    return o;
  }
  int64_t now() const { return clock_.unix_millis() / 1000; }
  std::string token(const std::string& scope, int64_t lifetime = 300) const {
    return key().sign(
        key().header(),
        json::object{
            {"iss", kIssuer}, {"aud", kResource}, {"sub", "alice"}, {"exp", now() + lifetime}, {"scope", scope}});
  }

  FakeClock clock_;
};

TEST_F(BearerAuthTest, NoCredentialsGetTheBareChallengePointingAtTheMetadata) {
  BearerAuth auth(options(), clock_);
  for (std::string_view header : {"", "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearerx abc"}) {
    AuthVerdict v = auth.authenticate(header);
    EXPECT_EQ(v.status, 401) << header;
    EXPECT_EQ(v.www_authenticate,
              "Bearer "
              "resource_metadata=\"https://mcp.example/"
              ".well-known/oauth-protected-resource/mcp\"")
        << header;
  }
}

TEST_F(BearerAuthTest, ABadTokenIsInvalidTokenWithAFixedDescription) {
  BearerAuth auth(options(), clock_);
  std::string good = token("kb.read");
  std::string forged = good.substr(0, good.rfind('.')) + ".AAAA";
  for (const std::string& header : {"Bearer " + forged, "Bearer " + good + " extra", std::string("Bearer \x01zz")}) {
    AuthVerdict v = auth.authenticate(header);
    EXPECT_EQ(v.status, 401);
    EXPECT_NE(v.www_authenticate.find("error=\"invalid_token\""), std::string::npos) << v.www_authenticate;
    EXPECT_NE(v.www_authenticate.find("resource_metadata=\""), std::string::npos);
    EXPECT_EQ(v.www_authenticate.find(good.substr(0, 20)), std::string::npos) << "no token bytes echoed";
    EXPECT_EQ(v.message.find(good.substr(0, 20)), std::string::npos);
  }
  EXPECT_NE(auth.authenticate("Bearer " + forged)
                .www_authenticate.find("error_description=\"the token's signature does not verify\""),
            std::string::npos);
}

TEST_F(BearerAuthTest, TheSchemeIsCaseInsensitiveAndAGoodTokenYieldsItsClaims) {
  BearerAuth auth(options(), clock_);
  for (const char* scheme : {"Bearer ", "bearer ", "BEARER   "}) {
    AuthVerdict v = auth.authenticate(scheme + token("kb.read"));
    ASSERT_TRUE(v.allowed()) << scheme << v.message;
    EXPECT_EQ(v.claims.subject, "alice");
  }
}

TEST_F(BearerAuthTest, ATokenExpiresOnTheClockPastTheLeeway) {
  BearerAuth auth(options(), clock_);
  std::string t = token("kb.read", 60);
  EXPECT_TRUE(auth.authenticate("Bearer " + t).allowed());
  ASSERT_EQ(auth.cached_tokens(), 1u) << "so what follows checks a remembered token's exp";
  clock_.advance(seconds(60 + 29));
  EXPECT_TRUE(auth.authenticate("Bearer " + t).allowed()) << "within the 30 s leeway";
  clock_.advance(seconds(1));
  AuthVerdict v = auth.authenticate("Bearer " + t);
  EXPECT_EQ(v.status, 401);
  EXPECT_EQ(v.message, "the token has expired");
}

TEST_F(BearerAuthTest, AVerifiedTokenIsRememberedWithinABoundAndAForgeryNever) {
  BearerAuth auth(options(), clock_);
  std::string t = token("kb.read");
  ASSERT_TRUE(auth.authenticate("Bearer " + t).allowed());
  EXPECT_EQ(auth.cached_tokens(), 1u);
  ASSERT_TRUE(auth.authenticate("Bearer " + t).allowed()) << "from the cache";
  EXPECT_EQ(auth.cached_tokens(), 1u);
  // A token differing in one byte of its signature is checked, and refused.
  std::string forged = t;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(auth.authenticate("Bearer " + forged).status, 401);
  EXPECT_EQ(auth.cached_tokens(), 1u) << "refusals are not kept";
  // Many distinct tokens: the cache stays within its bound.
  for (size_t i = 0; i < kVerifiedCacheSize + 10; ++i)
    ASSERT_TRUE(auth.authenticate("Bearer " + token("kb.read n" + std::to_string(i))).allowed());
  EXPECT_LE(auth.cached_tokens(), kVerifiedCacheSize);
  EXPECT_TRUE(auth.authenticate("Bearer " + t).allowed()) << "still good after the cache was cleared";
}

TEST_F(BearerAuthTest, ARotatedKeySetIsTakenAtTheNextRecheckAndABadOneKeepsTheKeysInUse) {
  const std::string path = ::testing::TempDir() + "/memgate-bearer-rotation.json";
  const TestKey next = TestKey::ec("ec-2");
  std::ofstream(path, std::ios::trunc) << testing::jwks_json({&key()});
  BearerOptions o = options();
  o.keys = *Jwks::load_file(path);
  o.jwks_path = path;
  o.jwks_recheck = seconds(30);
  BearerAuth auth(o, clock_);
  auto mint = [this](const TestKey& k) {
    return k.sign(k.header(), json::object{{"iss", kIssuer}, {"aud", kResource}, {"exp", now() + 3600}});
  };
  const std::string old_token = "Bearer " + mint(key());
  EXPECT_TRUE(auth.authenticate(old_token).allowed());
  EXPECT_EQ(auth.authenticate("Bearer " + mint(next)).message, "no key of the set has the token's kid");

  // The authorization server publishes its next key: seen at the next recheck, not before.
  std::ofstream(path, std::ios::trunc) << testing::jwks_json({&key(), &next});
  clock_.advance(seconds(29));
  EXPECT_EQ(auth.authenticate("Bearer " + mint(next)).status, 401) << "not due yet";
  clock_.advance(seconds(1));
  EXPECT_TRUE(auth.authenticate("Bearer " + mint(next)).allowed());
  EXPECT_EQ(auth.keys()->size(), 2u);

  // A broken file keeps the keys in use.
  std::ofstream(path, std::ios::trunc) << "{\"keys\": [";
  clock_.advance(seconds(30));
  EXPECT_TRUE(auth.authenticate(old_token).allowed());
  EXPECT_EQ(auth.keys()->size(), 2u);

  // The old key withdrawn: its token, remembered before, is refused from then on.
  std::ofstream(path, std::ios::trunc) << testing::jwks_json({&next});
  clock_.advance(seconds(30));
  EXPECT_EQ(auth.authenticate(old_token).message, "no key of the set has the token's kid");
  EXPECT_TRUE(auth.authenticate("Bearer " + mint(next)).allowed());
  std::remove(path.c_str());
}

TEST_F(BearerAuthTest, TheLeewayIsBoundedToFiveMinutes) {
  BearerOptions o = options();
  o.leeway = seconds(86400);
  BearerAuth auth(o, clock_);
  EXPECT_EQ(auth.options().leeway, kMaxClockSkew);
}

TEST_F(BearerAuthTest, AMissingEndpointScopeIsA403NamingTheScopes) {
  BearerAuth auth(options({"mcp.use"}), clock_);
  AuthVerdict v = auth.authenticate("Bearer " + token("kb.read"));
  EXPECT_EQ(v.status, 403);
  EXPECT_NE(v.www_authenticate.find("error=\"insufficient_scope\", scope=\"mcp.use\""), std::string::npos)
      << v.www_authenticate;
  EXPECT_TRUE(auth.authenticate("Bearer " + token("kb.read mcp.use")).allowed());
  // The bare challenge says which scopes to ask for.
  EXPECT_NE(auth.authenticate("").www_authenticate.find("scope=\"mcp.use\""), std::string::npos);
}

TEST_F(BearerAuthTest, AToolsOwnScopesAreCheckedAndTheChallengeNamesAllTheRequestNeeds) {
  BearerAuth auth(options({"mcp.use"}, {{"get_document", {"kb.read", "kb.docs"}}}), clock_);
  AuthVerdict v = auth.authenticate("Bearer " + token("mcp.use kb.read"));
  ASSERT_TRUE(v.allowed());
  EXPECT_TRUE(auth.authorize_tool(v.claims, "search_knowledge_base").allowed()) << "no scopes of its own";
  AuthVerdict denied = auth.authorize_tool(v.claims, "get_document");
  EXPECT_EQ(denied.status, 403);
  EXPECT_NE(denied.www_authenticate.find("scope=\"mcp.use kb.read kb.docs\""), std::string::npos)
      << denied.www_authenticate;
  AuthVerdict all = auth.authenticate("Bearer " + token("mcp.use kb.read kb.docs"));
  EXPECT_TRUE(auth.authorize_tool(all.claims, "get_document").allowed());
}

TEST_F(BearerAuthTest, TheMetadataDocumentNamesResourceServerScopesAndTheHeaderMethod) {
  BearerAuth auth(options({"mcp.use"}, {{"get_document", {"kb.read"}}}), clock_);
  json::value doc = json::parse(auth.metadata_json());
  EXPECT_EQ(doc.at("resource"), kResource);
  EXPECT_EQ(doc.at("authorization_servers"), (json::array{kIssuer}));
  EXPECT_EQ(doc.at("scopes_supported"), (json::array{"kb.read", "mcp.use"}));
  EXPECT_EQ(doc.at("bearer_methods_supported"), (json::array{"header"}));
}

TEST_F(BearerAuthTest, EachOutcomeIsCountedAndTheCollectorReportsTheCounts) {
  auto auth = std::make_shared<BearerAuth>(options({"mcp.use"}, {{"get_document", {"kb.read"}}}), clock_);
  (void)auth->authenticate("");
  (void)auth->authenticate("Basic x");
  (void)auth->authenticate("Bearer not-a-jwt");
  (void)auth->authenticate("Bearer " + token("kb.read"));  // without mcp.use
  AuthVerdict ok = auth->authenticate("Bearer " + token("mcp.use"));
  (void)auth->authorize_tool(ok.claims, "get_document");
  (void)auth->authorize_tool(ok.claims, "search_knowledge_base");
  BearerAuth::Counts c = auth->counts();
  EXPECT_EQ(c.missing, 2u);
  EXPECT_EQ(c.invalid, 1u);
  EXPECT_EQ(c.insufficient_scope, 1u);
  EXPECT_EQ(c.accepted, 1u);
  EXPECT_EQ(c.tool_refused, 1u);

  BearerCollector collector(auth);
  std::map<std::string, double> seen;
  for (const prometheus::MetricFamily& f : collector.Collect())
    for (const prometheus::ClientMetric& m : f.metric) {
      std::string key = f.name;
      for (const auto& l : m.label) key += "{" + l.value + "}";
      seen[key] = m.counter.value;
    }
  EXPECT_EQ(seen["memgate_mcp_auth_requests_total{missing}"], 2);
  EXPECT_EQ(seen["memgate_mcp_auth_requests_total{invalid}"], 1);
  EXPECT_EQ(seen["memgate_mcp_auth_requests_total{insufficient_scope}"], 1);
  EXPECT_EQ(seen["memgate_mcp_auth_requests_total{accepted}"], 1);
  EXPECT_EQ(seen["memgate_mcp_auth_tool_refusals_total"], 1);
}

TEST(ResourceMetadataUrl, TheWellKnownPathGoesBetweenHostAndPath) {
  EXPECT_EQ(metadata_url_for("https://mcp.example/mcp"),
            "https://mcp.example/.well-known/oauth-protected-resource/mcp");
  EXPECT_EQ(metadata_url_for("https://mcp.example:8443/a/b"),
            "https://mcp.example:8443/.well-known/oauth-protected-resource/a/b");
  EXPECT_EQ(metadata_url_for("https://mcp.example/"), "https://mcp.example/.well-known/oauth-protected-resource");
  EXPECT_EQ(metadata_url_for("http://127.0.0.1:9000"), "http://127.0.0.1:9000/.well-known/oauth-protected-resource");
}

TEST(BearerSettings, UrlsScopesAndToolScopesAreCheckedAsText) {
  EXPECT_TRUE(check_url("https://auth.example/realms/x").ok());
  EXPECT_TRUE(check_url("http://127.0.0.1:8080/mcp").ok());
  for (const char* bad :
       {"", "auth.example", "ftp://auth.example", "https://", "https://u:p@auth.example", "https://auth.example/?q=1",
        "https://auth.example/#f", "https://auth example", "https://auth.example/\"x"})
    EXPECT_FALSE(check_url(bad).ok()) << bad;
  EXPECT_FALSE(check_url(std::string(2100, 'a').insert(0, "https://")).ok());

  auto scopes = parse_scope_list("mcp.use, kb:read  kb:read");
  ASSERT_TRUE(scopes.ok());
  EXPECT_EQ(*scopes, (std::vector<std::string>{"mcp.use", "kb:read"})) << "once each";
  EXPECT_FALSE(parse_scope_list("a=b").ok());
  EXPECT_FALSE(parse_scope_list("a\"b").ok());

  auto tools = parse_tool_scopes("search_knowledge_base=kb.search, get_document=kb.read kb.docs");
  ASSERT_TRUE(tools.ok()) << tools.status().to_string();
  EXPECT_EQ(tools->at("get_document"), (std::vector<std::string>{"kb.read", "kb.docs"}));
  EXPECT_EQ(tools->at("search_knowledge_base"), (std::vector<std::string>{"kb.search"}));
  for (const char* bad : {"get_document", "=kb.read", "get_document=", "a=x,a=y", "bad tool=x"})
    EXPECT_FALSE(parse_tool_scopes(bad).ok()) << bad;
  EXPECT_TRUE(parse_tool_scopes("").ok());
}

// ---- Inside the MCP endpoint ----

class McpBearerTest : public BearerAuthTest {
 protected:
  McpBearerTest() {
    ServerOptions o;
    o.bearer = std::make_shared<BearerAuth>(options({}, {{"secret_tool", {"kb.secret"}}}), clock_);
    server_ = std::make_unique<McpServer>(o);
    for (const char* name : {"open_tool", "secret_tool"}) {
      Tool t;
      t.name = name;
      t.description = name;
      t.input_schema = json::object{{"type", "object"}};
      t.run = [name](const json::object&) { return ToolResult{std::string("ran ") + name, std::nullopt, false}; };
      server_->add_tool(std::move(t));
    }
  }
  HttpReply post(const std::string& body, const std::string& authorization) {
    HttpExchange ex;
    ex.method = "POST";
    ex.body = body;
    ex.header = [&authorization](std::string_view name) -> std::string_view {
      return name == "Authorization" ? std::string_view(authorization) : std::string_view();
    };
    return server_->handle(ex);
  }
  static std::string header(const HttpReply& r, std::string_view name) {
    for (const auto& [k, v] : r.headers)
      if (k == name) return v;
    return "";
  }
  static std::string call(const char* tool) {
    return std::string(R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":")") + tool +
           R"(","arguments":{}}})";
  }

  std::unique_ptr<McpServer> server_;
};

TEST_F(McpBearerTest, EveryRequestNeedsAVerifiedTokenAndTheRefusalCarriesTheChallenge) {
  const std::string ping = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  HttpReply none = post(ping, "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(header(none, "WWW-Authenticate").rfind("Bearer resource_metadata=\"", 0), 0u);
  std::string t = token("");
  std::string tampered = t.substr(0, t.rfind('.')) + ".AAAA";
  HttpReply bad = post(ping, "Bearer " + tampered);
  EXPECT_EQ(bad.status, 401);
  EXPECT_NE(header(bad, "WWW-Authenticate").find("invalid_token"), std::string::npos);
  EXPECT_EQ(bad.body.find(t.substr(0, 16)), std::string::npos) << "no token bytes in the body: " << bad.body;
  EXPECT_EQ(post(ping, "Bearer " + t).status, 200);
}

TEST_F(McpBearerTest, AToolWhoseScopeTheTokenLacksIsA403AndTheOthersRun) {
  std::string t = token("kb.read");
  HttpReply open = post(call("open_tool"), "Bearer " + t);
  EXPECT_EQ(open.status, 200);
  EXPECT_NE(open.body.find("ran open_tool"), std::string::npos) << open.body;
  HttpReply secret = post(call("secret_tool"), "Bearer " + t);
  EXPECT_EQ(secret.status, 403);
  EXPECT_EQ(header(secret, "WWW-Authenticate"),
            "Bearer "
            "resource_metadata=\"https://mcp.example/.well-known/"
            "oauth-protected-resource/mcp\", "
            "error=\"insufficient_scope\", scope=\"kb.secret\", "
            "error_description=\"the token lacks a scope this tool "
            "needs\"");
  EXPECT_EQ(secret.body.find("ran secret_tool"), std::string::npos);
  json::value reply = json::parse(secret.body);
  EXPECT_EQ(reply.at("id"), 7) << "the JSON-RPC error answers the call";
  HttpReply granted = post(call("secret_tool"), "Bearer " + token("kb.read kb.secret"));
  EXPECT_EQ(granted.status, 200);
  EXPECT_NE(granted.body.find("ran secret_tool"), std::string::npos);
}

TEST_F(McpBearerTest, ATokenThatExpiresWhileAClientHoldsItIsRefusedFromThen) {
  std::string t = token("", 120);
  const std::string list = R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})";
  EXPECT_EQ(post(list, "Bearer " + t).status, 200);
  clock_.advance(seconds(120 + 30));
  HttpReply late = post(list, "Bearer " + t);
  EXPECT_EQ(late.status, 401);
  EXPECT_NE(header(late, "WWW-Authenticate").find("error_description=\"the token has expired\""), std::string::npos);
}

}  // namespace
}  // namespace memgate::mcp
