#include "memgate/mcp/jwt_testing.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include <boost/json.hpp>
#include <stdexcept>

#include "memgate/mcp/jwt.h"

namespace memgate::mcp::testing {

namespace json = boost::json;

struct TestKey::Pkey {
  EVP_PKEY* p = nullptr;
  ~Pkey() { EVP_PKEY_free(p); }
};

namespace {

std::string bn_bytes(const EVP_PKEY* pkey, const char* name, int pad) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) throw std::runtime_error("no such key parameter");
  std::string out(static_cast<size_t>(pad > 0 ? pad : BN_num_bytes(bn)), '\0');
  auto* buf = reinterpret_cast<unsigned char*>(out.data());
  if (pad > 0)
    BN_bn2binpad(bn, buf, pad);
  else
    BN_bn2bin(bn, buf);
  BN_free(bn);
  return out;
}

}  // namespace

TestKey::TestKey(TestKey&&) noexcept = default;
TestKey& TestKey::operator=(TestKey&&) noexcept = default;
TestKey::~TestKey() = default;

TestKey TestKey::rsa(std::string kid, int bits) {
  TestKey k;
  k.pkey_ = std::make_unique<Pkey>();
  k.pkey_->p = EVP_RSA_gen(static_cast<unsigned int>(bits));
  if (!k.pkey_->p) throw std::runtime_error("RSA key generation failed");
  k.kid_ = std::move(kid);
  k.rsa_ = true;
  return k;
}

TestKey TestKey::ec(std::string kid) {
  TestKey k;
  k.pkey_ = std::make_unique<Pkey>();
  k.pkey_->p = EVP_EC_gen("P-256");
  if (!k.pkey_->p) throw std::runtime_error("EC key generation failed");
  k.kid_ = std::move(kid);
  k.rsa_ = false;
  return k;
}

json::object TestKey::jwk() const {
  json::object o{{"kid", kid_}, {"use", "sig"}, {"alg", alg()}};
  if (rsa_) {
    o["kty"] = "RSA";
    o["n"] = base64url_encode(bn_bytes(pkey_->p, OSSL_PKEY_PARAM_RSA_N, 0));
    o["e"] = base64url_encode(bn_bytes(pkey_->p, OSSL_PKEY_PARAM_RSA_E, 0));
  } else {
    o["kty"] = "EC";
    o["crv"] = "P-256";
    o["x"] = base64url_encode(bn_bytes(pkey_->p, OSSL_PKEY_PARAM_EC_PUB_X, 32));
    o["y"] = base64url_encode(bn_bytes(pkey_->p, OSSL_PKEY_PARAM_EC_PUB_Y, 32));
  }
  return o;
}

std::string TestKey::public_der() const {
  unsigned char* buf = nullptr;
  int len = i2d_PUBKEY(pkey_->p, &buf);
  if (len <= 0) throw std::runtime_error("i2d_PUBKEY failed");
  std::string out(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  return out;
}

std::string TestKey::signature(std::string_view input) const {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t len = 0;
  auto data = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSignInit_ex(md, nullptr, "SHA256", nullptr, nullptr, pkey_->p, nullptr) != 1 ||
      EVP_DigestSign(md, nullptr, &len, data, input.size()) != 1) {
    EVP_MD_CTX_free(md);
    throw std::runtime_error("signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len, data, input.size()) != 1) {
    EVP_MD_CTX_free(md);
    throw std::runtime_error("signing failed");
  }
  EVP_MD_CTX_free(md);
  sig.resize(len);
  if (!rsa_) {
    // DER ECDSA-Sig-Value -> the raw r||s of JWS.
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (!s) throw std::runtime_error("bad DER signature");
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(s), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(s), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(s);
    sig = std::move(raw);
  }
  return base64url_encode(sig);
}

json::object TestKey::header() const { return json::object{{"alg", alg()}, {"typ", "JWT"}, {"kid", kid_}}; }

std::string TestKey::sign(const json::object& header, const json::object& payload) const {
  std::string input = signing_input(header, payload);
  return input + "." + signature(input);
}

std::string jwks_json(const std::vector<const TestKey*>& keys) {
  json::array list;
  for (const TestKey* k : keys) list.push_back(k->jwk());
  return json::serialize(json::object{{"keys", std::move(list)}});
}

std::string signing_input(const json::object& header, const json::object& payload) {
  return base64url_encode(json::serialize(header)) + "." + base64url_encode(json::serialize(payload));
}

std::string sign_hs256(std::string_view secret, const json::object& header, const json::object& payload) {
  std::string input = signing_input(header, payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url_encode(std::string(reinterpret_cast<char*>(mac), len));
}

}  // namespace memgate::mcp::testing
