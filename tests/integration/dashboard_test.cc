// The operator's page on the admin listener of the real binary: its files and
// JSON under the listener's rules (ADMIN_TOKEN), the fields the page reads
// (/startupz from exec, the guard's samples and action changes, /debug/coord),
// and the page itself in Debian's Chromium against an instance with the kb on,
// a real redis-server and a memory alert provoked through the test routes.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

constexpr const char* kToken = "dash-token-7f3a91";

std::string source_dir() {
  const char* src = std::getenv("MEMGATE_SOURCE_DIR");
  return src ? src : MEMGATE_SOURCE_ROOT;
}
std::string web_dir() { return source_dir() + "/memgate/dashboard/web"; }

json::object admin_json(uint16_t admin, const std::string& path) {
  HttpReply r = http_request(admin, "GET", path, "", {{"Authorization", std::string("Bearer ") + kToken}});
  EXPECT_EQ(r.status, 200) << path << ": " << r.error << r.body;
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

// An instance with the kb on, the guard sampling every 100 ms and a 64 MB
// alert threshold, coordinating through `redis_url`.
std::unique_ptr<ServerProcess> start_instance(const std::string& redis_url, const std::string& dir) {
  auto server = ServerProcess::start({{"REDIS_URL", redis_url},
                                      {"ENABLE_KB_SERVICE", "true"},
                                      {"KB_CORPUS_DIR", source_dir() + "/memgate/kb/testdata/corpus"},
                                      {"MEMGATE_TEST_ROUTES", "1"},
                                      {"STAGE_DELAY", "0s"},
                                      {"MONITOR_INTERVAL", "100ms"},
                                      {"HEAP_ALERT_THRESHOLD", "64MB"},
                                      {"ADMIN_TOKEN", kToken},
                                      {"INSTANCE_ID", "dash-1"},
                                      {"COORD_LOCAL_DIR", dir}});
  if (server) {
    EXPECT_TRUE(wait_for_status(server->port(), "/readyz", 200, 30s)) << server->log();
  }
  return server;
}

// Holds 128 MiB until the guard's alert is kept, then frees it, so the history
// has an alert, its snapshot and the actions lifting again.
void provoke_alert(ServerProcess& server) {
  ASSERT_EQ(http_get(server.port(), "/test/alloc?kb=131072&hold=1").status, 200);
  ASSERT_TRUE(wait_until(
      [&] { return !admin_json(server.admin_port(), "/debug/memory/history").at("snapshots").as_array().empty(); }, 10s))
      << server.log();
  ASSERT_EQ(http_get(server.port(), "/test/free").status, 200);
  ASSERT_TRUE(wait_until(
      [&] {
        json::object history = admin_json(server.admin_port(), "/debug/memory/history");
        for (auto& e : history.at("events").as_array())
          if (e.at("action") == "alert" && !e.at("in_force").as_bool()) return true;
        return false;
      },
      10s))
      << server.log();
}

TEST(AdminPage, ThePageIsServedWithoutTheTokenAndEveryFigureOnlyWithIt) {
  auto redis = RedisServer::start();
  ASSERT_TRUE(redis.ok()) << redis.status().to_string();
  auto server = start_instance((*redis)->url(), temp_dir("memgate-dash"));
  ASSERT_NE(server, nullptr);
  uint16_t admin = server->admin_port();
  for (const char* path : {"/", "/dashboard"}) {
    HttpReply page = http_get(admin, path);
    EXPECT_EQ(page.status, 200) << path;
    EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
    EXPECT_NE(page.body.find("<html"), std::string::npos);
    EXPECT_NE(page.header("content-security-policy").find("default-src 'none'"), std::string::npos);
    HttpReply again = http_request(admin, "GET", path, "", {{"If-None-Match", page.header("etag")}});
    EXPECT_EQ(again.status, 304);
  }
  EXPECT_EQ(http_get(server->port(), "/dashboard").status, 404) << "the page is on the admin listener only";
  for (const char* path : {"/startupz", "/debug/coord", "/debug/memory/history"})
    EXPECT_EQ(http_get(admin, path).status, 401) << path;
  HttpReply wrong = http_request(admin, "GET", "/debug/coord", "", {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 401);

  // /startupz from exec: listening, then the loader, then the kb's steps.
  json::object z = admin_json(admin, "/startupz");
  const json::object& exec = z.at("since_exec_ms").as_object();
  int64_t listening = exec.at("listening").to_number<int64_t>();
  int64_t loader = exec.at("loader_started").to_number<int64_t>();
  EXPECT_GE(listening, 0);
  EXPECT_GE(loader, listening);
  EXPECT_GE(exec.at("now").to_number<int64_t>(), loader);
  EXPECT_LT(loader, 30'000);
  const json::object* kb = nullptr;
  for (auto& m : z.at("modules").as_array())
    if (m.at("name") == "kb") kb = &m.as_object();
  ASSERT_NE(kb, nullptr);
  const json::array& phases = kb->at("phases").as_array();
  ASSERT_GE(phases.size(), 2u) << *kb;
  EXPECT_EQ(phases.back().at("state"), "ready");
  bool built = false;
  for (auto& p : phases) built |= p.at("state") == "building";
  EXPECT_TRUE(built) << *kb;

  // /debug/coord: the backend, the master in use, the kb's lease with its fence,
  // its fleet_once outcome and its artifact by fingerprint; no token, no password.
  json::object coord = admin_json(admin, "/debug/coord");
  EXPECT_EQ(coord.at("backend"), "redis");
  EXPECT_EQ(coord.at("master").as_string(), "127.0.0.1:" + std::to_string((*redis)->port()));
  EXPECT_EQ(coord.at("connection_state"), "connected");
  EXPECT_GE(coord.at("fleet_once_totals").at("built").to_number<int64_t>(), 1);
  std::string kb_key = "init:mcp-kb@" + std::string(kb->at("fingerprint").as_string());
  bool lease = false;
  for (auto& l : coord.at("leases_recent").as_array())
    lease |= l.at("key").as_string() == kb_key && l.at("fence").to_number<int64_t>() > 0 && !l.at("held").as_bool();
  EXPECT_TRUE(lease) << coord;
  bool outcome = false;
  for (auto& o : coord.at("fleet_once_recent").as_array())
    outcome |= o.at("name").as_string() == kb_key && o.at("outcome") == "built";
  EXPECT_TRUE(outcome) << coord;
  const json::object* found = nullptr;
  for (auto& a : coord.at("artifacts").as_array())
    if (a.at("module") == "kb") found = &a.as_object();
  ASSERT_NE(found, nullptr) << coord;
  const json::object& artifact = *found;
  EXPECT_EQ(artifact.at("fingerprint"), kb->at("fingerprint"));
  EXPECT_EQ(artifact.at("published"), true);
  EXPECT_EQ(artifact.at("builder"), "dash-1");
  EXPECT_EQ(artifact.at("size_bytes").to_number<uint64_t>(), kb->at("artifact_bytes").to_number<uint64_t>());
  EXPECT_GT(artifact.at("build_peak_bytes").to_number<uint64_t>(), 0u) << "the build's peak, as it published it";
  EXPECT_GT(artifact.at("measured_load_peak_bytes").to_number<uint64_t>(), 0u) << "this load's peak, recorded for the fleet";
  EXPECT_EQ(artifact.at("serving"), true);
  ASSERT_TRUE(artifact.at("measured_build_ms").is_number()) << "the build's time, recorded for the fleet: " << coord;
  EXPECT_GE(artifact.at("measured_build_ms").to_number<int64_t>(), 0);
  ASSERT_TRUE(artifact.at("measured_load_ms").is_number()) << coord;
  EXPECT_FALSE(coord.contains("sentinel")) << "one server has no sentinel view";
  EXPECT_EQ(json::serialize(coord).find("token"), std::string::npos) << "a lease's token is never shown";

  // The guard's history: samples every interval, and the alert's action changes.
  provoke_alert(*server);
  json::object history = admin_json(admin, "/debug/memory/history");
  EXPECT_EQ(history.at("interval_ms").to_number<int64_t>(), 100);
  const json::array& samples = history.at("samples").as_array();
  ASSERT_GE(samples.size(), 3u);
  uint64_t highest = 0;
  for (auto& s : samples) highest = std::max(highest, s.at("heap").to_number<uint64_t>());
  EXPECT_GE(highest, 64ull << 20) << "the sample that crossed the 64 MB alert threshold is kept";
  EXPECT_LT(samples.front().at("ts_ms").to_number<int64_t>(), samples.back().at("ts_ms").to_number<int64_t>());
  bool alert_on = false;
  for (auto& e : history.at("events").as_array())
    alert_on |= e.at("action") == "alert" && e.at("in_force").as_bool() && e.at("trigger") == "heap_alert";
  EXPECT_TRUE(alert_on) << history.at("events");
  EXPECT_EQ(server->log().find(kToken), std::string::npos) << "the token never reaches the log";
}

TEST(AdminPage, ChromiumDrawsEachPartWithThisInstancesNumbers) {
  ASSERT_TRUE(fs::exists("/usr/bin/chromium")) << "Debian's chromium is missing: scripts/deps test installs it";
  ASSERT_TRUE(fs::exists(web_dir() + "/node_modules/playwright-core/package.json"))
      << "the front end's modules are missing: the build installs them (MEMGATE_DASHBOARD=ON, npm found)";
  auto redis = RedisServer::start();
  ASSERT_TRUE(redis.ok()) << redis.status().to_string();
  auto server = start_instance((*redis)->url(), temp_dir("memgate-dash"));
  ASSERT_NE(server, nullptr);
  provoke_alert(*server);
  // Requests of a route that keeps nothing, so the routes table has two rows to sort.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(http_get(server->port(), "/test/alloc?kb=1024").status, 200);
  ASSERT_EQ(http_get(server->port(), "/test/alloc?kb=4096&hold=1").status, 200);

  std::string screenshot = (fs::current_path() / "dashboard.png").string();
  std::string log = temp_dir("memgate-dash-browser") + "/browser.log";
  auto browser = Subprocess::start({"node", web_dir() + "/tests/browser.mjs",
                                    "http://127.0.0.1:" + std::to_string(server->admin_port()), kToken, screenshot,
                                    "127.0.0.1:" + std::to_string((*redis)->port())},
                                   {}, log);
  ASSERT_TRUE(browser.ok()) << browser.status().to_string();
  std::optional<int> code = (*browser)->wait_for(90s);
  std::string out = read_file(log);
  EXPECT_EQ(code, std::optional<int>(0)) << out << "\nserver log:\n" << server->log();
  EXPECT_NE(out.find("PASSED: 0 check(s) failed"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(screenshot)) << screenshot;
  EXPECT_GT(fs::file_size(screenshot), 10'000u);
}

}  // namespace
}  // namespace memgate::testing
