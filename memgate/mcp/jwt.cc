// JWT verification over OpenSSL 3's EVP interface.
//
// Keys are built once, when the JWKS is read: an RSA key from its n and e, an
// EC key from its P-256 point, each through OSSL_PARAM and EVP_PKEY_fromdata,
// and checked with EVP_PKEY_public_check, so a bad key set stops start-up
// rather than failing every request. A token is then taken apart in the order
// that keeps the unauthenticated work smallest: bound the sizes, split the
// three parts, decode and read the header (alg and kid only), pick the key,
// check the signature over the first two parts as sent, and only then parse
// the payload and test its claims. ES256 signatures arrive as raw r||s (RFC
// 7518 §3.4) and are re-encoded as the DER ECDSA-Sig-Value EVP expects.
//
// Every failure is a fixed phrase; OpenSSL's error queue is cleared after each
// failed call so it never grows on a worker thread.
#include "memgate/mcp/jwt.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cmath>
#include <optional>
#include <set>

namespace memgate::mcp {

namespace json = boost::json;

struct Jwks::Key {
  std::string kid;
  JwtAlg alg = JwtAlg::kRs256;
  EVP_PKEY* pkey = nullptr;  // owned
  Key() = default;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  ~Key() { EVP_PKEY_free(pkey); }
};

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kMaxKid = 256;
constexpr size_t kMaxRsaModulusBytes = 1024;  // 8192 bits
constexpr int kMinRsaBits = 2048;
constexpr size_t kMaxAudiences = 32;

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct SigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// Builds a public key of `type` ("RSA", "EC") from `params`; nullptr when
// OpenSSL refuses it or its public check fails.
EVP_PKEY* from_params(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    return nullptr;
  }
  return pkey;
}

Result<EVP_PKEY*> rsa_key(const json::object& jwk) {
  const json::value* n = jwk.if_contains("n");
  const json::value* e = jwk.if_contains("e");
  if (!n || !n->is_string() || !e || !e->is_string()) return InvalidArgument("an RSA key needs n and e as strings");
  auto n_bytes = base64url_decode(n->as_string(), kMaxRsaModulusBytes + 1);
  auto e_bytes = base64url_decode(e->as_string(), 8);
  if (!n_bytes.ok() || !e_bytes.ok()) return InvalidArgument("n or e is not base64url of at most 8192 and 64 bits");
  std::unique_ptr<BIGNUM, BnFree> bn_n(BN_bin2bn(bytes(*n_bytes), static_cast<int>(n_bytes->size()), nullptr));
  std::unique_ptr<BIGNUM, BnFree> bn_e(BN_bin2bn(bytes(*e_bytes), static_cast<int>(e_bytes->size()), nullptr));
  if (!bn_n || !bn_e) return Internal("out of memory building an RSA key");
  int bits = BN_num_bits(bn_n.get());
  if (bits < kMinRsaBits || bits > static_cast<int>(kMaxRsaModulusBytes * 8))
    return InvalidArgument("the RSA modulus must have 2048 to 8192 bits");
  if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()))
    return InvalidArgument("the RSA exponent must be odd and above 1");
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
    return Internal("out of memory building an RSA key");
  EVP_PKEY* pkey = from_params("RSA", bld.get());
  if (!pkey) return InvalidArgument("n and e do not make an RSA public key");
  return pkey;
}

Result<EVP_PKEY*> ec_key(const json::object& jwk) {
  const json::value* x = jwk.if_contains("x");
  const json::value* y = jwk.if_contains("y");
  if (!x || !x->is_string() || !y || !y->is_string()) return InvalidArgument("an EC key needs x and y as strings");
  auto xb = base64url_decode(x->as_string(), 32);
  auto yb = base64url_decode(y->as_string(), 32);
  if (!xb.ok() || !yb.ok() || xb->size() != 32 || yb->size() != 32)
    return InvalidArgument("x and y must be base64url of 32 bytes each");
  std::string point = "\x04" + *xb + *yb;  // uncompressed SEC1 point
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1)
    return Internal("out of memory building an EC key");
  EVP_PKEY* pkey = from_params("EC", bld.get());
  if (!pkey) return InvalidArgument("x and y are not a point of P-256");
  return pkey;
}

std::optional<JwtAlg> parse_alg(std::string_view name) {
  if (name == "RS256") return JwtAlg::kRs256;
  if (name == "ES256") return JwtAlg::kEs256;
  return std::nullopt;
}

