// The coach in the real binary: its settings, the extractive answer, a stand-in
// provider for generative and streamed answers, the bulkhead under a burst with
// the heap watched, and the memory guard shedding the route.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <thread>

#include "memgate/coach/fake_provider.h"
#include "memgate/metrics/parsed_exposition.h"
#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
using coach::testing::FakeProvider;

json::object parse(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  EXPECT_FALSE(ec) << body;
  return v.is_object() ? v.as_object() : json::object{};
}

HttpReply ask(uint16_t port, const std::string& body) {
  return http_request(port, "POST", "/api/ai/coach", body, {{"Content-Type", "application/json"}}, 20s);
}

int64_t allocated(uint16_t admin) {
  HttpReply r = http_get(admin, "/debug/memory");
  return parse(r.body)["allocator"].at("allocated").to_number<int64_t>();
}

TEST(CoachBinary, ABadCoachSettingStopsStartUpWithExit2NamingItAndNeverTheKey) {
  for (auto [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"COACH_MAX_INFLIGHT", "lots"}, {"LLM_READ_TIMEOUT", "30"}, {"LLM_BASE_URL", "ftp://llm"}}) {
    RunResult r = run_memgate({{name, value}, {"LLM_API_KEY", "sk-do-not-print-me"},
                               {"PORT", std::to_string(free_port())}, {"ADMIN_PORT", std::to_string(free_port())}},
                              {});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(name + "='" + value + "'"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("sk-do-not-print-me"), std::string::npos) << r.output;
  }
}

TEST(CoachBinary, WithoutAProviderTheCoachAnswersExtractivelyOnceItsModuleIsReady) {
  std::string dir = temp_dir("memgate-coach");
  auto server = ServerProcess::start({{"STAGE_DELAY", "0s"}, {"COORD_LOCAL_DIR", dir}});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(wait_for_status(server->port(), "/readyz", 200, 20s)) << server->log();
  HttpReply r = ask(server->port(), R"({"question":"How do I turn a compost heap?"})");
  ASSERT_EQ(r.status, 200) << r.body;
  json::object o = parse(r.body);
  EXPECT_EQ(o["mode"], "extractive");
  EXPECT_TRUE(o["citations"].as_array().empty()) << "no knowledge base is loaded";
  EXPECT_EQ(ask(server->port(), "{oops").status, 400);
  json::object status = parse(http_get(server->port(), "/api/ai/coach/status").body);
  EXPECT_EQ(status["mode"], "extractive");
  std::string startupz = http_get(server->port(), "/startupz").body;
  EXPECT_NE(startupz.find("\"ai-routes\""), std::string::npos) << startupz;
  remove_tree(dir);
}

TEST(CoachBinary, TheAdminMetricsCountTheCoachsRequestsByOutcome) {
  std::string dir = temp_dir("memgate-coach");
  auto server = ServerProcess::start({{"STAGE_DELAY", "0s"}, {"COORD_LOCAL_DIR", dir}});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(wait_for_status(server->port(), "/readyz", 200, 20s)) << server->log();
  ASSERT_EQ(ask(server->port(), R"({"question":"How do I turn a compost heap?"})").status, 200);
  ASSERT_EQ(ask(server->port(), "{oops").status, 400);
  HttpReply scraped = http_get(server->admin_port(), "/metrics");
  ASSERT_EQ(scraped.status, 200) << scraped.body;
  metrics::ParsedExposition m = metrics::parse_exposition(scraped.body);
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.at("memgate_coach_requests_total{outcome=\"extractive\"}"), 1.0) << scraped.body;
  EXPECT_EQ(m.at("memgate_coach_requests_total{outcome=\"invalid\"}"), 1.0);
  EXPECT_EQ(m.at("memgate_coach_requests_total{outcome=\"generative\"}"), 0.0);
  EXPECT_EQ(m.at("memgate_coach_inflight"), 0.0);
  EXPECT_EQ(m.at("memgate_coach_upstream_connects_total"), 0.0) << "no provider is configured";
  size_t first = scraped.body.find("# TYPE memgate_coach_requests_total ");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(scraped.body.find("# TYPE memgate_coach_requests_total ", first + 1), std::string::npos)
      << "the coach's families are declared once";
  remove_tree(dir);
}

