// The real memgate binary, started on free loopback ports: its routes, its limits,
// its configuration errors and its shutdown.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <future>
#include <thread>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

class Server : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = ServerProcess::start({{"HTTP_READ_TIMEOUT", "1s"},
                                    {"HTTP_HEADER_LIMIT", "8KB"},
                                    {"HTTP_BODY_LIMIT", "64KB"},
                                    {"MEMGATE_TEST_ROUTES", "1"},
                                    {"ENABLE_AI_ROUTES", "false"},  // no module: ready at once
                                    {"LOG_FORMAT", "json"}})
                  .release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr); }
  uint16_t port() { return server_->port(); }
  uint16_t admin() { return server_->admin_port(); }
  // The server answers a plain request after whatever the test did to it.
  void expect_still_answers() {
    HttpReply r = http_get(port(), "/healthz");
    EXPECT_EQ(r.status, 200) << r.error;
  }
  static ServerProcess* server_;
};
ServerProcess* Server::server_ = nullptr;

TEST_F(Server, HealthzAnswersOkAsJson) {
  HttpReply r = http_get(port(), "/healthz");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(json::parse(r.body).at("status"), "ok");
}

TEST_F(Server, ReadyzIsOkWhenNoModuleIsMissing) {
  HttpReply r = http_get(port(), "/readyz");
  ASSERT_EQ(r.status, 200) << r.body;
  auto doc = json::parse(r.body);
  EXPECT_EQ(doc.at("ready"), true);
  EXPECT_TRUE(doc.at("missing").as_array().empty());
}

TEST_F(Server, StartupzListsStagesAndModulesAsJson) {
  HttpReply r = http_get(port(), "/startupz");
  ASSERT_EQ(r.status, 200);
  auto doc = json::parse(r.body);
  EXPECT_TRUE(doc.at("modules").is_array());
  EXPECT_TRUE(doc.at("stages").is_array());
  EXPECT_FALSE(doc.at("instance").as_string().empty());
}

TEST_F(Server, UnknownPathIsAJson404) {
  HttpReply r = http_get(port(), "/no/such/thing");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(json::parse(r.body).at("error").is_object());
}

TEST_F(Server, MetricsAreOnTheAdminListenerOnly) {
  // Make one request so the counter has something to count.
  ASSERT_EQ(http_get(port(), "/healthz").status, 200);
  HttpReply m = http_get(admin(), "/metrics");
  ASSERT_EQ(m.status, 200) << m.error;
  EXPECT_NE(m.header("content-type").find("text/plain"), std::string::npos);
  for (const char* name :
       {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
        "process_start_time_seconds", "process_open_fds", "process_max_fds",
        "memgate_allocator_allocated_bytes", "memgate_http_requests_total", "memgate_http_request_duration_seconds_bucket",
        "memgate_http_client_aborts_total", "memgate_worker_queue_limit", "memgate_worker_queued{lane=\"request\"}",
        "memgate_worker_refused_total", "memgate_worker_dropped_total", "memgate_module_predicted_peak_bytes"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name << " missing from /metrics";
  }
  EXPECT_NE(m.body.find("route=\"/healthz\""), std::string::npos);
  EXPECT_EQ(http_get(port(), "/metrics").status, 404);
}

TEST_F(Server, DebugMemoryReportsWhatTheProbeKnows) {
  HttpReply r = http_get(admin(), "/debug/memory");
  ASSERT_EQ(r.status, 200) << r.error;
  auto doc = json::parse(r.body);
  EXPECT_GT(doc.at("process").at("rss").to_number<double>(), 0);
  EXPECT_TRUE(doc.at("allocator").at("allocated").is_number());
  EXPECT_TRUE(doc.at("cgroup").is_object());
}

TEST_F(Server, AMalformedRequestLineIsA400AndTheServerCarriesOn) {
  HttpReply r = http_raw(port(), "GARBAGE\r\n\r\n");
  EXPECT_EQ(r.status, 400) << r.error;
  r = http_raw(port(), "GET /healthz HTTP/9.9 extra\r\n\r\n");
  EXPECT_GE(r.status, 400) << r.error;
  expect_still_answers();
}

TEST_F(Server, OversizedHeadersAreA431) {
  std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16 * 1024, 'a') + "\r\n\r\n";
  HttpReply r = http_raw(port(), req);
  EXPECT_EQ(r.status, 431) << r.error;
  expect_still_answers();
}

TEST_F(Server, AnOversizedBodyIsA413) {
  HttpReply r = http_request(port(), "POST", "/healthz", std::string(128 * 1024, 'b'));
  EXPECT_EQ(r.status, 413) << r.error;
  expect_still_answers();
}

TEST_F(Server, AClientSendingHeadersOneByteAtATimeGetsA408AndIsClosed) {
  // HTTP_READ_TIMEOUT is 1s here; the client sends a byte every 250 ms and would
  // need about 10 s for the whole head.
  HttpReply r = http_raw_trickle(port(), "GET /healthz HTTP/1.1\r\nHost: slow-client.test\r\n\r\n", 250ms, 8s);
  EXPECT_EQ(r.status, 408) << r.error;
  EXPECT_TRUE(r.closed_after);
  expect_still_answers();
}

