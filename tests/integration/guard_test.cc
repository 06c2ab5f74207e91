// The memory guard in the real binary, with a real redis-server and low
// thresholds: a test route drives the heap over them, heavy routes shed while
// health stays 200, a snapshot lands in the Redis stream and in
// /debug/memory/history, releasing the memory lifts every action, and /metrics
// shows each step. Also: per-route allocation accounting and heap profiles.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

json::object get_json(uint16_t port, const std::string& path) {
  HttpReply r = http_get(port, path);
  EXPECT_EQ(r.status, 200) << path << ": " << r.error << r.body;
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

// A keep-alive request: the server decides whether to close.
HttpReply keepalive_get(uint16_t port) { return http_raw(port, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"); }

bool action(uint16_t admin, const std::string& name) {
  json::object m = get_json(admin, "/debug/memory");
  return m.contains("guard") && m.at("guard").at("actions").at(name).as_bool();
}

std::string metric_line(const std::string& metrics, const std::string& prefix) {
  size_t at = metrics.find("\n" + prefix);
  if (at == std::string::npos) return "";
  size_t end = metrics.find('\n', at + 1);
  return metrics.substr(at + 1, end - at - 1);
}

TEST(MemoryGuard, PressureShedsHeavyRoutesWritesASnapshotAndReleasingMemoryClearsIt) {
  auto redis = RedisServer::start();
  ASSERT_TRUE(redis.ok()) << redis.status().to_string();
  std::string dir = temp_dir("memgate-guard");
  auto server = ServerProcess::start({{"REDIS_URL", (*redis)->url()},
                                      {"MEMGATE_TEST_ROUTES", "1"},
                                      {"MEMGATE_TEST_HEAVY_MODULES", "1"},
                                      {"MEMGATE_TEST_BUILD_MB", "4"},
                                      {"MEMGATE_TEST_KEEP_MB", "1"},
                                      {"STAGE_DELAY", "0s"},
                                      {"MONITOR_INTERVAL", "100ms"},
                                      {"HEAP_ALERT_THRESHOLD", "64MB"},
                                      {"HEAP_SHED_THRESHOLD", "96MB"},
                                      {"INSTANCE_ID", "guarded"},
                                      {"COORD_LOCAL_DIR", dir}});
  ASSERT_NE(server, nullptr);
  uint16_t port = server->port(), admin = server->admin_port();
  ASSERT_TRUE(wait_for_status(port, "/readyz", 200, 20s)) << server->log();
  EXPECT_EQ(http_get(port, "/api/test-heavy-1").status, 200);
  EXPECT_FALSE(action(admin, "shed"));

  // Over both thresholds.
  ASSERT_EQ(http_get(port, "/test/alloc?kb=131072&hold=1").status, 200);
  ASSERT_TRUE(wait_until([&] { return action(admin, "shed"); }, 10s)) << server->log();
  HttpReply shed = http_get(port, "/api/test-heavy-1");
  EXPECT_EQ(shed.status, 503);
  EXPECT_FALSE(shed.header("retry-after").empty());
  EXPECT_EQ(http_get(port, "/healthz").status, 200) << "health never sheds";
  EXPECT_EQ(http_get(admin, "/metrics").status, 200) << "admin never sheds";
  EXPECT_TRUE(action(admin, "alert"));
  EXPECT_TRUE(action(admin, "refuse_optional_init"));
  EXPECT_TRUE(action(admin, "disable_keepalive"));
  EXPECT_EQ(keepalive_get(port).header("connection"), "close");
  std::string metrics = http_get(admin, "/metrics").body;
  EXPECT_EQ(metric_line(metrics, "memgate_guard_action_in_force{action=\"shed\"}"),
            "memgate_guard_action_in_force{action=\"shed\"} 1");
  EXPECT_NE(metric_line(metrics, "memgate_http_shed_requests_total"), "memgate_http_shed_requests_total 0");

  // The snapshot is in the Redis stream, and history reads it from there.
  json::object history = get_json(admin, "/debug/memory/history");
  EXPECT_EQ(history.at("source"), "redis");
  ASSERT_FALSE(history.at("snapshots").as_array().empty());
  const auto& snap = history.at("snapshots").as_array()[0];
  EXPECT_EQ(snap.at("instance"), "guarded");
  EXPECT_TRUE(snap.at("stream_id").is_string());
  EXPECT_GT(snap.at("memory").at("allocator").at("allocated").to_number<double>(), 64 << 20);
  // The alert fired while /test/alloc was still running (a request is accounted
  // when it ends), so its top routes are those finished before it.
  EXPECT_TRUE(snap.at("top_routes").is_array());
  EXPECT_TRUE(snap.at("actions").is_array());

  // Releasing the memory lifts everything.
  ASSERT_EQ(http_get(port, "/test/free").status, 200);
  ASSERT_TRUE(wait_until([&] { return !action(admin, "shed") && !action(admin, "alert"); }, 10s)) << server->log();
  EXPECT_EQ(http_get(port, "/api/test-heavy-1").status, 200);
  EXPECT_NE(keepalive_get(port).header("connection"), "close");
  metrics = http_get(admin, "/metrics").body;
  EXPECT_EQ(metric_line(metrics, "memgate_guard_action_in_force{action=\"shed\"}"),
            "memgate_guard_action_in_force{action=\"shed\"} 0");
  EXPECT_EQ(metric_line(metrics, "memgate_guard_action_changes_total{action=\"shed\"}"),
            "memgate_guard_action_changes_total{action=\"shed\"} 1");
  EXPECT_NE(metric_line(metrics, "memgate_guard_alerts_total"), "memgate_guard_alerts_total 0");
  EXPECT_NE(server->log().find("memory action shed lifted"), std::string::npos);
  // Once over, the request that caused it heads the routes by bytes held.
  json::object routes = get_json(admin, "/debug/memory/routes");
  if (routes.at("available").as_bool()) {
    EXPECT_EQ(routes.at("by_allocated").as_array()[0].at("route"), "/test/alloc") << routes;
  }
  remove_tree(dir);
}

TEST(AllocationAccounting, ARouteThatAllocatesAKnownSizeIsReportedWithThatMany) {
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"}});
  ASSERT_NE(server, nullptr);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(http_get(server->port(), "/test/alloc?kb=2048").status, 200);
  json::object routes = get_json(server->admin_port(), "/debug/memory/routes");
  if (!routes.at("available").as_bool()) GTEST_SKIP() << "allocator without thread counters";
  const json::object* row = nullptr;
  for (auto& r : routes.at("by_allocated").as_array())
    if (r.at("route") == "/test/alloc") row = &r.as_object();
  ASSERT_NE(row, nullptr) << routes;
  EXPECT_EQ(row->at("requests").to_number<int64_t>(), 4);
  int64_t per_request = row->at("allocated_per_request").to_number<int64_t>();
  EXPECT_GE(per_request, 2048 * 1024);
  EXPECT_LT(per_request, 2048 * 1024 + 64 * 1024) << "within the allocator's rounding";
  EXPECT_LT(row->at("held_bytes").to_number<int64_t>(), 64 * 1024) << "nothing kept";
  std::string metrics = http_get(server->admin_port(), "/metrics").body;
  EXPECT_NE(metrics.find("memgate_http_request_allocated_bytes_count{route=\"/test/alloc\"} 4"), std::string::npos);
}

TEST(AllocationAccounting, WorkOnTheWorkerPoolCountsForItsRoute) {
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"}});
  ASSERT_NE(server, nullptr);
  ASSERT_EQ(http_get(server->port(), "/test/sleep?ms=1").status, 200);
  // The request is recorded when its last task on the pool is done, which may be
  // just after the client has its answer.
  json::object routes;
  bool found = false;
  int64_t allocated = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        routes = get_json(server->admin_port(), "/debug/memory/routes");
        if (!routes.at("available").as_bool()) return true;
        for (auto& r : routes.at("by_allocated").as_array())
          if (r.at("route") == "/test/sleep") {
            found = true;
            allocated = r.at("allocated_bytes").to_number<int64_t>();
          }
        return found;
      },
      5s))
      << routes;
  if (!routes.at("available").as_bool()) GTEST_SKIP();
  EXPECT_GT(allocated, 0);
}

