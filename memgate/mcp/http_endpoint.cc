#include "memgate/mcp/http_endpoint.h"

#include <array>
#include <utility>

#include "memgate/base/worker_pool.h"

namespace memgate::mcp {
namespace {

// The headers the dispatcher reads, copied so the request can be answered on a
// worker after the connection's buffers have moved on.
constexpr std::array<std::string_view, 7> kHeaders = {"Accept",         "Origin",               "Authorization",
                                                       "Content-Type",   "MCP-Protocol-Version", "Mcp-Method",
                                                       "Mcp-Name"};

struct Copied {
  std::string method;
  std::array<std::string, kHeaders.size()> headers;
  std::string body;

  explicit Copied(const http::Request& req) : method(req.method_string()), body(req.body()) {
    for (size_t i = 0; i < kHeaders.size(); ++i) headers[i] = std::string(req.header(kHeaders[i]));
  }
  HttpExchange exchange() const {
    HttpExchange ex;
    ex.method = method;
    ex.body = body;
    ex.header = [this](std::string_view name) -> std::string_view {
      for (size_t i = 0; i < kHeaders.size(); ++i) {
        if (kHeaders[i].size() != name.size()) continue;
        bool same = true;
        for (size_t j = 0; j < name.size() && same; ++j)
          same = std::tolower(static_cast<unsigned char>(kHeaders[i][j])) ==
                 std::tolower(static_cast<unsigned char>(name[j]));
        if (same) return headers[i];
      }
      return {};
    };
    return ex;
  }
};

http::Response busy() {
  http::Response r = http::Response::error(503, "unavailable", "the server is busy; retry shortly");
  r.header("Retry-After", "1");
  return r;
}

}  // namespace

http::Response to_response(HttpReply reply) {
  http::Response res;
  res.status = reply.status;
  res.content_type = std::move(reply.content_type);
  res.body = std::move(reply.body);
  res.headers = std::move(reply.headers);
  return res;
}

Status install_resource_metadata(http::Router& router, const std::string& endpoint_path,
                                 std::shared_ptr<const BearerAuth> auth) {
  // The document never changes while the process runs: prepared once.
  auto body = std::make_shared<const std::string>(auth->metadata_json());
  for (const std::string& path : {std::string(kResourceMetadataPath), std::string(kResourceMetadataPath) + endpoint_path}) {
    auto added = router.add(http::Method::kGet, path, [body](const http::Request&) {
      http::Response res;
      res.status = 200;
      res.content_type = "application/json";
      res.body = *body;
      res.header("Cache-Control", "max-age=300");
      return res;
    });
    if (!added.ok()) return added.status();
  }
  return Status::Ok();
}

Status install_endpoint(http::Router& router, const std::string& path, std::shared_ptr<const McpServer> server,
                        WorkerPool& workers) {
  auto post = router.add(http::Method::kPost, path, [server, &workers](const http::Request& req, http::Responder r) {
    auto copied = std::make_shared<Copied>(req);
    auto responder = std::make_shared<http::Responder>(std::move(r));
    // Request work: refused when the pool's queue is full (503, retry in a
    // second), skipped if the client has gone before a thread is free, dropped
    // on shutdown.
    bool queued = workers.try_post(
        [server, copied, responder] {
          std::move(*responder).send(to_response(server->handle(copied->exchange())));
        },
        [responder] { return responder->connected(); }, [responder] { std::move(*responder).send(busy()); });
    if (!queued) std::move(*responder).send(busy());
  });
  if (!post.ok()) return post.status();
  for (http::Method m : {http::Method::kGet, http::Method::kDelete}) {
    auto other = router.add(m, path, [server](const http::Request& req) {
      return to_response(server->handle(Copied(req).exchange()));
    });
    if (!other.ok()) return other.status();
  }
  return Status::Ok();
}

}  // namespace memgate::mcp
