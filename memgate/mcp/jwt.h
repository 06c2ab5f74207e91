// JWT access tokens (RFC 7519, RFC 9068) verified against a JSON Web Key Set
// (RFC 7517): the signature, then issuer, audience and time.
//
// What is accepted, and nothing else:
//   - algorithms RS256 (RSA PKCS#1 v1.5 with SHA-256, keys of 2048..8192 bits)
//     and ES256 (ECDSA P-256 with SHA-256, the signature as raw r||s, 64
//     bytes). `none`, every HS*, PS*, ES384 and the rest are refused, whatever
//     the key set holds; the header's `alg` must be the selected key's.
//   - the key: the header's `kid` names one key of the set; a header without
//     `kid` is accepted only when the set holds exactly one key.
//   - the compact form header.payload.signature, each part strict base64url
//     (RFC 7515 §2: no padding, no whitespace, canonical trailing bits).
//   - a header with `crit` is refused (we understand no extension); `typ`, when
//     present, must be JWT or at+jwt (with or without application/).
//   - claims: `iss` equal to the issuer; `aud` a string equal to the audience,
//     or an array holding it; `exp` required, `nbf` and `iat` when present,
//     each a number, compared with `leeway` either way.
// The signature is checked before a byte of the payload is parsed.
//
// Every size that comes from outside is bounded before it is allocated for:
// the token (kMaxTokenBytes), its decoded header and payload, the JWKS text
// (kMaxJwksBytes), its key count (kMaxJwksKeys), each key's numbers.
//
// Errors say which rule failed in a fixed phrase ("the token has expired"),
// never a byte of the token, so they may be logged and sent to the client.
//
// Thread-safe: a Jwks is immutable once built; verify_jwt may run on many
// threads over one set at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::mcp {

inline constexpr size_t kMaxTokenBytes = 8192;       // the whole compact token
inline constexpr size_t kMaxJwtHeaderBytes = 1024;   // decoded
inline constexpr size_t kMaxJwtPayloadBytes = 4096;  // decoded
inline constexpr size_t kMaxJwksBytes = 256 * 1024;  // the JWKS file
inline constexpr size_t kMaxJwksKeys = 32;           // keys in one set (all of them, used or not)
inline constexpr size_t kMaxTokenScopes = 128;       // scopes read from one token

// The signature algorithms verify_jwt accepts.
enum class JwtAlg { kRs256, kEs256 };
std::string_view alg_name(JwtAlg alg);

// The verification keys of a JWKS, each with its `kid` and algorithm.
class Jwks {
 public:
  // Parses a JWKS document: {"keys": [...]}. A key of another type or curve, or
  // one marked "use": "enc", or whose "alg" is not RS256/ES256, is skipped
  // (key sets often carry encryption keys); a key of our kinds whose numbers do
  // not make a valid public key (n under 2048 bits, a point off the curve, bad
  // base64url) fails the whole set, as do two keys with one kid and a set with
  // no usable key. kInvalidArgument with what is wrong ("key 2: ...").
  static Result<std::shared_ptr<const Jwks>> parse(std::string_view json);
  // Reads `path` (a regular file of at most kMaxJwksBytes) and parses it.
  static Result<std::shared_ptr<const Jwks>> load_file(const std::string& path);

  struct Key;  // a kid, an algorithm and an OpenSSL public key (jwt.cc)

  size_t size() const { return keys_.size(); }
  // The usable keys' kids, in the file's order ("" for a key without one).
  std::vector<std::string> kids() const;
  // The key a token's header selects, or nullptr (`kid` empty: the only key).
  const Key* select(std::string_view kid) const;
  static JwtAlg key_alg(const Key& key);

 private:
  std::vector<std::shared_ptr<const Key>> keys_;
};

struct VerifyOptions {
  std::string issuer;               // `iss` must equal this
  std::string audience;             // `aud` must be, or hold, this
  std::chrono::seconds leeway{60};  // clock skew allowed on exp, nbf and iat
};

// What a verified token says about its bearer.
struct Claims {
  std::string subject;              // `sub`, "" when absent
  std::string client_id;            // `client_id` (RFC 9068) or `azp`, "" when absent
  std::vector<std::string> scopes;  // `scope` (space-separated) or `scp` (string or array)
  int64_t expires_at = 0;           // `exp`, seconds since the epoch

  bool has_scope(std::string_view scope) const;
};

// Verifies `token` (the compact JWT, without "Bearer ") against `keys` at
// `now_unix` (seconds since the epoch). Returns its claims, or kInvalidArgument
// naming the rule it broke in a fixed phrase.
Result<Claims> verify_jwt(std::string_view token, const Jwks& keys, const VerifyOptions& options, int64_t now_unix);

// Strict base64url (RFC 4648 §5) without padding: nullopt-like failure for any
// byte outside the alphabet, a length of 1 mod 4, or non-zero trailing bits.
// At most `max_out` decoded bytes (longer input fails before decoding).
Result<std::string> base64url_decode(std::string_view text, size_t max_out);
std::string base64url_encode(std::string_view bytes);

}  // namespace memgate::mcp