// Sends a coach question on a fresh loopback connection and returns the socket
// (the caller closes it), or -1.
int send_question(uint16_t port, const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string request = "POST /api/ai/coach HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(CoachBinary, AClientThatLeavesCancelsTheProviderCallAndCountsAs499) {
  auto provider = FakeProvider::start();
  ASSERT_NE(provider, nullptr);
  provider->set_mode(FakeProvider::Mode::kGated);  // holds every request: no answer comes by itself
  std::string dir = temp_dir("memgate-coach");
  auto server = ServerProcess::start({{"STAGE_DELAY", "0s"},
                                      {"COORD_LOCAL_DIR", dir},
                                      {"LLM_BASE_URL", provider->base_url()},
                                      {"LLM_MODEL", "fake-model"}});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(wait_for_status(server->port(), "/readyz", 200, 20s)) << server->log();
  int fd = send_question(server->port(), R"({"question":"Will anyone read this?"})");
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(provider->wait_for_requests(1));
  ::close(fd);  // gone before any answer
  EXPECT_TRUE(provider->wait_for_closed_by_client(1, 5s)) << "the provider call outlived its client";
  bool counted = false;
  std::string body;
  for (int i = 0; i < 100 && !counted; ++i) {
    body = http_get(server->admin_port(), "/metrics").body;
    metrics::ParsedExposition m = metrics::parse_exposition(body);
    counted = m.at("memgate_http_client_aborts_total") == 1.0 &&
              m.at("memgate_coach_requests_total{outcome=\"cancelled\"}") == 1.0;
    if (!counted) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(counted) << body;
  EXPECT_NE(body.find("status=\"499\""), std::string::npos) << body;
  remove_tree(dir);
}

TEST(CoachBinary, WithTheKnowledgeBaseLoadedTheExtractiveAnswerCitesItsDocuments) {
  std::string dir = temp_dir("memgate-coach-kb");
  std::string corpus = std::string(MEMGATE_SOURCE_ROOT) + "/memgate/kb/testdata/corpus";
  auto server = ServerProcess::start({{"STAGE_DELAY", "0s"}, {"COORD_LOCAL_DIR", dir},
                                      {"ENABLE_KB_SERVICE", "true"}, {"KB_CORPUS_DIR", corpus}});
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(wait_for_status(server->port(), "/readyz", 200, 30s)) << server->log();
  HttpReply r = ask(server->port(), R"({"question":"How do I turn a compost heap?"})");
  ASSERT_EQ(r.status, 200) << r.body;
  json::object o = parse(r.body);
  EXPECT_EQ(o["mode"], "extractive");
  ASSERT_FALSE(o["citations"].as_array().empty()) << r.body;
  std::string first = json::serialize(o["citations"].as_array()[0]);
  EXPECT_NE(first.find("compost"), std::string::npos) << r.body;
  remove_tree(dir);
}

TEST(CoachBinary, AStandInProviderAnswersPlainAndStreamedAndTheBulkheadHoldsUnderABurst) {
  auto provider = FakeProvider::start();
  ASSERT_NE(provider, nullptr);
  provider->set_pieces({"Alpha ", "beta ", "gamma"});
  std::string dir = temp_dir("memgate-coach");
  auto server = ServerProcess::start({{"STAGE_DELAY", "0s"},
                                      {"COORD_LOCAL_DIR", dir},
                                      {"LLM_BASE_URL", provider->base_url()},
                                      {"LLM_API_KEY", "sk-integration-secret"},
                                      {"LLM_MODEL", "fake-model"},
                                      {"COACH_MAX_INFLIGHT", "2"},
                                      {"COACH_QUEUE", "2"}});
  ASSERT_NE(server, nullptr);
  uint16_t port = server->port(), admin = server->admin_port();
  ASSERT_TRUE(wait_for_status(port, "/readyz", 200, 20s)) << server->log();

  HttpReply plain = ask(port, R"({"question":"Name three letters"})");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(parse(plain.body)["answer"], "Alpha beta gamma");
  HttpReply streamed = ask(port, R"({"question":"Name three letters","stream":true})");
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(streamed.header("content-type"), "text/event-stream");
  size_t a = streamed.body.find("Alpha "), b = streamed.body.find("beta "), c = streamed.body.find("gamma");
  EXPECT_TRUE(a != std::string::npos && a < b && b < c && c != std::string::npos) << streamed.body;
  EXPECT_NE(streamed.body.find("event: done"), std::string::npos);
  EXPECT_EQ(provider->authorizations().back(), "Bearer sk-integration-secret");
  EXPECT_EQ(server->log().find("sk-integration-secret"), std::string::npos) << "the key is never logged";

  // N=2 at work and M=2 waiting on a provider that holds every request...
  provider->set_mode(FakeProvider::Mode::kGated);
  std::vector<std::thread> held;
  std::vector<int> statuses(4, 0);
  for (size_t i = 0; i < 4; ++i)
    held.emplace_back([&, i] { statuses[i] = ask(port, R"({"question":"hold me"})").status; });
  ASSERT_TRUE(provider->wait_for_requests(4));  // 2 earlier + 2 now
  std::string last_status;
  ASSERT_TRUE(wait_until(
      [&] {
        last_status = http_get(port, "/api/ai/coach/status").body;
        return parse(last_status)["queued"] == 2;
      },
      10s))
      << "provider requests " << provider->requests() << ", status " << last_status << "\n"
      << server->log();
  // ...and a burst beyond them: each 503 at once, and the heap does not grow with it.
  int64_t before = allocated(admin);
  for (int i = 0; i < 200; ++i) {
    HttpReply busy = ask(port, R"({"question":"and me?"})");
    ASSERT_EQ(busy.status, 503) << busy.body;
    ASSERT_FALSE(busy.header("retry-after").empty());
  }
  int64_t grown = allocated(admin) - before;
  EXPECT_LT(grown, 2 << 20) << "200 rejected requests left " << grown << " bytes behind";
  provider->release();
  for (auto& t : held) t.join();
  EXPECT_EQ(statuses, (std::vector<int>{200, 200, 200, 200}));
  EXPECT_EQ(provider->requests(), 6);
  json::object status;
  ASSERT_TRUE(wait_until(
      [&] {
        status = parse(http_get(port, "/api/ai/coach/status").body);
        return status["jobs"] == 0;
      },
      10s));
  EXPECT_EQ(status["inflight"], 0);
  EXPECT_EQ(status["rejected"], 200);
  EXPECT_EQ(status["upstream"].at("live_calls"), 0);
  EXPECT_LE(status["upstream"].at("connects").to_number<int64_t>(), 4) << "connections are reused";
  remove_tree(dir);
}

// A ready server with the guard sampling every 100 ms and alerting at 64 MB, the
// coach answering, then 128 MiB held by a test route: returns once the coach is
// shed. `env` adds to (or sets the shed threshold for) that set-up.
std::unique_ptr<ServerProcess> start_and_press(const std::string& dir, ServerProcess::Env env) {
  env.insert(env.end(), {{"STAGE_DELAY", "0s"},
                         {"COORD_LOCAL_DIR", dir},
                         {"MEMGATE_TEST_ROUTES", "1"},
                         {"MONITOR_INTERVAL", "100ms"},
                         {"HEAP_ALERT_THRESHOLD", "64MB"}});
  auto server = ServerProcess::start(env);
  if (!server) return nullptr;
  uint16_t port = server->port();
  EXPECT_TRUE(wait_for_status(port, "/readyz", 200, 20s)) << server->log();
  EXPECT_EQ(ask(port, R"({"question":"x"})").status, 200);
  EXPECT_EQ(http_get(port, "/test/alloc?kb=131072&hold=1").status, 200);
  EXPECT_TRUE(wait_until([&] { return ask(port, R"({"question":"x"})").status == 503; }, 10s)) << server->log();
  return server;
}

TEST(CoachBinary, UnderMemoryPressureTheCoachRouteIsShed) {
  std::string dir = temp_dir("memgate-coach");
  auto server = start_and_press(dir, {{"HEAP_SHED_THRESHOLD", "96MB"}});
  ASSERT_NE(server, nullptr);
  ASSERT_FALSE(::testing::Test::HasFailure());
  uint16_t port = server->port();
  HttpReply shed = ask(port, R"({"question":"x"})");
  EXPECT_NE(shed.body.find("shedding"), std::string::npos) << shed.body;
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
  remove_tree(dir);
}

TEST(CoachBinary, TheCoachIsShedFirstAtTheAlertLevelBeforeOtherHeavyRoutes) {
  std::string dir = temp_dir("memgate-coach");
  // Over the alert threshold only: the coach goes, the other heavy route stays.
  auto server = start_and_press(dir, {{"MEMGATE_TEST_HEAVY_MODULES", "1"},
                                      {"MEMGATE_TEST_BUILD_MB", "4"},
                                      {"MEMGATE_TEST_KEEP_MB", "1"},
                                      {"HEAP_SHED_THRESHOLD", "1GB"}});
  ASSERT_NE(server, nullptr);
  ASSERT_FALSE(::testing::Test::HasFailure());
  uint16_t port = server->port();
  EXPECT_EQ(http_get(port, "/api/test-heavy-1").status, 200);
  // Memory released: the coach answers again.
  ASSERT_EQ(http_get(port, "/test/free").status, 200);
  EXPECT_TRUE(wait_until([&] { return ask(port, R"({"question":"x"})").status == 200; }, 10s)) << server->log();
  remove_tree(dir);
}

}  // namespace
}  // namespace memgate::testing
