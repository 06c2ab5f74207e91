// The switches the memory guard flips: shedding heavy routes and keep-alive.
#include <gtest/gtest.h>

#include <atomic>

#include "memgate/http/server.h"
#include "memgate/http/test_client.h"

namespace memgate::http {
namespace {

using namespace std::chrono_literals;
using testing::fetch;
using testing::TestConnection;

class ControlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.host = "127.0.0.1";
    server_ = std::make_unique<Server>(o);
    auto& r = server_->router();
    ASSERT_TRUE(r.add(Method::kGet, "/healthz", [](const Request&) { return Response::json(200, "{}"); }).ok());
    r.set_sheddable("/api/heavy", true);  // before the route exists: remembered
    ASSERT_TRUE(r.add(Method::kGet, "/api/heavy", [this](const Request&) {
                   ++heavy_calls_;
                   return Response::json(200, "{}");
                 }).ok());
    ASSERT_TRUE(r.add(Method::kGet, "/api/light", [](const Request&) { return Response::json(200, "{}"); }).ok());
    ASSERT_TRUE(server_->start().ok());
  }
  void TearDown() override { server_->stop(1s); }
  std::unique_ptr<Server> server_;
  std::atomic<int> heavy_calls_{0};
};

TEST_F(ControlsTest, WhileSheddingHeavyRoutesAre503AndNeverReachTheirHandler) {
  uint16_t port = server_->port();
  EXPECT_EQ(fetch(port, "GET", "/api/heavy")->status, 200);
  server_->set_shedding(true);
  auto shed = fetch(port, "GET", "/api/heavy");
  ASSERT_TRUE(shed.has_value());
  EXPECT_EQ(shed->status, 503);
  EXPECT_FALSE(shed->header("retry-after").empty());
  EXPECT_NE(shed->body.find("shedding"), std::string::npos);
  EXPECT_EQ(heavy_calls_.load(), 1);
  // Health and routes not marked sheddable are untouched.
  EXPECT_EQ(fetch(port, "GET", "/healthz")->status, 200);
  EXPECT_EQ(fetch(port, "GET", "/api/light")->status, 200);
  EXPECT_EQ(server_->shed_requests(), 1u);
  server_->set_shedding(false);
  EXPECT_EQ(fetch(port, "GET", "/api/heavy")->status, 200);
  EXPECT_EQ(heavy_calls_.load(), 2);
}

TEST_F(ControlsTest, TheFirstLevelShedsOnlyTheRoutesMarkedFirst) {
  uint16_t port = server_->port();
  server_->router().set_shed_priority("/api/light", 1);
  server_->set_shed_level(1);
  EXPECT_EQ(fetch(port, "GET", "/api/light")->status, 503);
  EXPECT_EQ(fetch(port, "GET", "/api/heavy")->status, 200) << "priority 2 waits for level 2";
  server_->set_shed_level(2);
  EXPECT_EQ(fetch(port, "GET", "/api/light")->status, 503);
  EXPECT_EQ(fetch(port, "GET", "/api/heavy")->status, 503);
  EXPECT_EQ(fetch(port, "GET", "/healthz")->status, 200);
  server_->set_shed_level(0);
  EXPECT_EQ(fetch(port, "GET", "/api/light")->status, 200);
}

TEST_F(ControlsTest, AnUnmarkedRouteIsNotShedAgain) {
  server_->router().set_sheddable("/api/heavy", false);
  server_->set_shedding(true);
  EXPECT_EQ(fetch(server_->port(), "GET", "/api/heavy")->status, 200);
}

TEST_F(ControlsTest, WithKeepAliveDisabledEveryResponseClosesItsConnection) {
  TestConnection c(server_->port());
  ASSERT_TRUE(c.ok());
  auto first = c.get("/healthz");
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(first->header("connection"), "close");
  server_->set_keepalive_disabled(true);
  auto second = c.get("/healthz");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  server_->set_keepalive_disabled(false);
  TestConnection d(server_->port());
  auto again = d.get("/healthz");
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(again->header("connection"), "close");
}

}  // namespace
}  // namespace memgate::http
