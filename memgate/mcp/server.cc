// The MCP dispatcher.
//
// handle() runs in a fixed order, cheapest and most fundamental checks first:
// HTTP method, Origin, bearer token (a static one, or an OAuth access token
// checked by BearerAuth; a tool's own scopes are checked when it is called), content type, JSON parse, JSON-RPC shape,
// then the protocol era and its headers, then the method. Each step that fails
// answers at once with the status and JSON-RPC error the spec names for it, so
// no later step ever sees a request an earlier one should have refused. The
// whole path keeps no state between requests: that is what lets a fleet serve
// MCP behind a plain load balancer.
//
// Exceptions stop here: boost::json throws on type mismatches only where we ask
// for a type we checked, and a tool that throws becomes -32603.
#include "memgate/mcp/server.h"

#include "memgate/http/media_type.h"
#include "memgate/http/origin.h"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <cctype>
#include <optional>

namespace memgate::mcp {
namespace {

namespace json = boost::json;

constexpr std::string_view kMetaVersion = "io.modelcontextprotocol/protocolVersion";
constexpr std::string_view kMetaCapabilities = "io.modelcontextprotocol/clientCapabilities";

bool contains_ci(std::string_view haystack, std::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    bool match = true;
    for (size_t j = 0; j < needle.size() && match; ++j)
      match = std::tolower(static_cast<unsigned char>(haystack[i + j])) ==
              std::tolower(static_cast<unsigned char>(needle[j]));
    if (match) return true;
  }
  return false;
}

// Compares without an early exit, so the time taken does not say how much matched.
bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// A header value safe to echo in JSON: printable ASCII, others as '?', at most 64 bytes.
std::string printable(std::string_view v) {
  std::string out;
  for (char c : v.substr(0, 64)) out += (c >= 0x20 && c < 0x7F) ? c : '?';
  return out;
}

json::object error_object(int code, std::string_view message, json::value data = nullptr) {
  json::object e{{"code", code}, {"message", message}};
  if (!data.is_null()) e["data"] = std::move(data);
  return e;
}

json::value error_reply(const json::value& id, int code, std::string_view message, json::value data = nullptr) {
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", error_object(code, message, std::move(data))}};
}

json::value supported_json() {
  json::array a;
  for (const std::string& v : McpServer::supported_versions()) a.emplace_back(v);
  return a;
}

// Cursors: what a client gets is base64url("c1:<source>:<position>"), the
// source's number in the registry and its own position in it. A cursor comes
// back from the client, so it is bounded and checked before anything uses it.
constexpr size_t kMaxCursor = 1024;
constexpr std::string_view kCursorTag = "c1:";
constexpr std::string_view kBase64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode_cursor(size_t source, std::string_view position) {
  std::string raw = std::string(kCursorTag) + std::to_string(source) + ":" + std::string(position);
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : raw) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kBase64Url[(bits >> count) & 0x3F];
    }
  }
  if (count > 0) out += kBase64Url[(bits << (6 - count)) & 0x3F];
  return out;
}

