// What the coach's test files share: the coach's route on a loopback server.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "memgate/coach/coach.h"
#include "memgate/http/server.h"

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

}  // namespace memgate::coach::testing
