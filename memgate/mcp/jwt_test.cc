// verify_jwt and Jwks against tokens minted here, with RSA and EC keys this
// test generates: what a good token yields, and each way a token or a key set
// can be wrong.
#include "memgate/mcp/jwt.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>

#include "memgate/mcp/jwt_testing.h"

namespace memgate::mcp {
namespace {

namespace json = boost::json;
using testing::TestKey;

constexpr int64_t kNow = 1'800'000'000;
constexpr const char* kIssuer = "https://auth.example";
constexpr const char* kAudience = "https://mcp.example/mcp";

// Generated once: RSA generation costs tens of milliseconds.
const TestKey& rsa() {
  static const TestKey k = TestKey::rsa("rsa-1");
  return k;
}
const TestKey& ec() {
  static const TestKey k = TestKey::ec("ec-1");
  return k;
}

json::object claims(json::object extra = {}) {
  json::object c{{"iss", kIssuer},    {"aud", kAudience}, {"sub", "alice"},
                 {"exp", kNow + 600}, {"iat", kNow - 10}, {"scope", "kb.read kb.search"}};
  for (auto& [k, v] : extra) c[k] = v;
  return c;
}

std::shared_ptr<const Jwks> both_keys() {
  auto set = Jwks::parse(testing::jwks_json({&rsa(), &ec()}));
  EXPECT_TRUE(set.ok()) << set.status().to_string();
  return set.ok() ? *set : nullptr;
}

VerifyOptions options() { return {kIssuer, kAudience, std::chrono::seconds(60)}; }

Result<Claims> verify(const std::string& token, int64_t now = kNow) {
  static const std::shared_ptr<const Jwks> keys = both_keys();
  return verify_jwt(token, *keys, options(), now);
}

// The refusal's phrase, checked never to carry a byte of the token.
std::string refusal(const std::string& token, int64_t now = kNow) {
  auto r = verify(token, now);
  EXPECT_FALSE(r.ok()) << "accepted";
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  std::string m = r.status().message();
  size_t dot = token.find('.');
  std::string header_part = token.substr(0, std::min<size_t>(dot, 12));
  if (header_part.size() >= 8) {
    EXPECT_EQ(m.find(header_part), std::string::npos) << "the token leaked into: " << m;
  }
  return m;
}

TEST(Jwt, AGoodRs256TokenVerifiesAndYieldsItsClaims) {
  auto c = verify(rsa().sign(rsa().header(), claims({{"client_id", "app-7"}})));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->subject, "alice");
  EXPECT_EQ(c->client_id, "app-7");
  EXPECT_EQ(c->expires_at, kNow + 600);
  EXPECT_EQ(c->scopes, (std::vector<std::string>{"kb.read", "kb.search"}));
  EXPECT_TRUE(c->has_scope("kb.read"));
  EXPECT_FALSE(c->has_scope("kb"));
}

TEST(Jwt, AGoodEs256TokenVerifiesWithARawRAndSSignature) {
  std::string token = ec().sign(ec().header(), claims());
  std::string sig = *base64url_decode(token.substr(token.rfind('.') + 1), 1024);
  EXPECT_EQ(sig.size(), 64u) << "JWS carries r||s, not DER";
  auto c = verify(token);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->subject, "alice");
}

TEST(Jwt, AnAudienceArrayHoldingOursIsAcceptedAndOneWithoutItIsNot) {
  json::array good{"https://other.example", kAudience};
  EXPECT_TRUE(verify(rsa().sign(rsa().header(), claims({{"aud", good}}))).ok());
  json::array bad{"https://other.example"};
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), claims({{"aud", bad}}))), "the token is not for this resource (aud)");
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), claims({{"aud", "https://mcp.example/other"}}))),
            "the token is not for this resource (aud)");
  json::object no_aud = claims();
  no_aud.erase("aud");
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), no_aud)), "the token is not for this resource (aud)");
}

TEST(Jwt, AnotherIssuerIsRefused) {
  EXPECT_EQ(refusal(ec().sign(ec().header(), claims({{"iss", "https://auth.example/"}}))),
            "the token's issuer is not the one configured");
  json::object no_iss = claims();
  no_iss.erase("iss");
  EXPECT_EQ(refusal(ec().sign(ec().header(), no_iss)), "the token's issuer is not the one configured");
}

