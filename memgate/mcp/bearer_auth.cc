// Bearer tokens on /mcp.
//
// The order of checks is the order of what a client can fix: no token (go and
// get one: the challenge points at the metadata), a token that is not good
// (get another), a good token without the scopes this request needs (ask for
// them: the challenge names them). Every challenge carries resource_metadata,
// so a client that sees any of them can find the authorization server.
#include "memgate/mcp/bearer_auth.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <set>

namespace memgate::mcp {
namespace {

namespace json = boost::json;

constexpr size_t kMaxUrl = 2048;
constexpr size_t kMaxScopes = 64;
constexpr size_t kMaxScope = 256;

bool scope_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7F && c != '"' && c != '\\' && c != ',' && c != '=';
}

bool token68_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
         c == '/' || c == '=';
}

// The SHA-256 of `text`, as 32 raw bytes ("" if OpenSSL fails, which then
// only misses the cache).
std::string sha256(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(text.data(), text.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
  return std::string(reinterpret_cast<const char*>(md), len);
}

// What tells a changed file: its modification time (ns) and size; "" when it
// cannot be read.
std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
         std::to_string(st.st_size);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : " ") + s;
  return out;
}

}  // namespace

Status check_url(std::string_view text) {
  if (text.empty() || text.size() > kMaxUrl) return InvalidArgument("expected an http(s) URL of at most 2048 bytes");
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F || c == '"' || c == '\\')
      return InvalidArgument(
          "expected an http(s) URL of printable ASCII "
          "without spaces or quotes");
  }
  size_t scheme = text.rfind("https://", 0) == 0 ? 8 : text.rfind("http://", 0) == 0 ? 7 : 0;
  if (scheme == 0) return InvalidArgument("expected an absolute http:// or https:// URL");
  std::string_view rest = text.substr(scheme);
  std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.empty()) return InvalidArgument("expected a URL with a host");
  if (authority.find('@') != std::string_view::npos) return InvalidArgument("expected a URL without credentials");
  if (text.find('?') != std::string_view::npos || text.find('#') != std::string_view::npos)
    return InvalidArgument("expected a URL without a query or a fragment");
  return Status::Ok();
}

Result<std::vector<std::string>> parse_scope_list(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && text[end] != ' ' && text[end] != ',') {
      if (!scope_char(text[end])) return InvalidArgument("expected scopes of printable ASCII without \" \\ , or =");
      ++end;
    }
    if (end - i > kMaxScope) return InvalidArgument("expected scopes of at most 256 bytes each");
    std::string scope(text.substr(i, end - i));
    if (std::find(out.begin(), out.end(), scope) == out.end()) out.push_back(std::move(scope));
    if (out.size() > kMaxScopes) return InvalidArgument("expected at most 64 scopes");
    i = end;
  }
  return out;
}

