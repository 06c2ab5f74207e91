// libFuzzer target: the MCP JSON-RPC dispatcher. The first byte picks the HTTP
// method and which headers are sent (Accept, Origin, Authorization,
// MCP-Protocol-Version, Mcp-Method, Mcp-Name, with values cut from the input);
// the rest is the body. Whatever the bytes, handle() must not crash or throw,
// must answer with a status among those the transport uses, a reply with a body
// must be JSON (or one SSE event carrying JSON), a 202 has no body, and the
// configured token never appears in a reply.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "memgate/mcp/server.h"

namespace {

namespace json = boost::json;
using memgate::mcp::HttpExchange;
using memgate::mcp::McpServer;

McpServer& server() {
  static McpServer* s = [] {
    memgate::mcp::ServerOptions o;
    o.auth_token = "fuzz-secret-token";
    auto* srv = new McpServer(o);
    memgate::mcp::Tool echo;
    echo.name = "echo";
    echo.description = "echo";
    echo.input_schema = json::object{{"type", "object"}};
    echo.output_schema = json::object{{"type", "object"}};
    echo.run = [](const json::object& args) {
      return memgate::mcp::ToolResult{json::serialize(args), args, false};
    };
    srv->add_tool(echo);
    return srv;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  // Header values are short slices of the input, split at the first newlines.
  std::string_view values[4];
  for (auto& v : values) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos || nl > 64) break;
    v = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
  }
  std::string body(rest);
  HttpExchange ex;
  ex.method = (flags & 0x80) ? ((flags & 0x40) ? "GET" : "DELETE") : "POST";
  ex.body = body;
  ex.header = [&](std::string_view name) -> std::string_view {
    if (name == "Authorization") return (flags & 1) ? "Bearer fuzz-secret-token" : values[0];
    if (name == "Accept") return (flags & 2) ? "text/event-stream" : "application/json, text/event-stream";
    if (name == "Origin") return (flags & 4) ? values[1] : std::string_view();
    if (name == "MCP-Protocol-Version") return (flags & 8) ? values[2] : std::string_view();
    if (name == "Mcp-Method") return (flags & 16) ? values[3] : std::string_view();
    if (name == "Mcp-Name") return (flags & 32) ? values[2] : std::string_view();
    if (name == "Content-Type") return "application/json";
    return {};
  };
  memgate::mcp::HttpReply r = server().handle(ex);
  switch (r.status) {
    case 200: case 202: case 400: case 401: case 403: case 404: case 405: case 415: break;
    default: std::abort();
  }
  if (r.status == 202 && !r.body.empty()) std::abort();
  if (r.body.find("fuzz-secret-token") != std::string::npos) {
    // Only an echo of what the client itself sent may carry it.
    std::string_view input(reinterpret_cast<const char*>(data), size);
    if (input.find("fuzz-secret-token") == std::string_view::npos) std::abort();
  }
  if (!r.body.empty()) {
    std::string_view payload = r.body;
    if (r.content_type == "text/event-stream") {
      if (payload.substr(0, 21) != "event: message\ndata: ") std::abort();
      payload.remove_prefix(21);
      if (payload.size() < 2 || payload.substr(payload.size() - 2) != "\n\n") std::abort();
      payload.remove_suffix(2);
    }
    json::error_code ec;
    json::value v = json::parse(payload, ec);
    if (ec || !v.is_object()) std::abort();
    if (v.as_object().if_contains("jsonrpc") == nullptr) std::abort();
  }
  return 0;
}