// The source and position a cursor names, or nullopt when it is not one of ours.
std::optional<std::pair<size_t, std::string>> decode_cursor(std::string_view cursor, size_t sources) {
  if (cursor.empty() || cursor.size() > kMaxCursor) return std::nullopt;
  std::string raw;
  uint32_t bits = 0;
  int count = 0;
  for (char c : cursor) {
    size_t v = kBase64Url.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      raw += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  if (raw.rfind(kCursorTag, 0) != 0) return std::nullopt;
  std::string_view rest = std::string_view(raw).substr(kCursorTag.size());
  size_t colon = rest.find(':');
  if (colon == 0 || colon == std::string_view::npos || colon > 4) return std::nullopt;
  size_t source = 0;
  for (char c : rest.substr(0, colon)) {
    if (c < '0' || c > '9') return std::nullopt;
    source = source * 10 + static_cast<size_t>(c - '0');
  }
  if (source >= sources) return std::nullopt;
  // Re-encoding must give the same text: no second spelling of one cursor.
  std::string position(rest.substr(colon + 1));
  if (encode_cursor(source, position) != cursor) return std::nullopt;
  return std::make_pair(source, std::move(position));
}

// A standard header's value: as sent, or the bytes inside =?base64?...?=
// (standard alphabet, padded); nullopt when that form does not decode.
std::optional<std::string> decode_header_value(std::string_view v) {
  constexpr std::string_view kPrefix = "=?base64?", kSuffix = "?=";
  if (v.size() < kPrefix.size() + kSuffix.size() || v.substr(0, kPrefix.size()) != kPrefix ||
      v.substr(v.size() - kSuffix.size()) != kSuffix)
    return std::string(v);
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string_view b64 = v.substr(kPrefix.size(), v.size() - kPrefix.size() - kSuffix.size());
  while (!b64.empty() && b64.back() == '=') b64.remove_suffix(1);
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : b64) {
    size_t d = kAlphabet.find(c);
    if (d == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(d);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  return out;
}

bool is_supported(std::string_view v) {
  const auto& all = McpServer::supported_versions();
  return std::find(all.begin(), all.end(), v) != all.end();
}

}  // namespace

// One parsed JSON-RPC request.
struct McpServer::Call {
  json::value id;
  std::string method;
  json::object params;
  bool stateless = false;
  std::optional<Claims> claims;  // the bearer's, when a BearerAuth checked the request
};

const std::vector<std::string>& McpServer::supported_versions() {
  static const std::vector<std::string> kVersions = {std::string(kStatelessVersion), std::string(kLatestLegacyVersion),
                                                     "2025-06-18", "2025-03-26"};
  return kVersions;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

McpServer::McpServer(ServerOptions options, std::shared_ptr<Registry> registry)
    : options_(std::move(options)), registry_(registry ? std::move(registry) : std::make_shared<Registry>()) {
  if (options_.resource_page_size == 0) options_.resource_page_size = 1;
}

void McpServer::add_tool(Tool tool) { registry_->add_tool(std::move(tool)); }

bool McpServer::origin_allowed(std::string_view origin) const {
  return http::origin_allowed(options_.allowed_origins, origin);
}

HttpReply McpServer::handle(const HttpExchange& ex) const {
  std::string_view accept = ex.header("Accept");
  bool sse = contains_ci(accept, "text/event-stream") && !contains_ci(accept, "application/json") &&
             !contains_ci(accept, "*/*");
  auto reply = [&](int status, const json::value& message) {
    HttpReply r;
    r.status = status;
    std::string text = json::serialize(message);
    if (sse && status == 200) {
      r.content_type = "text/event-stream";
      r.body = "event: message\ndata: " + text + "\n\n";
      r.headers.emplace_back("Cache-Control", "no-cache");
    } else {
      r.content_type = "application/json";
      r.body = std::move(text);
    }
    return r;
  };
  auto refuse = [&](int status, int code, std::string_view message, json::value data = nullptr) {
    return reply(status, error_reply(nullptr, code, message, std::move(data)));
  };

  if (ex.method != "POST") {
    HttpReply r = refuse(405, kInvalidRequest, "the MCP endpoint takes POST only (this server opens no stream)");
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  std::string_view origin = ex.header("Origin");
  if (!origin.empty() && !origin_allowed(origin)) return refuse(403, kInvalidRequest, "origin not allowed");
  std::optional<Claims> claims;
  if (options_.bearer) {
    AuthVerdict verdict = options_.bearer->authenticate(ex.header("Authorization"));
    if (!verdict.allowed()) {
      HttpReply r = refuse(verdict.status, kInvalidRequest, verdict.message);
      r.headers.emplace_back("WWW-Authenticate", std::move(verdict.www_authenticate));
      return r;
    }
    claims = std::move(verdict.claims);
  } else if (!options_.auth_token.empty()) {
    std::string_view auth = ex.header("Authorization");
    bool ok = auth.size() > 7 && contains_ci(auth.substr(0, 7), "bearer ") &&
              constant_time_equal(auth.substr(7), options_.auth_token);
    if (!ok) {
      HttpReply r = refuse(401, kInvalidRequest, "a valid bearer token is required");
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"memgate-mcp\"");
      return r;
    }
  }
  std::string_view content_type = ex.header("Content-Type");
  if (!content_type.empty() && !http::is_media_type(content_type, "application/json"))
    return refuse(415, kInvalidRequest, "the body must be application/json");

  json::error_code ec;
  json::parse_options po;
  po.max_depth = 64;
  json::value message = json::parse(ex.body, ec, {}, po);
  if (ec) return refuse(400, kParseError, "parse error: " + ec.message());
  if (message.is_array()) return refuse(400, kInvalidRequest, "batches are not supported: send one message per POST");
  if (!message.is_object()) return refuse(400, kInvalidRequest, "a JSON-RPC message is an object");
  const json::object& m = message.as_object();

  const json::value* jsonrpc = m.if_contains("jsonrpc");
  if (!jsonrpc || !jsonrpc->is_string() || jsonrpc->as_string() != "2.0")
    return refuse(400, kInvalidRequest, "jsonrpc must be \"2.0\"");
  const json::value* id = m.if_contains("id");
  if (id && !(id->is_string() || id->is_int64() || id->is_uint64()))
    return refuse(400, kInvalidRequest, "id must be a string or an integer");
  const json::value* method = m.if_contains("method");
  if (!method) {
    // A response to a request we never send, or junk: accept responses, refuse the rest.
    if (id && (m.contains("result") || m.contains("error"))) return HttpReply{202, {}, {}, {}};
    return refuse(400, kInvalidRequest, "a request needs a method");
  }
  if (!method->is_string()) return refuse(400, kInvalidRequest, "method must be a string");
  if (!id) return HttpReply{202, {}, {}, {}};  // a notification: accepted, nothing to say

  Call call;
  call.id = *id;
  call.claims = std::move(claims);
  call.method = std::string(method->as_string());
  if (const json::value* params = m.if_contains("params")) {
    if (!params->is_object())
      return reply(200, error_reply(call.id, kInvalidParams, "params must be an object"));
    call.params = params->as_object();
  }

  // The era, and the headers that must agree with the body.
  std::string_view header_version = ex.header("MCP-Protocol-Version");
  const json::object* meta = nullptr;
  if (const json::value* mv = call.params.if_contains("_meta"); mv && mv->is_object()) meta = &mv->as_object();
  const json::value* meta_version = meta ? meta->if_contains(kMetaVersion) : nullptr;
  if (call.method != "initialize" && meta_version) {
    if (!meta_version->is_string())
      return reply(400, error_reply(call.id, kInvalidParams, std::string(kMetaVersion) + " must be a string"));
    std::string_view v = meta_version->as_string();
    if (v != kStatelessVersion)
      return reply(400, error_reply(call.id, kUnsupportedVersion, "unsupported protocol version",
                                    json::object{{"supported", supported_json()}, {"requested", v}}));
    call.stateless = true;
    if (!header_version.empty() && header_version != v)
      return reply(400, error_reply(call.id, kHeaderMismatch, "MCP-Protocol-Version header does not match _meta"));
    const json::value* caps = meta->if_contains(kMetaCapabilities);
    if (!caps || !caps->is_object())
      return reply(400, error_reply(call.id, kInvalidParams, std::string(kMetaCapabilities) + " must be an object"));
    std::string_view header_method = ex.header("Mcp-Method");
    if (!header_method.empty() && header_method != call.method)
      return reply(400, error_reply(call.id, kHeaderMismatch, "Mcp-Method header does not match the body's method"));
    // Mcp-Name mirrors params.name (tools/call, prompts/get) or params.uri
    // (resources/read); a value that is not plain printable ASCII comes as
    // =?base64?...?=.
    std::string_view header_name = ex.header("Mcp-Name");
    std::string_view field = call.method == "resources/read" ? "uri"
                             : (call.method == "tools/call" || call.method == "prompts/get") ? "name"
                                                                                               : "";
    if (!header_name.empty() && !field.empty()) {
      const json::value* name = call.params.if_contains(field);
      std::optional<std::string> decoded = decode_header_value(header_name);
      if (!name || !name->is_string() || !decoded || name->as_string() != *decoded)
        return reply(400, error_reply(call.id, kHeaderMismatch,
                                      "Mcp-Name header does not match the body's " + std::string(field)));
    }
  } else if (!header_version.empty() && call.method != "initialize" && !is_supported(header_version)) {
    return reply(400, error_reply(call.id, kUnsupportedVersion, "unsupported protocol version",
                                  json::object{{"supported", supported_json()}, {"requested", printable(header_version)}}));
  }

  int status = 200;
  std::string challenge;
  json::value result;
  try {
    result = dispatch(call, &status, &challenge);
  } catch (const std::exception& e) {
    // The exception's text is ours to read, not the client's: it may name
    // files, keys or settings.
    spdlog::warn("mcp: {} failed: {}", printable(call.method), e.what());
    return reply(200, error_reply(call.id, kInternalError, "internal error"));
  }
  if (result.is_object() && result.as_object().contains("error")) {
    json::object out{{"jsonrpc", "2.0"}, {"id", call.id}, {"error", result.as_object().at("error")}};
    HttpReply r = reply(status, out);
    if (!challenge.empty()) r.headers.emplace_back("WWW-Authenticate", std::move(challenge));
    return r;
  }
  if (call.stateless && result.is_object()) result.as_object()["resultType"] = "complete";
  return reply(status, json::object{{"jsonrpc", "2.0"}, {"id", call.id}, {"result", std::move(result)}});
}

json::value McpServer::dispatch(const Call& call, int* http_status, std::string* challenge) const {
  auto fail = [](int code, std::string_view message) { return json::object{{"error", error_object(code, message)}}; };
  // One snapshot per request: a module adding to the registry meanwhile changes
  // the next request, never this one halfway.
  std::shared_ptr<const Catalog> catalog = registry_->catalog();
  const Catalog& c = *catalog;
  auto cached = [&](json::object r) {
    if (call.stateless) {
      r["ttlMs"] = options_.list_ttl_ms;
      r["cacheScope"] = "public";
    }
    return r;
  };
  json::object server_info{{"name", options_.name}, {"version", options_.version}};
  if (call.method == "initialize") {
    const json::value* requested = call.params.if_contains("protocolVersion");
    if (!requested || !requested->is_string()) return fail(kInvalidParams, "protocolVersion must be a string");
    // Echo a version of the handshake era we speak; otherwise offer ours. The
    // stateless era has no handshake, so a request for it gets ours too.
    std::string chosen(kLatestLegacyVersion);
    std::string_view asked = requested->as_string();
    if (is_supported(asked) && asked != kStatelessVersion) chosen = std::string(asked);
    // The handshake era has logging/setLevel; the server accepts a level and,
    // writing nothing to a client outside a reply, never has a message to
    // filter. The stateless era sets no level (discover does not offer it).
    json::object caps = capabilities(c);
    caps["logging"] = json::object{};
    json::object r{{"protocolVersion", chosen}, {"capabilities", std::move(caps)}, {"serverInfo", server_info}};
    if (!options_.instructions.empty()) r["instructions"] = options_.instructions;
    return r;
  }
  if (call.method == "ping") return json::object{};
  if (call.method == "logging/setLevel" && !call.stateless) {
    static constexpr std::string_view kLevels[] = {"debug", "info",     "notice", "warning",
                                                   "error", "critical", "alert",  "emergency"};
    const json::value* level = call.params.if_contains("level");
    bool known = false;
    if (level && level->is_string())
      for (std::string_view l : kLevels) known = known || level->as_string() == l;
    if (!known) return fail(kInvalidParams, "level must be one of debug, info, notice, warning, error, critical, alert, emergency");
    return json::object{};
  }
  if (call.method == "server/discover") {
    json::object r{{"supportedVersions", supported_json()},
                   {"capabilities", capabilities(c)},
                   {"serverInfo", server_info}};
    if (!options_.instructions.empty()) r["instructions"] = options_.instructions;
    return cached(std::move(r));
  }
  // A method of a capability the registry does not hold is unknown here.
  bool resources = !c.sources.empty() || !c.templates.empty();
  if (call.method == "tools/list" && !c.tools.empty()) {
    json::array list;
    for (const Tool& t : c.tools) {
      json::object o{{"name", t.name}, {"description", t.description}, {"inputSchema", t.input_schema}};
      if (!t.title.empty()) o["title"] = t.title;
      if (t.output_schema) o["outputSchema"] = *t.output_schema;
      json::object annotations{{"readOnlyHint", t.read_only}, {"openWorldHint", false}};
      if (!t.title.empty()) annotations["title"] = t.title;
      o["annotations"] = std::move(annotations);
      list.push_back(std::move(o));
    }
    return cached(json::object{{"tools", std::move(list)}});
  }
  if (call.method == "tools/call" && !c.tools.empty()) return tools_call(c, call, http_status, challenge);
  if (call.method == "resources/list" && resources) return resources_list(c, call);
  if (call.method == "resources/read" && resources) return resources_read(c, call);
  if (call.method == "resources/templates/list" && resources) {
    json::array list;
    for (const ResourceTemplate& t : c.templates) {
      json::object o{{"uriTemplate", t.uri_template}, {"name", t.name}};
      if (!t.title.empty()) o["title"] = t.title;
      if (!t.description.empty()) o["description"] = t.description;
      if (!t.mime_type.empty()) o["mimeType"] = t.mime_type;
      list.push_back(std::move(o));
    }
    return cached(json::object{{"resourceTemplates", std::move(list)}});
  }
  if (call.method == "prompts/list" && !c.prompts.empty()) {
    json::array list;
    for (const Prompt& p : c.prompts) {
      json::object o{{"name", p.name}};
      if (!p.title.empty()) o["title"] = p.title;
      if (!p.description.empty()) o["description"] = p.description;
      json::array args;
      for (const PromptArgument& a : p.arguments)
        args.push_back(json::object{{"name", a.name}, {"description", a.description}, {"required", a.required}});
      o["arguments"] = std::move(args);
      list.push_back(std::move(o));
    }
    return cached(json::object{{"prompts", std::move(list)}});
  }
  if (call.method == "prompts/get" && !c.prompts.empty()) return prompts_get(c, call);
  if (call.method == "completion/complete" && !c.completers.empty()) return complete(c, call);
  if (call.stateless) *http_status = 404;
  return fail(kMethodNotFound, "method not found: " + call.method);
}

json::object McpServer::capabilities(const Catalog& c) const {
  json::object caps;
  if (!c.tools.empty()) caps["tools"] = json::object{{"listChanged", false}};
  if (!c.sources.empty() || !c.templates.empty())
    caps["resources"] = json::object{{"subscribe", false}, {"listChanged", false}};
  if (!c.prompts.empty()) caps["prompts"] = json::object{{"listChanged", false}};
  if (!c.completers.empty()) caps["completions"] = json::object{};
  return caps;
}

namespace {

json::object invalid(std::string_view message) {
  return json::object{{"error", error_object(kInvalidParams, message)}};
}
json::object internal(std::string_view what, const Status& st) {
  spdlog::warn("mcp: {} failed: {}", what, st.to_string());
  return json::object{{"error", error_object(kInternalError, "internal error")}};
}

// A string parameter of at most `max` bytes, or nullptr.
const json::string* string_param(const json::object& params, std::string_view key, size_t max) {
  const json::value* v = params.if_contains(key);
  if (!v || !v->is_string() || v->as_string().size() > max) return nullptr;
  return &v->as_string();
}

}  // namespace

json::value McpServer::tools_call(const Catalog& c, const Call& call, int* http_status, std::string* challenge) const {
  const json::value* name = call.params.if_contains("name");
  if (!name || !name->is_string()) return invalid("name must be a string");
  const Tool* tool = nullptr;
  for (const Tool& t : c.tools)
    if (t.name == name->as_string()) tool = &t;
  if (!tool) return invalid("unknown tool: " + std::string(name->as_string()));
  if (options_.bearer && call.claims) {
    AuthVerdict verdict = options_.bearer->authorize_tool(*call.claims, tool->name);
    if (!verdict.allowed()) {
      *http_status = verdict.status;
      *challenge = std::move(verdict.www_authenticate);
      return json::object{{"error", error_object(kInvalidRequest, verdict.message)}};
    }
  }
  json::object args;
  if (const json::value* a = call.params.if_contains("arguments")) {
    if (!a->is_object()) return invalid("arguments must be an object");
    args = a->as_object();
  }
  ToolResult out = tool->run(args);
  json::object r{{"content", json::array{json::object{{"type", "text"}, {"text", out.text}}}},
                 {"isError", out.is_error}};
  if (out.structured && !out.is_error) r["structuredContent"] = std::move(*out.structured);
  return r;
}

// Fills one page from the sources in registration order, from where the cursor
// says; the next cursor names the source and position to go on from.
json::value McpServer::resources_list(const Catalog& c, const Call& call) const {
  size_t source = 0;
  std::string after;
  if (const json::value* cv = call.params.if_contains("cursor"); cv && !cv->is_null()) {
    auto decoded = cv->is_string() ? decode_cursor(cv->as_string(), c.sources.size()) : std::nullopt;
    if (!decoded) return invalid("invalid cursor");
    source = decoded->first;
    after = std::move(decoded->second);
  }
  const size_t limit = options_.resource_page_size;
  json::array items;
  std::string next;
  while (source < c.sources.size()) {
    if (items.size() >= limit) {
      next = encode_cursor(source, "");
      break;
    }
    auto page = c.sources[source].list(after, limit - items.size());
    if (!page.ok()) {
      if (page.status().code() == Code::kInvalidArgument) return invalid("invalid cursor");
      return internal("resources/list", page.status());
    }
    size_t room = limit - items.size();
    if (page->items.size() > room) page->items.resize(room);
    for (Resource& r : page->items) {
      json::object o{{"uri", r.uri}, {"name", r.name}};
      if (!r.title.empty()) o["title"] = r.title;
      if (!r.description.empty()) o["description"] = r.description;
      if (!r.mime_type.empty()) o["mimeType"] = r.mime_type;
      items.push_back(std::move(o));
    }
    // A source that names the position it was asked for would loop a client
    // for ever: that is the end of it.
    if (!page->next.empty() && page->next != after && !page->items.empty()) {
      next = encode_cursor(source, page->next);
      break;
    }
    ++source;
    after.clear();
  }
  json::object r{{"resources", std::move(items)}};
  if (!next.empty()) r["nextCursor"] = next;
  if (call.stateless) {
    r["ttlMs"] = options_.list_ttl_ms;
    r["cacheScope"] = "public";
  }
  return r;
}

json::value McpServer::resources_read(const Catalog& c, const Call& call) const {
  constexpr size_t kMaxUri = 8192;
  const json::string* uri = string_param(call.params, "uri", kMaxUri);
  if (!uri) return invalid("uri must be a string of at most 8192 bytes");
  for (const ResourceSource& s : c.sources) {
    auto contents = s.read(*uri);
    if (!contents.ok() && contents.status().code() == Code::kNotFound) continue;
    if (!contents.ok() && contents.status().code() == Code::kInvalidArgument)
      return invalid(contents.status().message());
    if (!contents.ok()) return internal("resources/read", contents.status());
    json::array list;
    for (ResourceText& t : *contents)
      list.push_back(json::object{{"uri", t.uri}, {"mimeType", t.mime_type}, {"text", std::move(t.text)}});
    json::object r{{"contents", std::move(list)}};
    if (call.stateless) {
      r["ttlMs"] = options_.list_ttl_ms;
      r["cacheScope"] = "public";
    }
    return r;
  }
  // -32602 on every revision, as 2026-07-28 requires (2025's -32002 is what
  // clients accept from older servers; they take this one too).
  return json::object{{"error", error_object(kInvalidParams, "resource not found", json::object{{"uri", *uri}})}};
}

json::value McpServer::prompts_get(const Catalog& c, const Call& call) const {
  const json::value* name = call.params.if_contains("name");
  if (!name || !name->is_string()) return invalid("name must be a string");
  const Prompt* prompt = nullptr;
  for (const Prompt& p : c.prompts)
    if (p.name == name->as_string()) prompt = &p;
  if (!prompt) return invalid("unknown prompt: " + printable(name->as_string()));
  PromptArguments args;
  if (const json::value* a = call.params.if_contains("arguments"); a && !a->is_null()) {
    if (!a->is_object()) return invalid("arguments must be an object");
    for (const auto& [key, value] : a->as_object()) {
      bool known = false;
      for (const PromptArgument& d : prompt->arguments) known = known || d.name == key;
      if (!known) continue;  // an argument the prompt does not take is ignored
      if (!value.is_string()) return invalid("argument " + printable(key) + " must be a string");
      if (value.as_string().size() > kMaxPromptArgument)
        return invalid("argument " + printable(key) + " is longer than " + std::to_string(kMaxPromptArgument) +
                       " bytes");
      args.emplace(std::string(key), std::string(value.as_string()));
    }
  }
  for (const PromptArgument& d : prompt->arguments)
    if (d.required && !args.count(d.name)) return invalid("missing required argument: " + d.name);
  auto filled = prompt->get(args);
  if (!filled.ok()) {
    if (filled.status().code() == Code::kInvalidArgument) return invalid(filled.status().message());
    return internal("prompts/get", filled.status());
  }
  json::array messages;
  for (PromptMessage& m : filled->messages)
    messages.push_back(json::object{{"role", m.role},
                                    {"content", json::object{{"type", "text"}, {"text", std::move(m.text)}}}});
  json::object r{{"messages", std::move(messages)}};
  if (!filled->description.empty()) r["description"] = filled->description;
  return r;
}

json::value McpServer::complete(const Catalog& c, const Call& call) const {
  const json::value* ref = call.params.if_contains("ref");
  const json::value* argument = call.params.if_contains("argument");
  if (!ref || !ref->is_object() || !argument || !argument->is_object())
    return invalid("ref and argument must be objects");
  const json::string* type = string_param(ref->as_object(), "type", 64);
  if (!type || (*type != "ref/resource" && *type != "ref/prompt"))
    return invalid("ref.type must be ref/resource or ref/prompt");
  Completer::Ref kind = *type == "ref/resource" ? Completer::Ref::kResource : Completer::Ref::kPrompt;
  const json::string* target = string_param(ref->as_object(), kind == Completer::Ref::kResource ? "uri" : "name", 8192);
  const json::string* arg_name = string_param(argument->as_object(), "name", 256);
  const json::string* value = string_param(argument->as_object(), "value", 1000);
  if (!target || !arg_name || !value) return invalid("ref's uri or name, argument.name and argument.value must be strings");
  json::array values;
  bool more = false;
  for (const Completer& k : c.completers) {
    if (k.ref != kind || k.target != *target || k.argument != *arg_name) continue;
    auto found = k.complete(*value, kMaxCompletionValues, &more);
    if (!found.ok()) {
      if (found.status().code() == Code::kInvalidArgument) return invalid(found.status().message());
      return internal("completion/complete", found.status());
    }
    for (std::string& v : *found) {
      if (values.size() == kMaxCompletionValues) {
        more = true;
        break;
      }
      values.emplace_back(std::move(v));
    }
    break;
  }
  // No completer for this argument: no suggestions (not an error, as the spec has it).
  return json::object{{"completion", json::object{{"values", std::move(values)}, {"hasMore", more}}}};
}

}  // namespace memgate::mcp