Result<ToolScopes> parse_tool_scopes(std::string_view text) {
  ToolScopes out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) {
      size_t eq = item.find('=');
      if (eq == 0 || eq == std::string_view::npos)
        return InvalidArgument("expected tool=scope[ scope...] entries separated by commas");
      std::string_view tool = item.substr(0, eq);
      while (!tool.empty() && tool.back() == ' ') tool.remove_suffix(1);
      for (char c : tool)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
          return InvalidArgument("expected tool names of letters, digits, _ - and .");
      auto scopes = parse_scope_list(item.substr(eq + 1));
      if (!scopes.ok()) return scopes.status();
      if (scopes->empty()) return InvalidArgument("expected at least one scope after each tool=");
      if (!out.emplace(std::string(tool), std::move(*scopes)).second) return InvalidArgument("expected each tool once");
      if (out.size() > kMaxScopes) return InvalidArgument("expected at most 64 tools");
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string metadata_url_for(std::string_view resource) {
  size_t scheme_end = resource.find("://");
  size_t path = scheme_end == std::string_view::npos ? std::string_view::npos : resource.find('/', scheme_end + 3);
  std::string_view origin = resource.substr(0, path);
  std::string_view suffix = path == std::string_view::npos ? std::string_view() : resource.substr(path);
  if (suffix == "/") suffix = {};
  return std::string(origin) + std::string(kResourceMetadataPath) + std::string(suffix);
}

BearerAuth::BearerAuth(BearerOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock), metadata_url_(metadata_url_for(options_.resource)) {
  options_.leeway = std::clamp(options_.leeway, std::chrono::seconds(0), kMaxClockSkew);
  verify_ = {options_.issuer, options_.audience, options_.leeway};
  keys_ = options_.keys;
  if (!options_.jwks_path.empty()) {
    file_identity_ = file_identity(options_.jwks_path);
    next_recheck_ = clock_.unix_millis() / 1000 + options_.jwks_recheck.count();
  }
}

AuthVerdict BearerAuth::refuse(int status, std::string_view error, std::string_view description,
                               const std::vector<std::string>& scopes) const {
  AuthVerdict v;
  v.status = status;
  std::string c = "Bearer resource_metadata=\"" + metadata_url_ + "\"";
  if (!error.empty()) c += ", error=\"" + std::string(error) + "\"";
  if (!scopes.empty()) c += ", scope=\"" + join(scopes) + "\"";
  if (!description.empty()) c += ", error_description=\"" + std::string(description) + "\"";
  v.www_authenticate = std::move(c);
  v.message = description.empty() ? "a bearer token is required" : std::string(description);
  return v;
}

AuthVerdict BearerAuth::authenticate(std::string_view authorization) const {
  constexpr std::string_view kScheme = "bearer";
  bool bearer = authorization.size() > kScheme.size() && authorization[kScheme.size()] == ' ';
  for (size_t i = 0; bearer && i < kScheme.size(); ++i)
    bearer = std::tolower(static_cast<unsigned char>(authorization[i])) == kScheme[i];
  // No credentials of our scheme: the bare challenge (RFC 6750 §3.1 names no
  // error).
  if (!bearer) {
    missing_.fetch_add(1, std::memory_order_relaxed);
    return refuse(401, "", "", options_.required_scopes);
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  bool shaped = !token.empty() && token.size() <= kMaxTokenBytes;
  for (size_t i = 0; shaped && i < token.size(); ++i) shaped = token68_char(token[i]);
  if (!shaped) {
    invalid_.fetch_add(1, std::memory_order_relaxed);
    return refuse(401, "invalid_token", "the Authorization header is not Bearer and one token", {});
  }

  const int64_t now = clock_.unix_millis() / 1000;
  recheck_keys(now);
  const std::string digest = sha256(token);
  std::optional<Claims> claims;
  uint64_t generation = 0;
  if (!digest.empty()) {
    std::lock_guard lock(cache_mu_);
    generation = keys_generation_;
    if (auto it = verified_.find(digest); it != verified_.end()) {
      if (now < it->second.expires_at + options_.leeway.count())
        claims = it->second;
      else
        verified_.erase(it);  // expired: verify_jwt says so below
    }
  }
  if (!claims) {
    std::shared_ptr<const Jwks> set = keys();
    auto verified = verify_jwt(token, *set, verify_, now);
    if (!verified.ok()) {
      spdlog::debug("mcp: bearer token refused: {}", verified.status().message());
      invalid_.fetch_add(1, std::memory_order_relaxed);
      return refuse(401, "invalid_token", verified.status().message(), {});
    }
    claims = std::move(*verified);
    if (!digest.empty()) {
      std::lock_guard lock(cache_mu_);
      // Not when the key set was swapped meanwhile: the token may be of a key
      // that is gone.
      if (generation == keys_generation_) {
        if (verified_.size() >= kVerifiedCacheSize) verified_.clear();
        verified_.emplace(digest, *claims);
      }
    }
  }
  for (const std::string& s : options_.required_scopes)
    if (!claims->has_scope(s)) {
      insufficient_.fetch_add(1, std::memory_order_relaxed);
      return refuse(403, "insufficient_scope", "the token lacks a scope this endpoint needs", options_.required_scopes);
    }
  accepted_.fetch_add(1, std::memory_order_relaxed);
  AuthVerdict ok;
  ok.claims = std::move(*claims);
  return ok;
}

AuthVerdict BearerAuth::authorize_tool(const Claims& claims, std::string_view tool) const {
  auto it = options_.tool_scopes.find(tool);
  if (it == options_.tool_scopes.end()) return {};
  for (const std::string& s : it->second) {
    if (claims.has_scope(s)) continue;
    // What the request needs as a whole: the endpoint's scopes and the tool's.
    std::vector<std::string> needed = options_.required_scopes;
    for (const std::string& t : it->second)
      if (std::find(needed.begin(), needed.end(), t) == needed.end()) needed.push_back(t);
    tool_refused_.fetch_add(1, std::memory_order_relaxed);
    return refuse(403, "insufficient_scope", "the token lacks a scope this tool needs", needed);
  }
  return {};
}

std::shared_ptr<const Jwks> BearerAuth::keys() const {
  std::lock_guard lock(keys_mu_);
  return keys_;
}

void BearerAuth::recheck_keys(int64_t now) const {
  if (options_.jwks_path.empty() || options_.jwks_recheck.count() <= 0) return;
  if (now < next_recheck_.load(std::memory_order_relaxed)) return;
  std::unique_lock reload(reload_mu_, std::try_to_lock);
  if (!reload.owns_lock() || now < next_recheck_.load(std::memory_order_relaxed)) return;
  next_recheck_.store(now + options_.jwks_recheck.count(), std::memory_order_relaxed);
  std::string identity = file_identity(options_.jwks_path);
  if (identity == file_identity_) return;
  file_identity_ = identity;
  auto loaded = Jwks::load_file(options_.jwks_path);
  if (!loaded.ok()) {
    spdlog::warn("mcp: MCP_AUTH_JWKS {} changed but cannot be used ({}); the {} keys in use stay", options_.jwks_path,
                 loaded.status().message(), keys()->size());
    return;
  }
  size_t count = (*loaded)->size();
  {
    std::lock_guard lock(keys_mu_);
    keys_ = std::move(*loaded);
  }
  {
    std::lock_guard lock(cache_mu_);
    verified_.clear();
    ++keys_generation_;
  }
  spdlog::info("mcp: MCP_AUTH_JWKS {} changed: {} keys in use now", options_.jwks_path, count);
}

size_t BearerAuth::cached_tokens() const {
  std::lock_guard lock(cache_mu_);
  return verified_.size();
}

BearerAuth::Counts BearerAuth::counts() const {
  Counts c;
  c.accepted = accepted_.load(std::memory_order_relaxed);
  c.missing = missing_.load(std::memory_order_relaxed);
  c.invalid = invalid_.load(std::memory_order_relaxed);
  c.insufficient_scope = insufficient_.load(std::memory_order_relaxed);
  c.tool_refused = tool_refused_.load(std::memory_order_relaxed);
  return c;
}

std::vector<std::string> BearerAuth::scopes_supported() const {
  std::set<std::string> all(options_.required_scopes.begin(), options_.required_scopes.end());
  for (const auto& [tool, scopes] : options_.tool_scopes) all.insert(scopes.begin(), scopes.end());
  return {all.begin(), all.end()};
}

std::string BearerAuth::metadata_json() const {
  json::array scopes;
  for (const std::string& s : scopes_supported()) scopes.emplace_back(s);
  json::object doc{{"resource", options_.resource},
                   {"authorization_servers", json::array{json::value(options_.issuer)}},
                   {"scopes_supported", std::move(scopes)},
                   {"bearer_methods_supported", json::array{"header"}},
                   {"resource_name", "memgate knowledge base (MCP)"}};
  return json::serialize(doc);
}

}  // namespace memgate::mcp