TEST(HeapProfile, TheJeprofFormatIsReadByJeprofAndNamesTheAllocatingFunction) {
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"}, {"MEMGATE_HEAP_PROFILE", "1"}});
  ASSERT_NE(server, nullptr);
  HttpReply off = http_get(server->admin_port(), "/debug/memory");
  if (json::parse(off.body).at("allocator").at("name") != "jemalloc") GTEST_SKIP() << "not a jemalloc build";
  ASSERT_EQ(http_get(server->port(), "/test/alloc?kb=65536&hold=1").status, 200);
  HttpReply heap = http_get(server->admin_port(), "/debug/pprof/heap?format=jeprof");
  ASSERT_EQ(heap.status, 200) << heap.body;
  ASSERT_EQ(heap.body.rfind("heap_v2/", 0), 0u) << heap.body.substr(0, 100);
  std::string dir = temp_dir("memgate-pprof");
  std::string path = dir + "/memgate.heap";
  {
    std::ofstream out(path, std::ios::binary);
    out << heap.body;
  }
  std::string cmd = "jeprof --text --cum " + memgate_binary() + " " + path + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string text;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  int rc = pclose(p);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("Total:"), std::string::npos) << text;
  EXPECT_NE(text.find("memgate_test_allocate"), std::string::npos) << text;
  remove_tree(dir);
}