// A JSON object of at most `max` bytes of text, parsed shallowly.
std::optional<json::object> parse_object(std::string_view text, size_t max_depth) {
  json::parse_options po;
  po.max_depth = max_depth;
  json::error_code ec;
  json::value v = json::parse(text, ec, {}, po);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// A NumericDate (RFC 7519 §2) as whole seconds, clamped far from overflow.
std::optional<int64_t> numeric_date(const json::value& v) {
  constexpr int64_t kFar = int64_t{1} << 52;
  if (v.is_int64()) return std::clamp<int64_t>(v.as_int64(), -kFar, kFar);
  if (v.is_uint64()) return kFar;
  if (v.is_double()) {
    double d = v.as_double();
    if (!std::isfinite(d)) return std::nullopt;
    d = std::clamp(d, -static_cast<double>(kFar), static_cast<double>(kFar));
    return static_cast<int64_t>(std::floor(d));
  }
  return std::nullopt;
}

Status split_scopes(std::string_view text, std::vector<std::string>* out) {
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = text.find(' ', i);
    if (end == std::string_view::npos) end = text.size();
    if (out->size() == kMaxTokenScopes) return InvalidArgument("the token carries too many scopes");
    out->emplace_back(text.substr(i, end - i));
    i = end;
  }
  return Status::Ok();
}

bool verify_signature(const Jwks::Key& key, std::string_view signed_part, std::string_view signature) {
  std::string der;
  std::string_view sig = signature;
  if (key.alg == JwtAlg::kRs256) {
    if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(key.pkey))) return false;
  } else {
    if (signature.size() != 64) return false;
    std::unique_ptr<ECDSA_SIG, SigFree> s(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(bytes(signature), 32, nullptr);
    BIGNUM* ss = BN_bin2bn(bytes(signature) + 32, 32, nullptr);
    if (!s || !r || !ss || ECDSA_SIG_set0(s.get(), r, ss) != 1) {
      BN_free(r);
      BN_free(ss);
      ERR_clear_error();
      return false;
    }
    int len = i2d_ECDSA_SIG(s.get(), nullptr);
    if (len <= 0) {
      ERR_clear_error();
      return false;
    }
    der.resize(static_cast<size_t>(len));
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    if (i2d_ECDSA_SIG(s.get(), &p) != len) {
      ERR_clear_error();
      return false;
    }
    sig = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
  bool ok = md && EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, key.pkey, nullptr) == 1 &&
            EVP_DigestVerify(md.get(), bytes(sig), sig.size(), bytes(signed_part), signed_part.size()) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

}  // namespace

std::string_view alg_name(JwtAlg alg) { return alg == JwtAlg::kRs256 ? "RS256" : "ES256"; }

Result<std::string> base64url_decode(std::string_view text, size_t max_out) {
  if (text.size() % 4 == 1) return InvalidArgument("not base64url");
  if (text.size() / 4 * 3 + (text.size() % 4 == 0 ? 0 : text.size() % 4 - 1) > max_out)
    return InvalidArgument("longer than allowed");
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return InvalidArgument("not base64url");
    bits = ((bits << 6) | static_cast<uint32_t>(v)) & 0xFFFFFF;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  // The bits left over must be zero: one spelling per byte string.
  if (count > 0 && (bits & ((1u << count) - 1)) != 0) return InvalidArgument("not canonical base64url");
  return out;
}

std::string base64url_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : in) {
    bits = ((bits << 8) | c) & 0xFFFFFF;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kAlphabet[(bits >> count) & 0x3F];
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 0x3F];
  return out;
}

