#include "memgate/mcp/bearer_settings.h"

#include <algorithm>

#include "memgate/base/units.h"

namespace memgate::mcp {
namespace {

constexpr size_t kMaxAudience = 2048;

}  // namespace

const std::vector<OptionRow<BearerSettings>>& bearer_rows(const std::string& section) {
  static const std::vector<OptionRow<BearerSettings>> rows = [&section] {
    auto row = [&section](const char* env, const char* flag, const char* def, const char* help) {
      return module_row(section, env, flag, def, help);
    };
    std::vector<OptionRow<BearerSettings>> r = {
        {row("MCP_AUTH_JWKS", "mcp-auth-jwks", "",
             "A JWKS file of RS256/ES256 public keys: when set, /mcp is an "
             "OAuth 2.1 resource server and every "
             "request needs an access token those keys signed"),
         [](const std::string& t, BearerSettings& s) {
           auto keys = Jwks::load_file(t);
           if (!keys.ok())
             return InvalidArgument("expected a JWKS file of RS256 or ES256 public keys (" + keys.status().message() +
                                    ")");
           s.options.keys = *keys;
           s.options.jwks_path = t;
           s.any_set = true;
           return Status::Ok();
         }},
        {row("MCP_AUTH_ISSUER", "mcp-auth-issuer", "",
             "The authorization server: a token's iss must equal it; the "
             "resource metadata lists it"),
         [](const std::string& t, BearerSettings& s) {
           if (Status st = check_url(t); !st.ok()) return st;
           s.options.issuer = t;
           s.any_set = true;
           return Status::Ok();
         }},
        {row("MCP_AUTH_AUDIENCE", "mcp-auth-audience", "",
             "What a token's aud must hold: /mcp's canonical URI (RFC 8707), "
             "e.g. https://mcp.example/mcp"),
         [](const std::string& t, BearerSettings& s) {
           if (t.empty() || t.size() > kMaxAudience || std::any_of(t.begin(), t.end(), [](char c) {
                 auto u = static_cast<unsigned char>(c);
                 return u <= 0x20 || u >= 0x7F || c == '"' || c == '\\';
               }))
             return InvalidArgument(
                 "expected printable ASCII without spaces "
                 "or quotes, at most 2048 bytes");
           s.options.audience = t;
           s.any_set = true;
           return Status::Ok();
         }},
        {[&] {
           SettingRow r = row("MCP_AUTH_RESOURCE", "mcp-auth-resource", "",
                              "/mcp's public URL, the resource of the RFC 9728 "
                              "metadata and of the challenges' "
                              "resource_metadata");
           r.default_note = "MCP_AUTH_AUDIENCE";
           return r;
         }(),
         [](const std::string& t, BearerSettings& s) {
           if (Status st = check_url(t); !st.ok()) return st;
           s.options.resource = t;
           s.any_set = true;
           return Status::Ok();
         }},
        {row("MCP_AUTH_SCOPES", "mcp-auth-scopes", "",
             "Scopes every /mcp request needs (space-separated); a token "
             "without one gets 403 insufficient_scope"),
         [](const std::string& t, BearerSettings& s) {
           auto scopes = parse_scope_list(t);
           if (!scopes.ok()) return scopes.status();
           s.options.required_scopes = std::move(*scopes);
           s.any_set = true;
           return Status::Ok();
         }},
        {row("MCP_AUTH_TOOL_SCOPES", "mcp-auth-tool-scopes", "",
             "Scopes a tool needs besides MCP_AUTH_SCOPES: tool=scope[ "
             "scope],... (e.g. get_document=kb.read)"),
         [](const std::string& t, BearerSettings& s) {
           auto tools = parse_tool_scopes(t);
           if (!tools.ok()) return tools.status();
           s.options.tool_scopes = std::move(*tools);
           s.any_set = true;
           return Status::Ok();
         }},
        {row("MCP_AUTH_JWKS_RECHECK", "mcp-auth-jwks-recheck", "30s",
             "How often /mcp looks at MCP_AUTH_JWKS for a changed key set (0s: never); a new file that does not "
             "parse keeps the keys in use"),
         [](const std::string& t, BearerSettings& s) {
           auto d = parse_duration(t);
           if (!d.ok() || *d > std::chrono::hours(1) || d->count() % 1000 != 0)
             return InvalidArgument("expected whole seconds up to 1h, such as 30s (0s: never)");
           s.options.jwks_recheck = std::chrono::duration_cast<std::chrono::seconds>(*d);
           return Status::Ok();
         }},
        {row("MCP_AUTH_CLOCK_SKEW", "mcp-auth-clock-skew", "60s",
             "Clock skew allowed on a token's exp, nbf and iat (0s..5m)"),
         [](const std::string& t, BearerSettings& s) {
           auto d = parse_duration(t);
           if (!d.ok() || *d > kMaxClockSkew || d->count() % 1000 != 0)
             return InvalidArgument("expected whole seconds from 0s to 5m, such as 60s");
           s.options.leeway = std::chrono::duration_cast<std::chrono::seconds>(*d);
           return Status::Ok();
         }},
    };
    return r;
  }();
  return rows;
}

Result<std::shared_ptr<const BearerAuth>> make_bearer_auth(BearerSettings s, const std::vector<std::string>& tools,
                                                           bool static_token) {
  BearerOptions& o = s.options;
  if (!o.keys) {
    if (s.any_set)
      return InvalidArgument(
          "MCP_AUTH_ISSUER, MCP_AUTH_AUDIENCE, MCP_AUTH_RESOURCE, "
          "MCP_AUTH_SCOPES and MCP_AUTH_TOOL_SCOPES take "
          "effect only with MCP_AUTH_JWKS: set it, or unset them");
    return std::shared_ptr<const BearerAuth>();
  }
  if (static_token)
    return InvalidArgument(
        "MCP_AUTH_TOKEN and MCP_AUTH_JWKS are exclusive: "
        "/mcp checks a static token or OAuth "
        "access tokens, not both");
  if (o.issuer.empty())
    return InvalidArgument(
        "MCP_AUTH_JWKS is set but MCP_AUTH_ISSUER is not: "
        "tokens are accepted from one issuer");
  if (o.audience.empty())
    return InvalidArgument(
        "MCP_AUTH_JWKS is set but MCP_AUTH_AUDIENCE is not: "
        "tokens must be for this resource");
  if (o.resource.empty()) {
    if (!check_url(o.audience).ok())
      return InvalidArgument(
          "MCP_AUTH_RESOURCE is unset and MCP_AUTH_AUDIENCE "
          "is not an http(s) URL to stand for "
          "it: set MCP_AUTH_RESOURCE to /mcp's public URL");
    o.resource = o.audience;
  }
  for (const auto& [tool, scopes] : o.tool_scopes)
    if (std::find(tools.begin(), tools.end(), tool) == tools.end()) {
      std::string known;
      for (const std::string& t : tools) known += (known.empty() ? "" : ", ") + t;
      return InvalidArgument("MCP_AUTH_TOOL_SCOPES names " + tool + ", which is not a tool of /mcp (" + known + ")");
    }
  return std::shared_ptr<const BearerAuth>(std::make_shared<BearerAuth>(std::move(o)));
}

}  // namespace memgate::mcp
