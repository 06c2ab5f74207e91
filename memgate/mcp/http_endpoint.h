// The MCP endpoint on the HTTP router: POST /mcp runs the dispatcher on the
// worker pool (tool calls may block on a query); GET and DELETE answer 405 on
// the IO thread. POST is request work (WorkerPool::try_post): when the pool's
// request queue is full it answers 503 with Retry-After: 1, and a request whose
// client left before a worker was free is not run. Thread-safe; the server must
// outlive the routes (it is held by shared_ptr).
#pragma once

#include <memory>
#include <string>

#include "memgate/base/status.h"
#include "memgate/http/router.h"
#include "memgate/mcp/server.h"

namespace memgate {
class WorkerPool;
}

namespace memgate::mcp {

// Installs (or replaces) the endpoint's POST, GET and DELETE handlers at `path`.
Status install_endpoint(http::Router& router, const std::string& path, std::shared_ptr<const McpServer> server,
                        WorkerPool& workers);

// Installs GET for the RFC 9728 protected-resource metadata of `auth`: at
// /.well-known/oauth-protected-resource and at that path followed by
// `endpoint_path` (the form a client derives from a resource URL ending in
// /mcp). Both answer the same document, at once on the IO thread; it is public
// (no token, no Origin check), as clients read it before they have a token.
Status install_resource_metadata(http::Router& router, const std::string& endpoint_path,
                                 std::shared_ptr<const BearerAuth> auth);

// The HTTP reply as a memgate response.
http::Response to_response(HttpReply reply);

}  // namespace memgate::mcp