// "64.50MB" (pprof's -top figures, 1024-based units) in bytes; -1 when not a size.
double pprof_bytes(const std::string& figure) {
  static const std::pair<const char*, double> kUnits[] = {
      {"TB", 1024.0 * 1024 * 1024 * 1024}, {"GB", 1024.0 * 1024 * 1024}, {"MB", 1024.0 * 1024}, {"kB", 1024.0},
      {"B", 1.0}};
  for (const auto& [unit, scale] : kUnits) {
    if (!figure.ends_with(unit)) continue;
    try {
      return std::stod(figure.substr(0, figure.size() - std::strlen(unit))) * scale;
    } catch (const std::exception&) {
      return -1;
    }
  }
  return -1;
}

// The heap profile as standard profilers take it: `go tool pprof` (Debian's
// golang-go) reads /debug/pprof/heap with the binary, symbolizes it from the
// binary's own debug information through the profile's mappings, and finds the
// 64 MiB the test route holds in the function that allocated it.
TEST(HeapProfile, GoToolPprofReadsTheHeapAndFindsTheKnownAllocationWithItsBytes) {
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"}, {"MEMGATE_HEAP_PROFILE", "1"}});
  ASSERT_NE(server, nullptr);
  HttpReply off = http_get(server->admin_port(), "/debug/memory");
  if (json::parse(off.body).at("allocator").at("name") != "jemalloc") GTEST_SKIP() << "not a jemalloc build";
  std::string go = find_on_path("go");
  ASSERT_FALSE(go.empty()) << "go not found (Debian package golang-go; scripts/deps test installs it)";
  constexpr double kHeld = 64.0 * 1024 * 1024;
  ASSERT_EQ(http_get(server->port(), "/test/alloc?kb=65536&hold=1").status, 200);
  HttpReply heap = http_get(server->admin_port(), "/debug/pprof/heap");
  ASSERT_EQ(heap.status, 200) << heap.body;
  ASSERT_GE(heap.body.size(), 2u);
  EXPECT_EQ(heap.body.substr(0, 2), "\x1f\x8b") << "gzip, as net/http/pprof serves it";
  EXPECT_EQ(http_get(server->admin_port(), "/debug/pprof/heap?format=svg").status, 400);

  std::string dir = temp_dir("memgate-gopprof");
  std::string path = dir + "/memgate-heap.pb.gz";
  {
    std::ofstream out(path, std::ios::binary);
    out << heap.body;
  }
  // Offline and self-contained: a private HOME and build cache, no module proxy.
  ServerProcess::Env env = {{"HOME", dir}, {"GOCACHE", dir + "/gocache"}, {"GOPATH", dir + "/gopath"},
                            {"GOFLAGS", ""}, {"GOPROXY", "off"}, {"GOTOOLCHAIN", "local"},
                            {"PPROF_TMPDIR", dir}};
  auto proc = Subprocess::start({go, "tool", "pprof", "-top", "-sample_index=inuse_space", memgate_binary(), path},
                                env, dir + "/pprof.log");
  ASSERT_TRUE(proc.ok()) << proc.status().to_string();
  std::optional<int> code = (*proc)->wait_for(60s);
  ASSERT_TRUE(code.has_value()) << "go tool pprof did not finish";
  std::string text = read_file(dir + "/pprof.log");
  ASSERT_EQ(*code, 0) << text;

  // "      flat  flat%   sum%        cum   cum%" rows: the route's function holds
  // the bytes (cum, as it may call what allocates), unsampled to about 64 MiB.
  std::stringstream lines(text);
  double cum = -1;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("memgate_test_allocate") == std::string::npos) continue;
    std::stringstream fields(line);
    std::string flat, flat_pct, sum_pct, cum_figure;
    fields >> flat >> flat_pct >> sum_pct >> cum_figure;
    cum = pprof_bytes(cum_figure);
  }
  ASSERT_GE(cum, 0) << "memgate_test_allocate is not in the profile:\n" << text;
  // About 55 of the 64 blocks of 1 MiB are sampled at a 512 KiB interval, each
  // scaled by 1 / (1 - e^-2): the sum's spread is ~5%.
  EXPECT_GT(cum, 0.7 * kHeld) << text;
  EXPECT_LT(cum, 1.3 * kHeld) << text;
  remove_tree(dir);
}