bool Claims::has_scope(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

Result<std::shared_ptr<const Jwks>> Jwks::parse(std::string_view text) {
  if (text.size() > kMaxJwksBytes) return InvalidArgument("the key set is larger than 256 KiB");
  auto doc = parse_object(text, 8);
  if (!doc) return InvalidArgument("not a JSON object (a JWKS is {\"keys\": [...]})");
  const json::value* keys = doc->if_contains("keys");
  if (!keys || !keys->is_array()) return InvalidArgument("no \"keys\" array");
  if (keys->as_array().size() > kMaxJwksKeys) return InvalidArgument("more than 32 keys");
  auto set = std::make_shared<Jwks>();
  std::set<std::string> kids;
  size_t number = 0;
  for (const json::value& kv : keys->as_array()) {
    ++number;
    std::string where = "key " + std::to_string(number) + ": ";
    if (!kv.is_object()) return InvalidArgument(where + "not an object");
    const json::object& jwk = kv.as_object();
    auto text_of = [&](std::string_view name) -> std::optional<std::string_view> {
      const json::value* v = jwk.if_contains(name);
      if (!v || !v->is_string()) return std::nullopt;
      return std::string_view(v->as_string());
    };
    if (jwk.contains("d") || jwk.contains("p") || jwk.contains("k"))
      return InvalidArgument(where +
                             "holds private or secret material (d, p "
                             "or k): publish only public keys");
    std::string_view kty = text_of("kty").value_or("");
    // Keys we do not verify with are skipped, not refused: sets often carry
    // them.
    if (auto use = text_of("use"); use && *use != "sig") continue;
    if (const json::value* ops = jwk.if_contains("key_ops")) {
      bool verify = false;
      if (ops->is_array())
        for (const json::value& op : ops->as_array()) verify = verify || (op.is_string() && op.as_string() == "verify");
      if (!verify) continue;
    }
    std::optional<JwtAlg> alg;
    if (kty == "RSA") alg = JwtAlg::kRs256;
    if (kty == "EC" && text_of("crv").value_or("") == "P-256") alg = JwtAlg::kEs256;
    if (!alg) continue;
    if (const json::value* a = jwk.if_contains("alg")) {
      if (!a->is_string()) return InvalidArgument(where + "alg must be a string");
      auto named = parse_alg(a->as_string());
      if (!named) continue;  // RS384, PS256, ...: not ours
      if (*named != *alg) return InvalidArgument(where + "alg does not fit the key's type");
    }
    std::string kid;
    if (const json::value* k = jwk.if_contains("kid")) {
      if (!k->is_string() || k->as_string().empty() || k->as_string().size() > kMaxKid)
        return InvalidArgument(where + "kid must be a string of 1 to 256 bytes");
      kid = std::string(k->as_string());
    }
    if (!kids.insert(kid).second) return InvalidArgument(where + "a second key with the same kid");
    auto pkey = *alg == JwtAlg::kRs256 ? rsa_key(jwk) : ec_key(jwk);
    if (!pkey.ok()) return InvalidArgument(where + pkey.status().message());
    auto key = std::make_shared<Key>();
    key->kid = std::move(kid);
    key->alg = *alg;
    key->pkey = *pkey;
    set->keys_.push_back(std::move(key));
  }
  if (set->keys_.empty()) return InvalidArgument("no RS256 or ES256 signing key");
  if (set->keys_.size() > 1 && kids.count(""))
    return InvalidArgument("a key without kid in a set of several (tokens pick their key by kid)");
  return std::shared_ptr<const Jwks>(std::move(set));
}

Result<std::shared_ptr<const Jwks>> Jwks::load_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return InvalidArgument("cannot open the file");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxJwksBytes) {
    ::close(fd);
    return InvalidArgument("the file is larger than 256 KiB");
  }
  std::string text(kMaxJwksBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got > kMaxJwksBytes) return InvalidArgument("the file is larger than 256 KiB");
  text.resize(got);
  return parse(text);
}

std::vector<std::string> Jwks::kids() const {
  std::vector<std::string> out;
  for (const auto& k : keys_) out.push_back(k->kid);
  return out;
}

const Jwks::Key* Jwks::select(std::string_view kid) const {
  if (kid.empty()) return keys_.size() == 1 ? keys_.front().get() : nullptr;
  for (const auto& k : keys_)
    if (k->kid == kid) return k.get();
  return nullptr;
}

JwtAlg Jwks::key_alg(const Key& key) { return key.alg; }

