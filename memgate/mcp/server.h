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
// Methods, in both eras, over what the Registry holds: tools/list, tools/call,
// resources/list (pages of ServerOptions::resource_page_size, with an opaque
// cursor: base64url of the source's number and its own position, checked and
// bounded before use, -32602 when it is not one of ours), resources/templates/list,
// resources/read (-32602 with data.uri for an unknown URI, on
// every revision, as 2026-07-28 asks), prompts/list, prompts/get and
// completion/complete. Capabilities name only what the Registry holds now
// (tools, resources, prompts, completions), and, in the handshake era only,
// logging: logging/setLevel takes a level, and since the server never writes
// to a client outside a reply there is never a message to filter.
//
// HTTP: POST only (GET and DELETE -> 405); replies are application/json, or one
// SSE event when the client accepts only text/event-stream. Before any JSON-RPC
// work: the Origin header, when present, must be on the allow-list (403), and
// with an auth token configured the request needs "Authorization: Bearer
// <token>" (401); with a BearerAuth instead, a verified OAuth access token
// (401 with a resource_metadata challenge; 403 insufficient_scope, also from
// tools/call of a tool whose scopes the token lacks). JSON-RPC errors follow the spec: -32700 parse error, -32600
// invalid request (batches included: they were removed in 2025-06-18), -32601
// unknown method, -32602 bad params or unknown tool. A tool that fails returns a
// result with isError, as the spec asks, not a JSON-RPC error.
//
// Thread-safe: handle() is const and reads a snapshot of the Registry, which
// modules may add to while the endpoint serves.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "memgate/mcp/bearer_auth.h"
#include "memgate/mcp/registry.h"

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
  // OAuth 2.1 resource server (bearer_auth.h): when set, every POST needs a
  // verified access token, and a tool with scopes of its own needs those too
  // (403 insufficient_scope). Exclusive with auth_token.
  std::shared_ptr<const BearerAuth> bearer;
  // ttlMs on the list results, server/discover and resources/read (2026 era).
  int64_t list_ttl_ms = 300'000;
  // Resources per resources/list page; becomes a setting (with the other MCP_*
  // rows) once modules contribute rows to the settings table.
  size_t resource_page_size = 50;
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
  // Serves what `registry` holds (a fresh, empty one when null).
  explicit McpServer(ServerOptions options, std::shared_ptr<Registry> registry = nullptr);

  // Registers a tool (registry().add_tool).
  void add_tool(Tool tool);
  // Where modules add what this endpoint offers; thread-safe.
  Registry& registry() const { return *registry_; }

  // Answers one HTTP exchange on the MCP endpoint.
  HttpReply handle(const HttpExchange& exchange) const;

  // The versions a client may use, newest first.
  static const std::vector<std::string>& supported_versions();

  const ServerOptions& options() const { return options_; }

 private:
  struct Call;
  // `http_status` and `challenge` (a WWW-Authenticate value) may be set by the method.
  boost::json::value dispatch(const Call& call, int* http_status, std::string* challenge) const;
  boost::json::object capabilities(const Catalog& catalog) const;
  boost::json::value tools_call(const Catalog& catalog, const Call& call, int* http_status,
                                std::string* challenge) const;
  boost::json::value resources_list(const Catalog& catalog, const Call& call) const;
  boost::json::value resources_read(const Catalog& catalog, const Call& call) const;
  boost::json::value prompts_get(const Catalog& catalog, const Call& call) const;
  boost::json::value complete(const Catalog& catalog, const Call& call) const;
  bool origin_allowed(std::string_view origin) const;

  ServerOptions options_;
  std::shared_ptr<Registry> registry_;
};

// Parses "a, b ,c" into {"a","b","c"} (empty items dropped).
std::vector<std::string> split_list(std::string_view text);

}  // namespace memgate::mcp