TEST(HeapProfile, WithAnAdminTokenTheProfileAsksForIt) {
  auto server = ServerProcess::start({{"ADMIN_TOKEN", "pprof-test-token"}});
  ASSERT_NE(server, nullptr);
  HttpReply none = http_get(server->admin_port(), "/debug/pprof/heap");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.header("www-authenticate"), "Bearer");
  HttpReply wrong = http_request(server->admin_port(), "GET", "/debug/pprof/heap", "",
                                 {{"Authorization", "Bearer not-the-token"}});
  EXPECT_EQ(wrong.status, 401);
  HttpReply right = http_request(server->admin_port(), "GET", "/debug/pprof/heap", "",
                                 {{"Authorization", "Bearer pprof-test-token"}});
  EXPECT_EQ(right.status, 409) << "past the token: profiling is off" << right.body;
}

TEST(HeapProfile, TheProfileAnAlertTookIsServedByItsFileNameAndNothingElseIs) {
  std::string dir = temp_dir("memgate-saved-profiles");
  auto server = ServerProcess::start({{"MEMGATE_TEST_ROUTES", "1"},
                                      {"MEMGATE_HEAP_PROFILE", "1"},
                                      {"MONITOR_INTERVAL", "100ms"},
                                      {"HEAP_ALERT_THRESHOLD", "64MB"},
                                      {"HEAP_SHED_THRESHOLD", "1GB"},
                                      {"ADMIN_TOKEN", "saved-token"},
                                      {"PROFILE_DIR", dir}});
  ASSERT_NE(server, nullptr);
  uint16_t admin = server->admin_port();
  auto get = [&](const std::string& target) {
    return http_request(admin, "GET", target, "", {{"Authorization", "Bearer saved-token"}});
  };
  if (json::parse(get("/debug/memory").body).at("allocator").at("name") != "jemalloc")
    GTEST_SKIP() << "not a jemalloc build";
  ASSERT_EQ(http_get(server->port(), "/test/alloc?kb=131072&hold=1").status, 200);
  // The alert's snapshot names the profile it took.
  std::string profile;
  ASSERT_TRUE(wait_until(
      [&] {
        json::value history = json::parse(get("/debug/memory/history").body);
        for (const auto& snap : history.at("snapshots").as_array())
          if (const auto* p = snap.as_object().if_contains("heap_profile"); p && p->is_string())
            profile = std::string(p->as_string());
        return !profile.empty();
      },
      10s))
      << server->log();
  std::string name = profile.substr(profile.rfind('/') + 1);
  EXPECT_EQ(profile, dir + "/" + name);

  HttpReply saved = get("/debug/pprof/saved?name=" + name);
  ASSERT_EQ(saved.status, 200) << saved.body;
  EXPECT_EQ(saved.body.rfind("heap_v2/", 0), 0u) << saved.body.substr(0, 100);
  EXPECT_EQ(saved.body, read_file(profile));
  EXPECT_NE(saved.header("content-disposition").find(name), std::string::npos);
  EXPECT_EQ(http_get(admin, "/debug/pprof/saved?name=" + name).status, 401) << "the token is asked for";

  // Only a file name of the guard's shape, only a regular file in PROFILE_DIR.
  ASSERT_EQ(::symlink(profile.c_str(), (dir + "/memgate-link.heap").c_str()), 0);
  EXPECT_EQ(get("/debug/pprof/saved?name=memgate-link.heap").status, 404) << "a symlink is not followed";
  EXPECT_EQ(get("/debug/pprof/saved?name=memgate-none-1.heap").status, 404);
  for (const char* bad : {"", "..%2Fetc%2Fpasswd", "memgate-..%2F..%2Fetc%2Fpasswd.heap", "memgate-x.heap%2F", "other.heap",
                          "memgate-.heap", "memgate-a..b.heap"})
    EXPECT_EQ(get(std::string("/debug/pprof/saved?name=") + bad).status, 400) << bad;
  remove_tree(dir);
}

TEST(HeapProfile, WithoutProfilingPprofSaysHowToTurnItOn) {
  auto server = ServerProcess::start();
  ASSERT_NE(server, nullptr);
  HttpReply r = http_get(server->admin_port(), "/debug/pprof/heap");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("MEMGATE_HEAP_PROFILE=1"), std::string::npos);
}

}  // namespace
}  // namespace memgate::testing
