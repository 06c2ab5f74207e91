// The MCP dispatcher.
//
// handle() runs in a fixed order, cheapest and most fundamental checks first:
// HTTP method, Origin, bearer token, content type, JSON parse, JSON-RPC shape,
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

McpServer::McpServer(ServerOptions options) : options_(std::move(options)) {}

void McpServer::add_tool(Tool tool) { tools_.push_back(std::move(tool)); }

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
  if (!options_.auth_token.empty()) {
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
    std::string_view header_name = ex.header("Mcp-Name");
    if (!header_name.empty()) {
      const json::value* name = call.params.if_contains("name");
      if (!name || !name->is_string() || name->as_string() != header_name)
        return reply(400, error_reply(call.id, kHeaderMismatch, "Mcp-Name header does not match the body's name"));
    }
  } else if (!header_version.empty() && call.method != "initialize" && !is_supported(header_version)) {
    return reply(400, error_reply(call.id, kUnsupportedVersion, "unsupported protocol version",
                                  json::object{{"supported", supported_json()}, {"requested", printable(header_version)}}));
  }

  int status = 200;
  json::value result;
  try {
    result = dispatch(call, &status);
  } catch (const std::exception& e) {
    // The exception's text is ours to read, not the client's: it may name
    // files, keys or settings.
    spdlog::warn("mcp: {} failed: {}", printable(call.method), e.what());
    return reply(200, error_reply(call.id, kInternalError, "internal error"));
  }
  if (result.is_object() && result.as_object().contains("error")) {
    json::object out{{"jsonrpc", "2.0"}, {"id", call.id}, {"error", result.as_object().at("error")}};
    return reply(status, out);
  }
  if (call.stateless && result.is_object()) result.as_object()["resultType"] = "complete";
  return reply(status, json::object{{"jsonrpc", "2.0"}, {"id", call.id}, {"result", std::move(result)}});
}

json::value McpServer::dispatch(const Call& call, int* http_status) const {
  auto fail = [](int code, std::string_view message) { return json::object{{"error", error_object(code, message)}}; };
  json::object server_info{{"name", options_.name}, {"version", options_.version}};
  json::object capabilities{{"tools", json::object{{"listChanged", false}}}};
  if (call.method == "initialize") {
    const json::value* requested = call.params.if_contains("protocolVersion");
    if (!requested || !requested->is_string()) return fail(kInvalidParams, "protocolVersion must be a string");
    // Echo a version of the handshake era we speak; otherwise offer ours. The
    // stateless era has no handshake, so a request for it gets ours too.
    std::string chosen(kLatestLegacyVersion);
    std::string_view asked = requested->as_string();
    if (is_supported(asked) && asked != kStatelessVersion) chosen = std::string(asked);
    json::object r{{"protocolVersion", chosen}, {"capabilities", capabilities}, {"serverInfo", server_info}};
    if (!options_.instructions.empty()) r["instructions"] = options_.instructions;
    return r;
  }
  if (call.method == "ping") return json::object{};
  if (call.method == "server/discover") {
    json::object r{{"supportedVersions", supported_json()},
                   {"capabilities", capabilities},
                   {"serverInfo", server_info},
                   {"ttlMs", options_.list_ttl_ms},
                   {"cacheScope", "public"}};
    if (!options_.instructions.empty()) r["instructions"] = options_.instructions;
    return r;
  }
  if (call.method == "tools/list") return tools_list(call.stateless);
  if (call.method == "tools/call") return tools_call(call, http_status);
  if (call.stateless) *http_status = 404;
  return fail(kMethodNotFound, "method not found: " + call.method);
}

json::object McpServer::tools_list(bool stateless) const {
  json::array list;
  for (const Tool& t : tools_) {
    json::object o{{"name", t.name}, {"description", t.description}, {"inputSchema", t.input_schema}};
    if (!t.title.empty()) o["title"] = t.title;
    if (t.output_schema) o["outputSchema"] = *t.output_schema;
    json::object annotations{{"readOnlyHint", t.read_only}, {"openWorldHint", false}};
    if (!t.title.empty()) annotations["title"] = t.title;
    o["annotations"] = std::move(annotations);
    list.push_back(std::move(o));
  }
  json::object r{{"tools", std::move(list)}};
  if (stateless) {
    r["ttlMs"] = options_.list_ttl_ms;
    r["cacheScope"] = "public";
  }
  return r;
}

json::value McpServer::tools_call(const Call& call, int*) const {
  auto fail = [](std::string_view message) {
    return json::object{{"error", error_object(kInvalidParams, message)}};
  };
  const json::value* name = call.params.if_contains("name");
  if (!name || !name->is_string()) return fail("name must be a string");
  const Tool* tool = nullptr;
  for (const Tool& t : tools_)
    if (t.name == name->as_string()) tool = &t;
  if (!tool) return fail("unknown tool: " + std::string(name->as_string()));
  json::object args;
  if (const json::value* a = call.params.if_contains("arguments")) {
    if (!a->is_object()) return fail("arguments must be an object");
    args = a->as_object();
  }
  ToolResult out = tool->run(args);
  json::object r{{"content", json::array{json::object{{"type", "text"}, {"text", out.text}}}},
                 {"isError", out.is_error}};
  if (out.structured && !out.is_error) r["structuredContent"] = std::move(*out.structured);
  return r;
}

}  // namespace memgate::mcp