TEST(Jwt, ExpiryIsCheckedWithTheLeewayAndExpIsRequired) {
  std::string token = rsa().sign(rsa().header(), claims({{"exp", kNow - 30}}));
  EXPECT_TRUE(verify(token).ok()) << "30 s past exp is within the 60 s leeway";
  EXPECT_EQ(refusal(token, kNow + 30), "the token has expired") << "exactly exp + leeway is too late";
  EXPECT_EQ(refusal(token, kNow + 3600), "the token has expired");
  json::object no_exp = claims();
  no_exp.erase("exp");
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), no_exp)), "the token has no exp");
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), claims({{"exp", "tomorrow"}}))), "the token has no exp");
  // A fractional NumericDate is a number too.
  EXPECT_TRUE(verify(rsa().sign(rsa().header(), claims({{"exp", static_cast<double>(kNow) + 0.5}}))).ok());
}

TEST(Jwt, ATokenNotValidYetIsRefusedBeyondTheLeeway) {
  EXPECT_EQ(refusal(ec().sign(ec().header(), claims({{"nbf", kNow + 120}}))), "the token is not valid yet (nbf)");
  EXPECT_TRUE(verify(ec().sign(ec().header(), claims({{"nbf", kNow + 50}}))).ok()) << "within the leeway";
  EXPECT_EQ(refusal(ec().sign(ec().header(), claims({{"iat", kNow + 3600}}))),
            "the token was issued in the future (iat)");
}

TEST(Jwt, TheKidSelectsTheKeyAndAnUnknownKidIsRefused) {
  json::object h = rsa().header();
  h["kid"] = "rsa-2";
  EXPECT_EQ(refusal(rsa().sign(h, claims())), "no key of the set has the token's kid");
  json::object no_kid = rsa().header();
  no_kid.erase("kid");
  EXPECT_EQ(refusal(rsa().sign(no_kid, claims())), "the token names no kid and the key set holds several keys");
  // With a single key in the set, a token without kid uses it.
  auto one = Jwks::parse(testing::jwks_json({&rsa()}));
  ASSERT_TRUE(one.ok()) << one.status().to_string();
  EXPECT_TRUE(verify_jwt(rsa().sign(no_kid, claims()), **one, options(), kNow).ok());
}

TEST(Jwt, AnotherKeyUnderATrustedKidFailsTheSignature) {
  TestKey impostor = TestKey::ec("ec-1");
  EXPECT_EQ(refusal(impostor.sign(impostor.header(), claims())), "the token's signature does not verify");
}

TEST(Jwt, AlgNoneIsRefusedWithOrWithoutASignature) {
  json::object h{{"alg", "none"}, {"typ", "JWT"}, {"kid", "rsa-1"}};
  std::string input = testing::signing_input(h, claims());
  EXPECT_EQ(refusal(input + "."), "the token has an empty part (an unsigned token is refused)");
  EXPECT_EQ(refusal(input + "." + rsa().signature(input)), "the token's alg is not RS256 or ES256");
  h["alg"] = "None";
  EXPECT_EQ(refusal(input + "." + rsa().signature(testing::signing_input(h, claims()))),
            "the token's alg is not RS256 or ES256");
}

TEST(Jwt, Hs256KeyedWithThePublicKeyIsRefused) {
  // The classic confusion: a verifier that feeds an RSA public key to HMAC.
  json::object h{{"alg", "HS256"}, {"typ", "JWT"}, {"kid", "rsa-1"}};
  EXPECT_EQ(refusal(testing::sign_hs256(rsa().public_der(), h, claims())), "the token's alg is not RS256 or ES256");
  std::string n = std::string(rsa().jwk().at("n").as_string());
  EXPECT_EQ(refusal(testing::sign_hs256(n, h, claims())), "the token's alg is not RS256 or ES256");
}

TEST(Jwt, AnAlgThatIsNotTheKeysIsRefused) {
  json::object h = ec().header();
  h["alg"] = "RS256";  // an EC key's kid with an RSA alg
  EXPECT_EQ(refusal(rsa().sign(h, claims())), "the token's alg is not its key's");
  for (const char* other : {"RS384", "PS256", "ES384", "EdDSA", "RS256 "}) {
    json::object o = rsa().header();
    o["alg"] = other;
    EXPECT_EQ(refusal(rsa().sign(o, claims())), "the token's alg is not RS256 or ES256") << other;
  }
}

