// McpServer: the Model Context Protocol over Streamable HTTP, for both protocol
// eras, as a pure function from one HTTP exchange to its reply.
//
// Eras:
//   2025-11-25 (and 2025-06-18, 2025-03-26): initialize echoes a version we
//     support or offers ours; notifications/initialized -> 202; tools/list,
//     tools/call, ping. The server keeps no session (no Mcp-Session-Id is ever
//     issued), so any instance behind a load balancer answers any request.
//   2026-07-28 (stateless): every request carries params._meta with
//     io.modelcontextprotocol/protocolVersion and .../clientCapabilities;
//     server/discover describes the server; Mcp-Method / Mcp-Name headers, when
//     sent, must match the body (-32020 otherwise); an unsupported version is an
//     HTTP 400 with -32022 and the supported list; results carry resultType, and
//     list/discover results carry ttlMs and cacheScope.
// A request is of the 2026 era when its _meta names a protocol version;
// otherwise of the older one.
//
// HTTP: POST only (GET and DELETE -> 405); replies are application/json, or one
// SSE event when the client accepts only text/event-stream. Before any JSON-RPC
// work: the Origin header, when present, must be on the allow-list (403), and
// with an auth token configured the request needs "Authorization: Bearer
// <token>" (401). JSON-RPC errors follow the spec: -32700 parse error, -32600
// invalid request (batches included: they were removed in 2025-06-18), -32601
// unknown method, -32602 bad params or unknown tool. A tool that fails returns a
// result with isError, as the spec asks, not a JSON-RPC error.
//
// Thread-safe: tools are registered before serving; handle() is const.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace memgate::mcp {

inline constexpr std::string_view kLatestLegacyVersion = "2025-11-25";
inline constexpr std::string_view kStatelessVersion = "2026-07-28";

// JSON-RPC and MCP error codes.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kHeaderMismatch = -32020;
inline constexpr int kUnsupportedVersion = -32022;

// What a tool returns: text for people (content) and, when the tool declares an
// output schema, the same as structured JSON.
struct ToolResult {
  std::string text;
  std::optional<boost::json::object> structured;
  bool is_error = false;

  static ToolResult error(std::string message) { return {std::move(message), std::nullopt, true}; }
};

struct Tool {
  std::string name;
  std::string title;
  std::string description;
  boost::json::object input_schema;
  std::optional<boost::json::object> output_schema;
  bool read_only = true;
  // Runs the tool. Arguments were checked to be an object; the tool checks their
  // fields and answers invalid ones with ToolResult::error. Must be thread-safe.
  std::function<ToolResult(const boost::json::object& arguments)> run;
};

struct ServerOptions {
  std::string name = "memgate";
  std::string version = "0.1.0";
  std::string instructions;
  // Origins allowed to call (scheme://host or scheme://host:port; an entry without
  // a port allows any port); "*" allows every origin. Requests without an Origin
  // header (non-browser clients) are allowed.
  std::vector<std::string> allowed_origins = {"http://localhost", "http://127.0.0.1", "http://[::1]",
                                              "https://localhost", "https://127.0.0.1", "https://[::1]"};
  std::string auth_token;  // empty: no token required
  int64_t list_ttl_ms = 300'000;  // ttlMs on tools/list and server/discover (2026 era)
};

// One HTTP request, as the transport sees it.
struct HttpExchange {
  std::string_view method;  // "POST"
  std::function<std::string_view(std::string_view)> header;  // "" when absent; case-insensitive
  std::string_view body;
};

struct HttpReply {
  int status = 200;
  std::string content_type;  // empty when there is no body
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class McpServer {
 public:
  explicit McpServer(ServerOptions options);

  // Registers a tool; call before serving.
  void add_tool(Tool tool);

  // Answers one HTTP exchange on the MCP endpoint.
  HttpReply handle(const HttpExchange& exchange) const;

  // The versions a client may use, newest first.
  static const std::vector<std::string>& supported_versions();

  const ServerOptions& options() const { return options_; }

 private:
  struct Call;
  boost::json::value dispatch(const Call& call, int* http_status) const;
  boost::json::object tools_list(bool stateless) const;
  boost::json::value tools_call(const Call& call, int* http_status) const;
  bool origin_allowed(std::string_view origin) const;

  ServerOptions options_;
  std::vector<Tool> tools_;
};

// Parses "a, b ,c" into {"a","b","c"} (empty items dropped).
std::vector<std::string> split_list(std::string_view text);

}  // namespace memgate::mcp
