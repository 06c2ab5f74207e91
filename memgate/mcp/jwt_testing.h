// Keys and tokens for tests: RSA and P-256 key pairs generated with OpenSSL
// for the test that asks, their public JWKS, and compact JWTs signed with them
// (or shaped wrongly on purpose). Nothing here is for production: the keys
// live in memory only. Not thread-safe per object; one key per test is cheap
// for EC, some tens of milliseconds for RSA-2048.
#pragma once

#include <boost/json/object.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace memgate::mcp::testing {

class TestKey {
 public:
  static TestKey rsa(std::string kid, int bits = 2048);
  static TestKey ec(std::string kid);
  TestKey(TestKey&&) noexcept;
  TestKey& operator=(TestKey&&) noexcept;
  ~TestKey();

  const std::string& kid() const { return kid_; }
  bool is_rsa() const { return rsa_; }
  std::string alg() const { return rsa_ ? "RS256" : "ES256"; }
  // The public JWK: kty, kid, use, alg and n/e or crv/x/y.
  boost::json::object jwk() const;
  // The public key as DER SubjectPublicKeyInfo (what an HS256 forger would
  // use as the "secret").
  std::string public_der() const;
  // The JWS signature of `signing_input` (RS256: PKCS#1 v1.5; ES256: raw r||s),
  // base64url.
  std::string signature(std::string_view signing_input) const;
  // A compact JWT of `header` and `payload`, signed with this key.
  std::string sign(const boost::json::object& header, const boost::json::object& payload) const;
  // The usual header: {"alg": alg(), "typ": "JWT", "kid": kid()}.
  boost::json::object header() const;

 private:
  TestKey() = default;
  struct Pkey;
  std::unique_ptr<Pkey> pkey_;
  std::string kid_;
  bool rsa_ = true;
};

// {"keys": [jwk of each]}.
std::string jwks_json(const std::vector<const TestKey*>& keys);
// base64url(header) + "." + base64url(payload): the signing input.
std::string signing_input(const boost::json::object& header, const boost::json::object& payload);
// An HS256 token keyed with `secret`: the alg-confusion forgery.
std::string sign_hs256(std::string_view secret, const boost::json::object& header, const boost::json::object& payload);

}  // namespace memgate::mcp::testing