TEST_F(Server, KeepAliveServesManyRequestsOnOneConnection) {
  std::string many;
  for (int i = 0; i < 50; ++i) many += "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  many += "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  HttpReply r = http_raw(port(), many);  // reads the first reply; the rest must not break anything
  EXPECT_EQ(r.status, 200);
  expect_still_answers();
}

TEST(ServerLifecycle, SigtermFinishesTheRequestInFlightAndExitsZero) {
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"}, {"SHUTDOWN_TIMEOUT", "5s"}});
  ASSERT_NE(server, nullptr);
  auto slow = std::async(std::launch::async, [&] { return http_get(server->port(), "/test/sleep?ms=700"); });
  // The request is in flight once the server has logged it as started.
  for (int i = 0; i < 400 && server->log().find("test sleep started") == std::string::npos; ++i)
    std::this_thread::sleep_for(5ms);
  ASSERT_NE(server->log().find("test sleep started"), std::string::npos) << server->log();
  server->process().signal(SIGTERM);
  HttpReply r = slow.get();
  EXPECT_EQ(r.status, 200) << r.error;
  auto code = server->process().wait_for(10s);
  ASSERT_TRUE(code.has_value()) << "did not exit after SIGTERM";
  EXPECT_EQ(*code, 0) << server->log();
  // New connections are refused once it has stopped.
  EXPECT_EQ(http_get(server->port(), "/healthz").status, 0);
}

TEST(ServerLifecycle, SigintAlsoStopsCleanly) {
  auto server = ServerProcess::start();
  ASSERT_NE(server, nullptr);
  server->process().signal(SIGINT);
  auto code = server->process().wait_for(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << server->log();
}

TEST(ServerLifecycle, APortTakenByAnotherProcessStopsStartUp) {
  auto first = ServerProcess::start();
  ASSERT_NE(first, nullptr);
  RunResult second = run_memgate({{"PORT", std::to_string(first->port())}, {"ADMIN_PORT", std::to_string(free_port())}}, {});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.output.find(std::to_string(first->port())), std::string::npos) << second.output;
  // The first server is unharmed and still the one answering.
  EXPECT_EQ(http_get(first->port(), "/healthz").status, 200);
}

TEST(ServerConfig, ABadVariableStopsStartUpWithExitTwoAndNamesIt) {
  RunResult r = run_memgate({{"MONITOR_INTERVAL", "soon"}}, {});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("MONITOR_INTERVAL='soon'"), std::string::npos) << r.output;
}

TEST(ServerConfig, CheckConfigPrintsTheResolvedConfigurationWithoutSecrets) {
  RunResult r = run_memgate({{"REDIS_URL", "redis://app:hunter2@127.0.0.1:1/0"}, {"KB_HEAP_GATE", "60%"}},
                            {"check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("KB_HEAP_GATE=60%"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("hunter2"), std::string::npos) << r.output;
}

TEST(ServerConfig, CheckConfigRefusesABadSentinelOrClusterUrlNamingItAndNotItsPassword) {
  for (const char* url : {"redis-cluster://", "redis-cluster://u:hunter2@h1:99999", "rediss-cluster://u:hunter2@h1:6379/3",
                          "redis-sentinel://u:hunter2@h1:26379/", "redis://u:hunter2@h1:6379/zero"}) {
    for (const char* command : {"check-config", "plan"}) {
      RunResult r = run_memgate({{"REDIS_URL", url}}, {command});
      EXPECT_EQ(r.exit_code, 2) << command << " " << url << ": " << r.output;
      EXPECT_NE(r.output.find("REDIS_URL"), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find("hunter2"), std::string::npos) << r.output;
    }
  }
  RunResult good = run_memgate({{"REDIS_URL", "redis-cluster://u:hunter2@h1:6379,h2:6379"}}, {"check-config"});
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_EQ(good.output.find("hunter2"), std::string::npos) << good.output;
}

TEST(ServerConfig, HelpListsEverySetting) {
  RunResult r = run_memgate({}, {"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("ENABLE_SCHEDULED_JOBS"), std::string::npos);
  EXPECT_NE(r.output.find("default: 30s"), std::string::npos);
}

TEST(ServerLogging, JsonLogsAreOneObjectPerLineAndNeverCarryTheRedisPassword) {
  auto server = ServerProcess::start({{"LOG_FORMAT", "json"}, {"REDIS_URL", "redis://:hunter2@127.0.0.1:1"}});
  ASSERT_NE(server, nullptr);
  server->process().signal(SIGTERM);
  server->process().wait_for(10s);
  std::string log = server->log();
  EXPECT_EQ(log.find("hunter2"), std::string::npos) << log;
  std::istringstream lines(log);
  std::string line;
  int parsed = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    EXPECT_FALSE(ec) << "not JSON: " << line;
    if (!ec) {
      EXPECT_TRUE(v.as_object().contains("msg"));
      ++parsed;
    }
  }
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace memgate::testing
