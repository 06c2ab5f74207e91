// What the OAuth check adds to one /mcp request: McpServer::handle of a ping
// with no credentials configured (the reference), with the static token, and
// with a BearerAuth holding an RS256 (RSA-2048) or an ES256 (P-256) token (the
// same token every iteration, as a client sends it, so after the first it is
// a cache hit); and verify_jwt alone for each algorithm, which is what a token
// the cache has not seen costs. Keys and tokens are made once per
// benchmark (jwt_testing.h), so only the request path is timed.
#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#include <ctime>

#include "memgate/mcp/bearer_auth.h"
#include "memgate/mcp/jwt.h"
#include "memgate/mcp/jwt_testing.h"
#include "memgate/mcp/server.h"

namespace memgate::mcp {
namespace {

namespace json = boost::json;

constexpr const char* kIssuer = "https://auth.example";
constexpr const char* kAudience = "https://mcp.example/mcp";
const std::string kPing = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string mint(const testing::TestKey& key) {
  return key.sign(key.header(), json::object{{"iss", kIssuer},
                                             {"aud", kAudience},
                                             {"sub", "bench"},
                                             {"exp", now() + 3600},
                                             {"iat", now()},
                                             {"scope", "mcp.use kb.read"}});
}

std::shared_ptr<const BearerAuth> bearer(const testing::TestKey& key) {
  BearerOptions o;
  o.keys = *Jwks::parse(testing::jwks_json({&key}));
  o.issuer = kIssuer;
  o.audience = kAudience;
  o.resource = kAudience;
  o.required_scopes = {"mcp.use"};
  return std::make_shared<BearerAuth>(o);
}

void run_ping(benchmark::State& state, ServerOptions options, const std::string& authorization) {
  McpServer server(std::move(options));
  HttpExchange ex;
  ex.method = "POST";
  ex.body = kPing;
  ex.header = [&authorization](std::string_view name) -> std::string_view {
    if (name == "Authorization") return authorization;
    if (name == "Content-Type") return "application/json";
    return {};
  };
  if (server.handle(ex).status != 200) state.SkipWithError("the ping was not answered 200");
  for (auto _ : state) benchmark::DoNotOptimize(server.handle(ex));
}

void BM_PingOpen(benchmark::State& state) { run_ping(state, {}, ""); }
BENCHMARK(BM_PingOpen);

void BM_PingStaticToken(benchmark::State& state) {
  ServerOptions o;
  o.auth_token = "a-static-token-of-some-length-0123456789";
  run_ping(state, o, "Bearer " + o.auth_token);
}
BENCHMARK(BM_PingStaticToken);

void BM_PingBearerRs256(benchmark::State& state) {
  testing::TestKey key = testing::TestKey::rsa("rsa-1");
  ServerOptions o;
  o.bearer = bearer(key);
  run_ping(state, o, "Bearer " + mint(key));
}
BENCHMARK(BM_PingBearerRs256);

void BM_PingBearerEs256(benchmark::State& state) {
  testing::TestKey key = testing::TestKey::ec("ec-1");
  ServerOptions o;
  o.bearer = bearer(key);
  run_ping(state, o, "Bearer " + mint(key));
}
BENCHMARK(BM_PingBearerEs256);

void run_verify(benchmark::State& state, const testing::TestKey& key) {
  auto keys = *Jwks::parse(testing::jwks_json({&key}));
  std::string token = mint(key);
  VerifyOptions o{kIssuer, kAudience, std::chrono::seconds(60)};
  if (!verify_jwt(token, *keys, o, now()).ok()) state.SkipWithError("the token did not verify");
  for (auto _ : state) benchmark::DoNotOptimize(verify_jwt(token, *keys, o, now()));
}

void BM_VerifyRs256(benchmark::State& state) { run_verify(state, testing::TestKey::rsa("rsa-1")); }
BENCHMARK(BM_VerifyRs256);
void BM_VerifyEs256(benchmark::State& state) { run_verify(state, testing::TestKey::ec("ec-1")); }
BENCHMARK(BM_VerifyEs256);

}  // namespace
}  // namespace memgate::mcp

BENCHMARK_MAIN();