TEST(Jwt, ATamperedPayloadOrHeaderFailsTheSignature) {
  for (const TestKey* key : {&rsa(), &ec()}) {
    std::string token = key->sign(key->header(), claims());
    size_t dot1 = token.find('.'), dot2 = token.rfind('.');
    std::string forged_payload = base64url_encode(json::serialize(claims({{"scope", "kb.read kb.search admin"}})));
    std::string tampered = token.substr(0, dot1 + 1) + forged_payload + token.substr(dot2);
    EXPECT_EQ(refusal(tampered), "the token's signature does not verify") << key->alg();
    json::object h = key->header();
    h["typ"] = "at+jwt";
    std::string new_header = base64url_encode(json::serialize(h));
    EXPECT_EQ(refusal(new_header + token.substr(dot1)), "the token's signature does not verify") << key->alg();
    // A signature with one bit flipped.
    std::string sig = *base64url_decode(token.substr(dot2 + 1), 1024);
    sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x01);
    EXPECT_EQ(refusal(token.substr(0, dot2 + 1) + base64url_encode(sig)), "the token's signature does not verify");
  }
}

TEST(Jwt, AnEs256SignatureInDerOrOfAnotherLengthIsRefused) {
  std::string token = ec().sign(ec().header(), claims());
  size_t dot2 = token.rfind('.');
  std::string raw = *base64url_decode(token.substr(dot2 + 1), 1024);
  // A 30-byte DER-looking blob and a 65-byte signature.
  for (std::string sig : {std::string("\x30\x44") + raw.substr(0, 28), raw + std::string(1, '\0')})
    EXPECT_EQ(refusal(token.substr(0, dot2 + 1) + base64url_encode(sig)), "the token's signature does not verify");
  // An all-zero r and s.
  EXPECT_EQ(refusal(token.substr(0, dot2 + 1) + base64url_encode(std::string(64, '\0'))),
            "the token's signature does not verify");
}

TEST(Jwt, OversizedTokensAndPartsAreRefusedBeforeDecoding) {
  EXPECT_EQ(refusal(std::string(kMaxTokenBytes + 1, 'a')), "the token is longer than 8192 bytes");
  json::object big_header = rsa().header();
  big_header["pad"] = std::string(1100, 'x');
  EXPECT_EQ(refusal(rsa().sign(big_header, claims())), "the token's header is not base64url of at most 1024 bytes");
  std::string big_payload = rsa().sign(rsa().header(), claims({{"pad", std::string(4100, 'x')}}));
  ASSERT_LE(big_payload.size(), kMaxTokenBytes);
  EXPECT_EQ(refusal(big_payload), "the token's payload is not base64url of at most 4096 bytes");
  json::array many;
  for (int i = 0; i < 200; ++i) many.emplace_back("s" + std::to_string(i));
  json::object scp = claims({{"scp", many}});
  scp.erase("scope");  // scope, when present, is read instead of scp
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), scp)), "the token carries too many scopes");
  std::string spaced;
  for (int i = 0; i < 200; ++i) spaced += "s" + std::to_string(i) + " ";
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), claims({{"scope", spaced}}))), "the token carries too many scopes");
  EXPECT_EQ(refusal(""), "the token is empty");
}

