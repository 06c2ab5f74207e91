// What the coach's test files share: the coach's route on a loopback server.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "memgate/coach/coach.h"
#include "memgate/http/server.h"
#include "memgate/http/test_client.h"

namespace memgate::coach::testing {

// Serves POST /api/ai/coach through `coach` on 127.0.0.1 and a free port.
inline std::unique_ptr<http::Server> serve_coach(std::shared_ptr<Coach> coach) {
  http::ServerOptions so;
  so.host = "127.0.0.1";
  auto server = std::make_unique<http::Server>(so);
  EXPECT_TRUE(server->router()
                  .add(http::Method::kPost, "/api/ai/coach",
                       [coach](const http::Request& req, http::Responder r) { coach->handle(req, std::move(r)); })
                  .ok());
  EXPECT_TRUE(server->start().ok());
  return server;
}

// POST /api/ai/coach on a fresh connection, as a JSON client sends it; `headers`
// ("Name: value\r\n" each) replace the default Content-Type line.
inline std::optional<http::testing::ClientResponse> post_coach(uint16_t port, std::string_view body,
                                                               std::string_view headers = "Content-Type: application/json\r\n") {
  http::testing::TestConnection c(port, std::chrono::seconds(20));
  if (!c.ok()) return std::nullopt;
  std::string req = "POST /api/ai/coach HTTP/1.1\r\nHost: test\r\n" + std::string(headers) +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  if (!c.send(req)) return std::nullopt;
  return c.read_response();
}

}  // namespace memgate::coach::testing
