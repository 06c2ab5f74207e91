// BearerAuth: /mcp as an OAuth 2.1 resource server (MCP authorization,
// 2025-11-25 and 2026-07-28; RFC 6750, RFC 9068, RFC 9728).
//
// A request's access token comes from its Authorization header only
// ("Bearer <JWT>"; a token in the query string or the body is never read) and
// is verified by verify_jwt (jwt.h) against the operator's JWKS, issuer and
// audience. The answers:
//   - no Authorization, or another scheme: 401 with
//     WWW-Authenticate: Bearer resource_metadata="<metadata URL>"[,
//     scope="..."]
//   - a Bearer token that does not verify (malformed, badly signed, expired,
//     not valid yet, another issuer or audience): 401 with the same challenge
//     plus error="invalid_token" and error_description, a fixed phrase;
//   - a valid token without a scope every request needs (`required_scopes`),
//     or without one the tool being called needs (`tool_scopes`): 403 with
//     Bearer error="insufficient_scope", scope="<what the request needs>".
// The metadata URL is the RFC 9728 §3.1 form of `resource`: the well-known
// path inserted between its host and its path. metadata_json() is the
// document served there: resource, authorization_servers (the issuer),
// scopes_supported, bearer_methods_supported ["header"].
//
// Token bytes never reach a log line, an error body or a header we send:
// every message is one of verify_jwt's fixed phrases.
//
// Thread-safe: immutable after construction; authenticate() may run on many
// worker threads at once. The clock must outlive it.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "memgate/base/clock.h"
#include "memgate/base/status.h"
#include "memgate/mcp/jwt.h"

namespace memgate::mcp {

inline constexpr std::string_view kResourceMetadataPath = "/.well-known/oauth-protected-resource";
inline constexpr std::chrono::seconds kMaxClockSkew{300};

using ToolScopes = std::map<std::string, std::vector<std::string>, std::less<>>;

struct BearerOptions {
  std::shared_ptr<const Jwks> keys;          // not null; the set in use at first
  std::string issuer;                        // iss, and the one authorization server
  std::string audience;                      // aud must hold it
  std::string resource;                      // the public URL of /mcp (RFC 9728 `resource`)
  std::vector<std::string> required_scopes;  // every request needs all of these
  ToolScopes tool_scopes;                    // tools/call of a tool needs all of its own too
  std::chrono::seconds leeway{60};           // clock skew on exp/nbf/iat, at most kMaxClockSkew
  // The file `keys` came from, looked at again every `jwks_recheck` (0: never):
  // when it changed, its new key set replaces `keys` (and the remembered
  // tokens are forgotten); a changed file that does not parse keeps the keys
  // in use, with a warning. "" when the keys came from elsewhere.
  std::string jwks_path;
  std::chrono::seconds jwks_recheck{0};
};

// The outcome of one check: allowed (status 0), or the refusal to send.
struct AuthVerdict {
  int status = 0;                // 0: allowed; else 401 or 403
  std::string www_authenticate;  // the challenge, for a refusal
  std::string message;           // for the JSON-RPC error: a fixed phrase
  Claims claims;                 // when allowed

  bool allowed() const { return status == 0; }
};

class BearerAuth {
 public:
  explicit BearerAuth(BearerOptions options, const Clock& clock = SteadyClock::instance());

  // Checks the Authorization header's value ("" when absent), token and the
  // scopes every request needs.
  AuthVerdict authenticate(std::string_view authorization) const;
  // Whether a verified bearer may call `tool`: an allowed verdict, or the 403.
  AuthVerdict authorize_tool(const Claims& claims, std::string_view tool) const;

  // What authenticate() and authorize_tool() answered since start (for
  // /metrics: bearer_metrics.h).
  struct Counts {
    uint64_t accepted = 0;            // a verified token with the endpoint's scopes
    uint64_t missing = 0;             // no Bearer credentials
    uint64_t invalid = 0;             // a token that did not verify
    uint64_t insufficient_scope = 0;  // a verified token without an endpoint scope
    uint64_t tool_refused = 0;        // tools/call without the tool's scopes
  };
  Counts counts() const;
  // Verified tokens held now (for tests; at most kVerifiedCacheSize).
  size_t cached_tokens() const;
  // The key set in use now.
  std::shared_ptr<const Jwks> keys() const;

  // The RFC 9728 document, as JSON text.
  std::string metadata_json() const;
  // Where that document is, as a client derives it from `resource`.
  const std::string& metadata_url() const { return metadata_url_; }
  // Every scope a setting names, sorted, once each.
  std::vector<std::string> scopes_supported() const;
  const BearerOptions& options() const { return options_; }

 private:
  AuthVerdict refuse(int status, std::string_view error, std::string_view description,
                     const std::vector<std::string>& scopes) const;
  // When a recheck of jwks_path is due, one caller looks at the file and
  // swaps in a changed key set; the others go on with the set in use.
  void recheck_keys(int64_t now) const;

  BearerOptions options_;
  VerifyOptions verify_;
  const Clock& clock_;
  std::string metadata_url_;
  mutable std::atomic<uint64_t> accepted_{0}, missing_{0}, invalid_{0}, insufficient_{0}, tool_refused_{0};
  // Tokens that verified, by the SHA-256 of their text: a client sends one
  // token on every request, and checking its signature costs 27-80 µs of CPU
  // where a digest and a lookup add 2-3 µs (docs/benchmarks.md). At most
  // kVerifiedCacheSize entries (then cleared); a hit checks exp again against
  // the clock (nbf and iat, once passed, stay passed). Only tokens that
  // verified are kept, so a refused token is refused afresh every time.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, Claims> verified_;  // guarded by cache_mu_
  mutable uint64_t keys_generation_ = 0;                      // guarded by cache_mu_: bumped on a swap
  mutable std::mutex keys_mu_;
  mutable std::shared_ptr<const Jwks> keys_;  // guarded by keys_mu_
  mutable std::mutex reload_mu_;              // held by the one caller rechecking the file
  mutable std::atomic<int64_t> next_recheck_{0};
  mutable std::string file_identity_;  // guarded by reload_mu_: mtime and size last seen
};

inline constexpr size_t kVerifiedCacheSize = 4096;

// Settings' text forms, checked where the settings are read.
//
// An absolute http(s) URL without userinfo, query or fragment, of printable
// ASCII and at most 2048 bytes (issuer, resource).
Status check_url(std::string_view text);
// "a b c" (spaces or commas between) -> scopes; each printable ASCII without
// '"', '\\', ',' or '='; at most 64.
Result<std::vector<std::string>> parse_scope_list(std::string_view text);
// "tool=scope scope,tool2=scope" -> ToolScopes; a tool named twice or without
// a scope is an error.
Result<ToolScopes> parse_tool_scopes(std::string_view text);
// The RFC 9728 §3.1 metadata URL of `resource` (a URL check_url accepted).
std::string metadata_url_for(std::string_view resource);

}  // namespace memgate::mcp