TEST(Jwt, ATokenThatIsNotThreeStrictBase64urlPartsIsRefused) {
  std::string good = rsa().sign(rsa().header(), claims());
  size_t dot1 = good.find('.');
  std::string header = good.substr(0, dot1), rest = good.substr(dot1);
  EXPECT_EQ(refusal("abc.def"), "the token is not a compact JWT (three parts)");
  EXPECT_EQ(refusal(good + ".x"), "the token is not a compact JWT (three parts)");
  EXPECT_EQ(refusal("." + rest.substr(1)), "the token has an empty part (an unsigned token is refused)");
  const std::string bad_header = "the token's header is not base64url of at most 1024 bytes";
  EXPECT_EQ(refusal(header + "=" + rest), bad_header) << "padding";
  EXPECT_EQ(refusal(header.substr(0, 4) + "+" + header.substr(5) + rest), bad_header) << "the standard alphabet";
  EXPECT_EQ(refusal(header.substr(0, 4) + " " + header.substr(4) + rest), bad_header) << "whitespace";
  // A length of 1 mod 4 cannot be base64.
  std::string one_mod_four = header;
  while (one_mod_four.size() % 4 != 1) one_mod_four += 'A';
  EXPECT_EQ(refusal(one_mod_four + rest), bad_header);
  // Non-zero trailing bits: a second spelling of the same bytes.
  ASSERT_TRUE(base64url_decode("QQ", 8).ok());
  EXPECT_EQ(*base64url_decode("QQ", 8), "A");
  EXPECT_FALSE(base64url_decode("QR", 8).ok()) << "QR is 'A' too, with trailing bits set";
  std::string sig = good.substr(good.rfind('.') + 1);
  EXPECT_EQ(refusal(good.substr(0, good.rfind('.') + 1) + sig + "="), "the token's signature is not base64url");
}

TEST(Jwt, CritExtensionsAndAnUnknownTypAreRefused) {
  json::object h = ec().header();
  h["crit"] = json::array{"exp"};
  EXPECT_EQ(refusal(ec().sign(h, claims())), "the token's header has crit extensions");
  json::object t = ec().header();
  t["typ"] = "JWE";
  EXPECT_EQ(refusal(ec().sign(t, claims())), "the token's typ is not JWT or at+jwt");
  t["typ"] = "application/at+jwt";
  EXPECT_TRUE(verify(ec().sign(t, claims())).ok()) << "RFC 9068's typ";
}

TEST(Jwt, ScopesComeFromScopeOrScp) {
  json::object c = claims();
  c.erase("scope");
  c["scp"] = json::array{"a", "b"};
  auto arr = verify(rsa().sign(rsa().header(), c));
  ASSERT_TRUE(arr.ok());
  EXPECT_EQ(arr->scopes, (std::vector<std::string>{"a", "b"}));
  c["scp"] = "x  y";
  auto str = verify(rsa().sign(rsa().header(), c));
  ASSERT_TRUE(str.ok());
  EXPECT_EQ(str->scopes, (std::vector<std::string>{"x", "y"}));
  c.erase("scp");
  auto none = verify(rsa().sign(rsa().header(), c));
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->scopes.empty());
  EXPECT_EQ(refusal(rsa().sign(rsa().header(), claims({{"scope", json::array{"a"}}}))),
            "the token's scope is not a string");
}

TEST(Jwt, Base64urlRoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    std::string enc = base64url_encode(bytes);
    EXPECT_EQ(enc.find_first_of("+/="), std::string::npos);
    auto dec = base64url_decode(enc, 64);
    ASSERT_TRUE(dec.ok()) << enc;
    EXPECT_EQ(*dec, bytes);
    bytes += static_cast<char>(i * 37 + 200);
  }
  EXPECT_FALSE(base64url_decode(base64url_encode(std::string(10, 'x')), 9).ok()) << "bounded before decoding";
}

// ---- Key sets ----

std::string set_of(json::array keys) { return json::serialize(json::object{{"keys", std::move(keys)}}); }

std::string jwks_error(const std::string& text) {
  auto r = Jwks::parse(text);
  EXPECT_FALSE(r.ok()) << text.substr(0, 200);
  return r.ok() ? "" : r.status().message();
}

TEST(Jwks, KeysOfKindsWeDoNotVerifyWithAreSkippedAndTheRestKept) {
  json::object enc = rsa().jwk();
  enc["use"] = "enc";
  enc["kid"] = "enc-1";
  json::object rs384 = rsa().jwk();
  rs384["alg"] = "RS384";
  rs384["kid"] = "rs384";
  json::object p384{{"kty", "EC"}, {"crv", "P-384"}, {"kid", "p384"}, {"x", "AA"}, {"y", "AA"}};
  json::object okp{{"kty", "OKP"}, {"crv", "Ed25519"}, {"kid", "ed"}, {"x", "AA"}};
  auto set = Jwks::parse(set_of({enc, rs384, p384, okp, rsa().jwk(), ec().jwk()}));
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_EQ((*set)->kids(), (std::vector<std::string>{"rsa-1", "ec-1"}));
  json::object h{{"alg", "RS256"}, {"kid", "enc-1"}};
  EXPECT_EQ(verify_jwt(rsa().sign(h, claims()), **set, options(), kNow).status().message(),
            "no key of the set has the token's kid")
      << "an encryption key never verifies";
}

