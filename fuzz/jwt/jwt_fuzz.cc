// libFuzzer target: access tokens and key sets (memgate/mcp/jwt.h,
// bearer_auth.h). The first byte picks what the rest is:
//   0: a compact token, verified against a set of one RSA and one EC key;
//   1: a JWKS document;
//   2: a token's payload, signed here with the EC key, so the claims reader
//      runs past the signature on every input;
//   3: an Authorization header value, through BearerAuth.
// Whatever the bytes: no crash, no throw; a token accepted in mode 2 really
// has our issuer and audience and an exp still ahead (with the leeway); a
// refusal's text and challenge never carry the input (never_echoes).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "memgate/base/clock.h"
#include "memgate/mcp/bearer_auth.h"
#include "memgate/mcp/jwt.h"
#include "memgate/mcp/jwt_testing.h"

namespace {

namespace json = boost::json;
using namespace memgate::mcp;

constexpr int64_t kNow = 1'700'000'100;  // FakeClock's wall time, a little after its start
constexpr const char* kIssuer = "https://auth.example";
constexpr const char* kAudience = "https://mcp.example/mcp";

struct World {
  testing::TestKey rsa = testing::TestKey::rsa("rsa-1");
  testing::TestKey ec = testing::TestKey::ec("ec-1");
  std::shared_ptr<const Jwks> keys;
  memgate::FakeClock clock;
  std::unique_ptr<BearerAuth> auth;
  World() {
    keys = *Jwks::parse(testing::jwks_json({&rsa, &ec}));
    BearerOptions o;
    o.keys = keys;
    o.issuer = kIssuer;
    o.audience = kAudience;
    o.resource = kAudience;
    o.required_scopes = {"mcp.use"};
    auth = std::make_unique<BearerAuth>(o, clock);
  }
};

World& world() {
  static World* w = new World();
  return *w;
}

// Our texts (phrases, challenges, the metadata URL) are printable ASCII
// without '~'; an input holding '~' or any other byte cannot be a piece of
// them, so finding it in a text means the text echoed the input.
void never_echoes(std::string_view text, std::string_view input) {
  bool marked = false;
  for (char c : input)
    marked = marked || c == '~' || static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E;
  if (marked && input.size() >= 4 && text.find(input) != std::string_view::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  World& w = world();
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const VerifyOptions options{kIssuer, kAudience, std::chrono::seconds(60)};
  switch (data[0] % 4) {
    case 0: {
      auto r = verify_jwt(rest, *w.keys, options, kNow);
      if (!r.ok()) never_echoes(r.status().message(), rest);
      break;
    }
    case 1: {
      auto r = Jwks::parse(rest);
      if (r.ok() && ((*r)->size() == 0 || (*r)->size() > kMaxJwksKeys)) std::abort();
      break;
    }
    case 2: {
      std::string input = base64url_encode(json::serialize(w.ec.header())) + "." + base64url_encode(rest);
      std::string token = input + "." + w.ec.signature(input);
      auto r = verify_jwt(token, *w.keys, options, kNow);
      if (!r.ok()) {
        never_echoes(r.status().message(), rest);
        break;
      }
      // Accepted: the payload must say what the checks demand.
      json::value p = json::parse(rest);
      const json::object& o = p.as_object();
      if (o.at("iss") != kIssuer) std::abort();
      if (r->expires_at + 60 <= kNow) std::abort();
      if (r->scopes.size() > kMaxTokenScopes) std::abort();
      break;
    }
    case 3: {
      AuthVerdict v = w.auth->authenticate(rest);
      if (v.status != 0 && v.status != 401 && v.status != 403) std::abort();
      if (v.status != 0) {
        never_echoes(v.www_authenticate, rest);
        never_echoes(v.message, rest);
      }
      break;
    }
  }
  return 0;
}