Result<Claims> verify_jwt(std::string_view token, const Jwks& keys, const VerifyOptions& options, int64_t now) {
  if (token.empty()) return InvalidArgument("the token is empty");
  if (token.size() > kMaxTokenBytes) return InvalidArgument("the token is longer than 8192 bytes");
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return InvalidArgument("the token is not a compact JWT (three parts)");
  std::string_view header_b64 = token.substr(0, dot1);
  std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_b64 = token.substr(dot2 + 1);
  if (header_b64.empty() || payload_b64.empty() || signature_b64.empty())
    return InvalidArgument("the token has an empty part (an unsigned token is refused)");

  auto header_text = base64url_decode(header_b64, kMaxJwtHeaderBytes);
  if (!header_text.ok()) return InvalidArgument("the token's header is not base64url of at most 1024 bytes");
  auto header = parse_object(*header_text, 4);
  if (!header) return InvalidArgument("the token's header is not a JSON object");
  const json::value* alg_v = header->if_contains("alg");
  if (!alg_v || !alg_v->is_string()) return InvalidArgument("the token's header has no alg");
  std::optional<JwtAlg> alg = parse_alg(alg_v->as_string());
  if (!alg) return InvalidArgument("the token's alg is not RS256 or ES256");
  if (header->contains("crit")) return InvalidArgument("the token's header has crit extensions");
  if (const json::value* typ = header->if_contains("typ")) {
    std::string t = typ->is_string() ? std::string(typ->as_string()) : std::string("?");
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (t.rfind("application/", 0) == 0) t = t.substr(12);
    if (t != "jwt" && t != "at+jwt") return InvalidArgument("the token's typ is not JWT or at+jwt");
  }
  std::string_view kid;
  if (const json::value* k = header->if_contains("kid")) {
    if (!k->is_string() || k->as_string().empty() || k->as_string().size() > kMaxKid)
      return InvalidArgument("the token's kid is not a string of 1 to 256 bytes");
    kid = k->as_string();
  }
  const Jwks::Key* key = keys.select(kid);
  if (!key)
    return InvalidArgument(kid.empty() ? "the token names no kid and the key set holds several keys"
                                       : "no key of the set has the token's kid");
  if (Jwks::key_alg(*key) != *alg) return InvalidArgument("the token's alg is not its key's");

  auto signature = base64url_decode(signature_b64, kMaxRsaModulusBytes);
  if (!signature.ok()) return InvalidArgument("the token's signature is not base64url");
  if (!verify_signature(*key, token.substr(0, dot2), *signature))
    return InvalidArgument("the token's signature does not verify");

  // Signed by a key we trust: now its claims.
  auto payload_text = base64url_decode(payload_b64, kMaxJwtPayloadBytes);
  if (!payload_text.ok()) return InvalidArgument("the token's payload is not base64url of at most 4096 bytes");
  auto payload = parse_object(*payload_text, 8);
  if (!payload) return InvalidArgument("the token's payload is not a JSON object");
  const json::object& p = *payload;

  const json::value* iss = p.if_contains("iss");
  if (!iss || !iss->is_string() || iss->as_string() != options.issuer)
    return InvalidArgument("the token's issuer is not the one configured");
  const json::value* aud = p.if_contains("aud");
  bool audience = false;
  if (aud && aud->is_string()) audience = aud->as_string() == options.audience;
  if (aud && aud->is_array() && aud->as_array().size() <= kMaxAudiences)
    for (const json::value& a : aud->as_array())
      audience = audience || (a.is_string() && a.as_string() == options.audience);
  if (!audience) return InvalidArgument("the token is not for this resource (aud)");

  const int64_t leeway = options.leeway.count();
  const json::value* exp_v = p.if_contains("exp");
  std::optional<int64_t> exp = exp_v ? numeric_date(*exp_v) : std::nullopt;
  if (!exp) return InvalidArgument("the token has no exp");
  if (now >= *exp + leeway) return InvalidArgument("the token has expired");
  if (const json::value* nbf_v = p.if_contains("nbf")) {
    std::optional<int64_t> nbf = numeric_date(*nbf_v);
    if (!nbf) return InvalidArgument("the token's nbf is not a number");
    if (now + leeway < *nbf) return InvalidArgument("the token is not valid yet (nbf)");
  }
  if (const json::value* iat_v = p.if_contains("iat")) {
    std::optional<int64_t> iat = numeric_date(*iat_v);
    if (!iat) return InvalidArgument("the token's iat is not a number");
    if (*iat > now + leeway) return InvalidArgument("the token was issued in the future (iat)");
  }

  Claims c;
  c.expires_at = *exp;
  if (const json::value* sub = p.if_contains("sub"); sub && sub->is_string()) c.subject = std::string(sub->as_string());
  for (std::string_view name : {"client_id", "azp"}) {
    const json::value* v = p.if_contains(name);
    if (c.client_id.empty() && v && v->is_string()) c.client_id = std::string(v->as_string());
  }
  if (const json::value* scope = p.if_contains("scope")) {
    if (!scope->is_string()) return InvalidArgument("the token's scope is not a string");
    if (Status st = split_scopes(scope->as_string(), &c.scopes); !st.ok()) return st;
  } else if (const json::value* scp = p.if_contains("scp")) {
    if (scp->is_string()) {
      if (Status st = split_scopes(scp->as_string(), &c.scopes); !st.ok()) return st;
    } else if (scp->is_array()) {
      for (const json::value& s : scp->as_array()) {
        if (!s.is_string()) return InvalidArgument("the token's scp holds a non-string");
        if (c.scopes.size() == kMaxTokenScopes) return InvalidArgument("the token carries too many scopes");
        c.scopes.emplace_back(s.as_string());
      }
    } else {
      return InvalidArgument("the token's scp is not a string or an array");
    }
  }
  return c;
}

}  // namespace memgate::mcp