TEST(Jwks, ABadSetIsRefusedWithWhatIsWrong) {
  EXPECT_EQ(jwks_error("not json"), "not a JSON object (a JWKS is {\"keys\": [...]})");
  EXPECT_EQ(jwks_error("{}"), "no \"keys\" array");
  EXPECT_EQ(jwks_error(set_of({})), "no RS256 or ES256 signing key");
  json::array many;
  for (int i = 0; i < 33; ++i) many.push_back(ec().jwk());
  EXPECT_EQ(jwks_error(set_of(many)), "more than 32 keys");
  EXPECT_EQ(jwks_error(set_of({rsa().jwk(), rsa().jwk()})), "key 2: a second key with the same kid");
  json::object priv = ec().jwk();
  priv["d"] = "AAAA";
  EXPECT_EQ(jwks_error(set_of({priv})),
            "key 1: holds private or secret material (d, p or k): publish only "
            "public keys");
  json::object oct{{"kty", "oct"}, {"k", "c2VjcmV0"}, {"kid", "h"}};
  EXPECT_NE(jwks_error(set_of({oct})).find("secret material"), std::string::npos);
  TestKey small = TestKey::rsa("small", 1024);
  EXPECT_EQ(jwks_error(set_of({small.jwk()})), "key 1: the RSA modulus must have 2048 to 8192 bits");
  json::object off_curve = ec().jwk();
  std::string y = *base64url_decode(off_curve.at("y").as_string(), 32);
  y[31] = static_cast<char>(y[31] ^ 1);
  off_curve["y"] = base64url_encode(y);
  EXPECT_EQ(jwks_error(set_of({off_curve})), "key 1: x and y are not a point of P-256");
  json::object short_x = ec().jwk();
  short_x["x"] = "AAAA";
  EXPECT_EQ(jwks_error(set_of({short_x})), "key 1: x and y must be base64url of 32 bytes each");
  json::object bad_n = rsa().jwk();
  bad_n["n"] = "not/base64";
  EXPECT_EQ(jwks_error(set_of({bad_n})), "key 1: n or e is not base64url of at most 8192 and 64 bits");
  json::object even_e = rsa().jwk();
  even_e["e"] = base64url_encode(std::string("\x01\x00\x00", 3));
  EXPECT_EQ(jwks_error(set_of({even_e})), "key 1: the RSA exponent must be odd and above 1");
  json::object mislabelled = ec().jwk();
  mislabelled["alg"] = "RS256";
  EXPECT_EQ(jwks_error(set_of({mislabelled})), "key 1: alg does not fit the key's type");
  json::object no_kid = ec().jwk();
  no_kid.erase("kid");
  EXPECT_EQ(jwks_error(set_of({no_kid, rsa().jwk()})),
            "a key without kid in a set of several (tokens pick their key by kid)");
  EXPECT_EQ(jwks_error(std::string(kMaxJwksBytes + 1, ' ')), "the key set is larger than 256 KiB");
}

TEST(Jwks, LoadFileReadsABoundedRegularFile) {
  std::string dir = ::testing::TempDir();
  std::string good = dir + "/memgate-jwks-good.json";
  std::ofstream(good) << testing::jwks_json({&rsa(), &ec()});
  auto set = Jwks::load_file(good);
  ASSERT_TRUE(set.ok()) << set.status().to_string();
  EXPECT_EQ((*set)->size(), 2u);
  std::string big = dir + "/memgate-jwks-big.json";
  std::ofstream(big) << std::string(kMaxJwksBytes + 10, ' ');
  EXPECT_EQ(Jwks::load_file(big).status().message(), "the file is larger than 256 KiB");
  EXPECT_EQ(Jwks::load_file(dir).status().message(), "not a regular file");
  EXPECT_EQ(Jwks::load_file(dir + "/memgate-jwks-absent.json").status().message(), "cannot open the file");
  // A device would feed a naive reader for ever; this one refuses it at once.
  EXPECT_FALSE(Jwks::load_file("/dev/zero").ok());
}

}  // namespace
}  // namespace memgate::mcp
