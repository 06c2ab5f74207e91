#include "memgate/http/server.h"

#include <gtest/gtest.h>

#include <future>
#include <random>
#include <set>
#include <mutex>
#include <thread>

#include "memgate/http/test_client.h"

namespace memgate::http {
namespace {

using namespace std::chrono_literals;
using testing::ClientResponse;
using testing::TestConnection;
using testing::fetch;

ServerOptions local_options() {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.io_threads = 1;
  o.read_timeout = 2s;
  o.idle_timeout = 5s;
  return o;
}

Response healthz(const Request&) { return Response::json(200, R"({"status":"ok"})"); }

// Polls a condition the server reaches on its own IO thread, up to `within`.
template <typename F>
bool poll_until(F condition, std::chrono::milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = local_options()) {
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->router().add(Method::kGet, "/healthz", healthz).ok());
    Status s = server_->start();
    ASSERT_TRUE(s.ok()) << s.to_string();
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->stop(1s);
  }
  void expect_still_serving() {
    auto r = fetch(port_, "GET", "/healthz");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
  }
  uint64_t count_of(std::string_view route, std::string_view method, int status) {
    uint64_t n = 0;
    for (const RouteStats& s : server_->stats()) {
      if (s.route == route && s.method == method && s.status == status) n += s.count;
    }
    return n;
  }

  // Serves GET /events as a stream; a client asks for it, reads the head and
  // closes. Returns the stream's writer, its client gone.
  StreamWriter open_stream_and_leave() {
    std::promise<StreamWriter> writer_promise;
    EXPECT_TRUE(server_->router().add(Method::kGet, "/events", [&](const Request&, Responder r) {
      writer_promise.set_value(std::move(r).stream(200, "text/event-stream"));
    }).ok());
    TestConnection c(port_);
    EXPECT_TRUE(c.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
    StreamWriter w = writer_promise.get_future().get();
    EXPECT_TRUE(c.read_head().has_value());
    return w;
  }

  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(ServerTest, TheHeartbeatBeatsOnTheFirstIoThreadOnlyAndStopsWithTheServer) {
  ServerOptions o = local_options();
  o.io_threads = 3;
  o.heartbeat_period = 5ms;
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::atomic<int> beats{0};
  o.heartbeat = [&] {
    std::lock_guard lock(mu);
    threads.insert(std::this_thread::get_id());
    ++beats;
  };
  start(o);
  ASSERT_TRUE(poll_until([&] { return beats.load() >= 5; }, 5s));
  server_->stop(1s);
  int after_stop = beats.load();
  // The threads are joined: nothing can beat any more.
  EXPECT_EQ(beats.load(), after_stop);
  std::lock_guard lock(mu);
  EXPECT_EQ(threads.size(), 1u) << "one heartbeat per server, not one per IO thread";
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u) << "the heartbeat runs on an IO thread";
}

TEST_F(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  TestConnection c(port_);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 200; ++i) {
    auto r = c.get("/healthz");
    ASSERT_TRUE(r.has_value()) << "request " << i;
    ASSERT_EQ(r->status, 200);
    ASSERT_EQ(r->body, R"({"status":"ok"})");
  }
  EXPECT_EQ(server_->connection_stats().accepted, 1u);
  auto r = c.get("/healthz");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_EQ(r->header("server"), "memgate");
  EXPECT_FALSE(r->header("date").empty());
  EXPECT_EQ(r->header("connection"), "");
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  ASSERT_TRUE(server_->router().add(Method::kGet, "/echo", [](const Request& r) {
    return Response::text(200, std::string(r.query()));
  }).ok());
  TestConnection c(port_);
  std::string burst;
  for (int i = 0; i < 50; ++i) burst += "GET /echo?" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(c.send(burst));
  for (int i = 0; i < 50; ++i) {
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value()) << i;
    EXPECT_EQ(r->body, std::to_string(i));
  }
}

TEST_F(ServerTest, UnknownPathIs404JsonAndWrongMethodIs405WithAllow) {
  start();
  auto r = fetch(port_, "GET", "/nope");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, R"({"error":{"code":"not_found","message":"no route for /nope"}})");
  auto m = fetch(port_, "DELETE", "/healthz");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->status, 405);
  EXPECT_EQ(m->header("allow"), "GET, HEAD");
  EXPECT_NE(m->body.find(R"("code":"method_not_allowed")"), std::string::npos);
}

TEST_F(ServerTest, HeadGetsTheGetHeadersWithoutABody) {
  start();
  TestConnection c(port_);
  ASSERT_TRUE(c.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "15");
  auto next = c.get("/healthz");  // no stray body bytes in between
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body, R"({"status":"ok"})");
}

TEST_F(ServerTest, PendingRouteAnswers503WithRetryAfterUntilMadeReady) {
  start();
  ASSERT_TRUE(server_->router().add_pending(Method::kGet, "/api/kb/search",
                                            Pending::of("kb", "building", 3)).ok());
  auto r = fetch(port_, "GET", "/api/kb/search?q=x");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->header("retry-after"), "3");
  EXPECT_EQ(r->body,
            R"({"error":{"code":"unavailable","message":"kb is building","module":"kb","state":"building"}})");
  ASSERT_TRUE(server_->router().add(Method::kGet, "/api/kb/search", [](const Request& req) {
    return Response::json(200, "{\"q\":\"" + std::string(req.query_param("q")) + "\"}");
  }).ok());
  auto ready = fetch(port_, "GET", "/api/kb/search?q=x");
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(ready->body, R"({"q":"x"})");
}

TEST_F(ServerTest, RoutesAddedWhileClientsRequestAreServedAndNothingBreaks) {
  ServerOptions o = local_options();
  o.io_threads = 2;
  start(o);
  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, served{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&] {
      TestConnection c(port_);
      while (!done.load()) {
        auto r = c.get("/healthz");
        if (!r || r->status != 200) {
          failures++;
          return;
        }
        served++;
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(server_->router().add(Method::kGet, "/added/" + std::to_string(i), [i](const Request&) {
      return Response::text(200, std::to_string(i));
    }).ok());
  }
  // Keep going until the clients have overlapped the additions with real traffic.
  for (int i = 0; i < 200 && served.load() < 500; ++i) std::this_thread::sleep_for(5ms);
  done = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(served.load(), 500);
  for (int i : {0, 99, 199}) {
    auto r = fetch(port_, "GET", "/added/" + std::to_string(i));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, std::to_string(i));
  }
}

TEST_F(ServerTest, OversizedHeaderGets431AndTheServerStillAnswers) {
  ServerOptions o = local_options();
  o.header_limit = 1024;
  start(o);
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  expect_still_serving();
}

TEST_F(ServerTest, OversizedBodyGets413AndTheServerStillAnswers) {
  ServerOptions o = local_options();
  o.body_limit = 1000;
  start(o);
  ASSERT_TRUE(server_->router().add(Method::kPost, "/in", [](const Request& r) {
    return Response::text(200, std::to_string(r.body().size()));
  }).ok());
  auto small = fetch(port_, "POST", "/in", std::string(1000, 'x'));
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ(small->status, 200);
  EXPECT_EQ(small->body, "1000");
  auto big = fetch(port_, "POST", "/in", std::string(5000, 'x'));
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->status, 413);
  // A chunked body over the limit is caught as it streams in.
  TestConnection c(port_);
  ASSERT_TRUE(c.send("POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" +
                     std::string(1024, 'y') + "\r\n0\r\n\r\n"));
  auto chunked = c.read_response();
  ASSERT_TRUE(chunked.has_value());
  EXPECT_EQ(chunked->status, 413);
  expect_still_serving();
}

TEST_F(ServerTest, ChunkedRequestBodyIsJoinedForTheHandler) {
  start();
  ASSERT_TRUE(server_->router().add(Method::kPost, "/in", [](const Request& r) {
    return Response::text(200, std::string(r.body()));
  }).ok());
  TestConnection c(port_);
  ASSERT_TRUE(c.send("POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "abcde");
}

TEST_F(ServerTest, MalformedRequestLineGets400ThenClose) {
  start();
  TestConnection c(port_);
  ASSERT_TRUE(c.send("THIS IS NOT HTTP\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find(R"("code":"bad_request")"), std::string::npos);
  EXPECT_TRUE(c.closed_by_peer());
  TestConnection binary(port_);
  ASSERT_TRUE(binary.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15)));
  auto b = binary.read_response();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->status, 400);
  expect_still_serving();
  EXPECT_GE(server_->connection_stats().bad_requests, 2u);
}

// RFC 9112's request-side framing MUSTs: each of these requests is answered
// and its connection closed, so no body can be read as a second request.
TEST_F(ServerTest, RequestsWhoseBodyLengthCannotBeKnownAreRefusedAndClosed) {
  start();
  ASSERT_TRUE(server_->router().add(Method::kPost, "/in", [](const Request& r) {
    return Response::text(200, std::string(r.body()));
  }).ok());
  struct Case {
    const char* what;
    std::string request;
    int status;
  };
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::vector<Case> cases = {
      {"a final coding other than chunked",
       "POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" + smuggled, 501},
      {"gzip alone", "POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled, 501},
      {"an unknown coding", "POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n" + smuggled, 501},
      {"chunked twice", "POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"both framings",
       "POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
      {"HTTP/1.0 with chunked", "POST /in HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"no Host in HTTP/1.1", "GET /healthz HTTP/1.1\r\n\r\n", 400},
      {"two Host lines", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    TestConnection c(port_);
    ASSERT_TRUE(c.send(k.request));
    auto r = c.read_response();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, k.status) << r->body;
    EXPECT_TRUE(c.closed_by_peer()) << "nothing after it may be read as a request";
  }
  // What stays allowed: HTTP/1.0 without Host, and chunked with parameters-free spacing.
  TestConnection old(port_);
  ASSERT_TRUE(old.send("GET /nothing HTTP/1.0\r\n\r\n"));
  auto o = old.read_response();
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->status, 404);
  TestConnection spaced(port_);
  ASSERT_TRUE(spaced.send("POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked \r\n\r\n2\r\nok\r\n0\r\n\r\n"));
  auto sp = spaced.read_response();
  ASSERT_TRUE(sp.has_value());
  EXPECT_EQ(sp->status, 200);
  EXPECT_EQ(sp->body, "ok");
  expect_still_serving();
}

TEST_F(ServerTest, AtTheConnectionCapTheOldestIdleConnectionMakesRoom) {
  ServerOptions o = local_options();
  o.max_connections = 3;
  start(o);
  std::vector<std::unique_ptr<TestConnection>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<TestConnection>(port_));
    ASSERT_TRUE(idle.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(idle.back()->read_response().has_value());  // now idle, kept alive
  }
  TestConnection fourth(port_);
  ASSERT_TRUE(fourth.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = fourth.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(idle[0]->closed_by_peer()) << "the oldest idle connection was closed for it";
  EXPECT_EQ(server_->connection_stats().evicted, 1u);
  EXPECT_EQ(server_->connection_stats().refused, 0u);
}

TEST_F(ServerTest, AtTheConnectionCapWithNothingIdleANewConnectionGets503AndTheOthersLive) {
  ServerOptions o = local_options();
  o.max_connections = 2;
  start(o);
  // Two connections whose requests a handler holds: busy, not idle.
  std::mutex mu;
  std::vector<Responder> held;
  ASSERT_TRUE(server_->router().add(Method::kGet, "/hold", [&](const Request&, Responder r) {
    std::lock_guard lock(mu);
    held.push_back(std::move(r));
  }).ok());
  TestConnection a(port_), b(port_);
  ASSERT_TRUE(a.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(b.send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(poll_until(
      [&] {
        std::lock_guard lock(mu);
        return held.size() == 2;
      },
      2s));
  TestConnection c(port_);
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("too many open connections"), std::string::npos) << r->body;
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(server_->connection_stats().refused, 1u);
  // The two held requests still get their answers.
  {
    std::lock_guard lock(mu);
    for (Responder& h : held) std::move(h).send(Response::text(200, "done"));
  }
  auto ra = a.read_response();
  ASSERT_TRUE(ra.has_value());
  EXPECT_EQ(ra->status, 200);
  auto rb = b.read_response();
  ASSERT_TRUE(rb.has_value());
  EXPECT_EQ(rb->body, "done");
}

TEST_F(ServerTest, GarbageAndTruncatedRequestsNeverCrashOrStallTheServer) {
  ServerOptions o = local_options();
  o.header_limit = 2048;
  o.body_limit = 4096;
  start(o);
  ASSERT_TRUE(server_->router().add(Method::kPost, "/in", [](const Request& r) {
    return Response::text(200, std::to_string(r.body().size()));
  }).ok());
  const std::string valid[] = {
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
      "POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
      "POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
  };
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string bytes = valid[rng() % 3];
    switch (rng() % 4) {
      case 0: bytes.resize(rng() % bytes.size()); break;                       // truncated
      case 1: bytes[rng() % bytes.size()] = static_cast<char>(rng() % 256); break;  // one byte flipped
      case 2: for (auto& c : bytes) if (rng() % 8 == 0) c = static_cast<char>(rng() % 256); break;
      case 3: bytes = std::string(rng() % 3000, static_cast<char>(rng() % 256)); break;  // noise
    }
    TestConnection c(port_, 300ms);
    ASSERT_TRUE(c.ok());
    c.send(bytes);
    c.shutdown_write();
    if (auto r = c.read_response()) {  // whatever came back is a well-formed response
      EXPECT_TRUE(r->status == 200 || r->status == 400 || r->status == 404 || r->status == 405 ||
                  r->status == 413 || r->status == 431 || r->status == 501)
          << r->status << " for case " << i;
    }
    if (i % 50 == 0) expect_still_serving();
  }
  expect_still_serving();
  // Connections that sent partial requests and went away are all cleaned up.
  for (int i = 0; i < 100 && server_->connection_stats().open > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server_->connection_stats().open, 0u);
}

TEST_F(ServerTest, SlowClientGets408AfterTheReadTimeoutFromItsFirstByte) {
  ServerOptions o = local_options();
  o.read_timeout = 300ms;
  start(o);
  TestConnection c(port_);
  std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  auto first = std::chrono::steady_clock::now();
  bool closed_early = false;
  for (char ch : request) {  // a byte every 100 ms: never finishes within 300 ms
    if (!c.send(std::string(1, ch))) {
      closed_early = true;
      break;
    }
    std::this_thread::sleep_for(100ms);
    if (std::chrono::steady_clock::now() - first > 1500ms) break;
  }
  auto r = c.read_response();
  auto elapsed = std::chrono::steady_clock::now() - first;
  ASSERT_TRUE(r.has_value()) << "closed early: " << closed_early;
  EXPECT_EQ(r->status, 408);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 1500ms);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(server_->connection_stats().read_timeouts, 1u);
  expect_still_serving();
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedSilently) {
  ServerOptions o = local_options();
  o.idle_timeout = 200ms;
  start(o);
  TestConnection c(port_);
  ASSERT_TRUE(c.get("/healthz").has_value());
  ASSERT_TRUE(c.closed_by_peer(2s));
  EXPECT_EQ(c.read_response(), std::nullopt);  // nothing was sent before the close
  EXPECT_EQ(server_->connection_stats().idle_closes, 1u);
}

TEST_F(ServerTest, StopFinishesAnInFlightRequestThenReturns) {
  start();
  std::promise<void> entered;
  ASSERT_TRUE(server_->router().add(Method::kGet, "/slow", [&entered](const Request&, Responder r) {
    entered.set_value();
    std::thread([r = std::move(r)]() mutable {
      std::this_thread::sleep_for(300ms);
      std::move(r).send(Response::text(200, "finished"));
    }).detach();
  }).ok());
  TestConnection idle(port_);
  ASSERT_TRUE(idle.get("/healthz").has_value());
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  entered.get_future().wait();
  auto t0 = std::chrono::steady_clock::now();
  server_->stop(5s);
  auto took = std::chrono::steady_clock::now() - t0;
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "finished");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(idle.closed_by_peer(1s));
  TestConnection after(port_);
  EXPECT_FALSE(after.ok() && after.get("/healthz").has_value());
}

TEST_F(ServerTest, StopGivesUpOnRequestsThatOutliveTheDeadline) {
  start();
  std::promise<Responder> parked;
  ASSERT_TRUE(server_->router().add(Method::kGet, "/never", [&parked](const Request&, Responder r) {
    parked.set_value(std::move(r));
  }).ok());
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /never HTTP/1.1\r\nHost: x\r\n\r\n"));
  Responder held = parked.get_future().get();
  auto t0 = std::chrono::steady_clock::now();
  server_->stop(200ms);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(c.closed_by_peer(1s));
  EXPECT_FALSE(held.connected());
  std::move(held).send(Response::text(200, "too late"));  // harmless after stop
}

TEST(ServerPort, SecondServerOnTheSamePortRefusesToStart) {
  ServerOptions o = local_options();
  Server first(o);
  ASSERT_TRUE(first.start().ok());
  o.port = first.port();
  Server second(o);
  Status s = second.start();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("in use"), std::string::npos) << s.message();
  EXPECT_FALSE(second.running());
  first.stop(1s);
  // Once the first is gone the port is free again.
  Server third(o);
  EXPECT_TRUE(third.start().ok());
  third.stop(1s);
}

TEST(ServerPort, SeveralIoThreadsShareOnePort) {
  ServerOptions o = local_options();
  o.io_threads = 2;
  Server server(o);
  ASSERT_TRUE(server.router().add(Method::kGet, "/healthz", healthz).ok());
  ASSERT_TRUE(server.start().ok());
  for (int i = 0; i < 20; ++i) {
    auto r = fetch(server.port(), "GET", "/healthz");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(server.connection_stats().accepted, 20u);
  server.stop(1s);
}

TEST(ServerPort, BadOptionsAreRefusedWithInvalidArgument) {
  ServerOptions o = local_options();
  o.host = "not-an-ip";
  EXPECT_EQ(Server(o).start().code(), Code::kInvalidArgument);
  o = local_options();
  o.io_threads = 0;
  EXPECT_EQ(Server(o).start().code(), Code::kInvalidArgument);
}

TEST_F(ServerTest, StatsCountByRoutePatternMethodAndStatus) {
  start();
  ASSERT_TRUE(server_->router().add(Method::kGet, "/docs/*", [](const Request& r) {
    return Response::text(r.path() == "/docs/missing" ? 404 : 200, "");
  }).ok());
  TestConnection c(port_);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.get("/docs/" + std::to_string(i)).has_value());
  ASSERT_TRUE(c.get("/docs/missing").has_value());
  ASSERT_TRUE(c.get("/healthz").has_value());
  ASSERT_TRUE(c.get("/random/path/1").has_value());
  ASSERT_TRUE(c.get("/random/path/2").has_value());
  ASSERT_TRUE(fetch(port_, "POST", "/healthz").has_value());

  EXPECT_EQ(count_of("/docs/*", "GET", 200), 5u);
  EXPECT_EQ(count_of("/docs/*", "GET", 404), 1u);
  EXPECT_EQ(count_of("/healthz", "GET", 200), 1u);
  EXPECT_EQ(count_of("/healthz", "POST", 405), 1u);
  EXPECT_EQ(count_of("unmatched", "GET", 404), 2u);
  for (const RouteStats& s : server_->stats()) {
    EXPECT_EQ(s.route.find("/docs/0"), std::string::npos);  // never the raw path
    EXPECT_LE(s.bucket_counts.back(), s.count);
    for (size_t i = 1; i < s.bucket_counts.size(); ++i) EXPECT_LE(s.bucket_counts[i - 1], s.bucket_counts[i]);
    EXPECT_GT(s.latency_sum_seconds, 0.0);
    EXPECT_LT(s.latency_sum_seconds, 10.0);
  }
}

TEST_F(ServerTest, StatsCanBeTurnedOff) {
  ServerOptions o = local_options();
  o.request_stats = false;
  start(o);
  ASSERT_TRUE(fetch(port_, "GET", "/healthz").has_value());
  EXPECT_TRUE(server_->stats().empty());
}

TEST_F(ServerTest, AsyncHandlerCompletedFromAnotherThread) {
  start();
  std::thread::id handler_thread, completer_thread;
  ASSERT_TRUE(server_->router().add(Method::kPost, "/work", [&](const Request& req, Responder r) {
    handler_thread = std::this_thread::get_id();
    std::thread([&completer_thread, body = std::string(req.body()), r = std::move(r)]() mutable {
      completer_thread = std::this_thread::get_id();
      std::move(r).send(Response::text(201, "did " + body));
    }).detach();
  }).ok());
  TestConnection c(port_);
  ASSERT_TRUE(c.send("POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "did abc");
  EXPECT_NE(handler_thread, completer_thread);
  auto again = c.get("/healthz");  // the connection carries on after an async response
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(count_of("/work", "POST", 201), 1u);
}

TEST_F(ServerTest, DroppedResponderAnswers500) {
  start();
  ASSERT_TRUE(server_->router().add(Method::kGet, "/drop", [](const Request&, Responder) {}).ok());
  auto r = fetch(port_, "GET", "/drop");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("dropped"), std::string::npos);
}

TEST_F(ServerTest, ThrowingHandlerAnswers500AndTheConnectionSurvives) {
  start();
  ASSERT_TRUE(server_->router().add(Method::kGet, "/throw", [](const Request&) -> Response {
    throw std::runtime_error("boom");
  }).ok());
  TestConnection c(port_);
  auto r = c.get("/throw");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("boom"), std::string::npos);
  EXPECT_TRUE(c.get("/healthz").has_value());
}

TEST_F(ServerTest, StreamingResponseArrivesChunkByChunk) {
  start();
  std::promise<StreamWriter> writer_promise;
  ASSERT_TRUE(server_->router().add(Method::kGet, "/events", [&](const Request&, Responder r) {
    writer_promise.set_value(std::move(r).stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}}));
  }).ok());
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  StreamWriter w = writer_promise.get_future().get();
  auto head = c.read_head();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("content-type"), "text/event-stream");
  EXPECT_EQ(head->header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->header("cache-control"), "no-cache");
  // Each event is read back before the next is written: the body really streams.
  for (int i = 0; i < 3; ++i) {
    std::string event = sse_event("tick " + std::to_string(i), "tick", std::to_string(i));
    ASSERT_TRUE(w.write(event));
    auto chunk = c.read_chunk();
    ASSERT_TRUE(chunk.has_value()) << i;
    EXPECT_EQ(*chunk, event);
  }
  w.finish();
  EXPECT_FALSE(w.write("late"));
  EXPECT_EQ(c.read_chunk(), std::nullopt);  // the last chunk
  auto after = c.get("/healthz");  // keep-alive continues after the stream
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->status, 200);
}

TEST_F(ServerTest, StreamWriterNoticesTheClientLeaving) {
  start();
  StreamWriter w = open_stream_and_leave();
  // Writing into a closed socket fails on the server side, after which write() says no.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    refused = !w.write(std::string(1024, 'x'));
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(refused);
  expect_still_serving();
}

// Polls `done` until it holds or `within` passes (the server works on its own
// thread; there is no event to wait on from outside).
template <typename F>
bool eventually(F done, std::chrono::milliseconds within = 3s) {
  auto until = std::chrono::steady_clock::now() + within;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A handler that parks its Responder for the test to complete (or watch).
std::promise<Responder>* add_parking_route(Server& server, std::string pattern) {
  auto* parked = new std::promise<Responder>();  // freed by the test through unique_ptr
  EXPECT_TRUE(server.router().add(Method::kGet, pattern, [parked](const Request&, Responder r) {
    parked->set_value(std::move(r));
  }).ok());
  return parked;
}

TEST_F(ServerTest, AsyncResponderSeesTheClientLeaveBeforeTheAnswer) {
  start();
  std::unique_ptr<std::promise<Responder>> parked(add_parking_route(*server_, "/slow"));
  Responder held;
  {
    TestConnection c(port_);
    ASSERT_TRUE(c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
    held = parked->get_future().get();
    EXPECT_TRUE(held.connected());
  }  // the client closes while the answer is still owed
  // Noticed without writing anything: the connection watches its socket.
  EXPECT_TRUE(eventually([&] { return !held.connected(); }));
  EXPECT_EQ(count_of("/slow", "GET", 499), 1u);
  EXPECT_EQ(server_->connection_stats().client_aborts, 1u);
  std::move(held).send(Response::text(200, "nobody reads this"));  // harmless
  expect_still_serving();
  EXPECT_TRUE(eventually([&] { return server_->connection_stats().open == 0; }));
}

// A client that shuts its sending side (FIN) still reads: it gets its answer
// (after an interim 100 the server sends to tell a half-close from a full
// close), then the connection closes. Nobody took it for gone.
TEST_F(ServerTest, AHalfClosedClientGetsItsAsyncAnswerThenTheConnectionCloses) {
  start();
  std::unique_ptr<std::promise<Responder>> parked(add_parking_route(*server_, "/slow"));
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  Responder held = parked->get_future().get();
  c.shutdown_write();
  auto interim = c.read_head();  // the probe
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  EXPECT_FALSE(eventually([&] { return !held.connected(); }, 200ms));
  std::move(held).send(Response::text(200, "still wanted"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "still wanted");
  EXPECT_TRUE(c.closed_by_peer(1s));
  EXPECT_EQ(server_->connection_stats().client_aborts, 0u);
  EXPECT_EQ(count_of("/slow", "GET", 200), 1u);
}

// Requests pipelined before the FIN are all answered, in order, then close.
TEST_F(ServerTest, RequestsPipelinedBeforeAHalfCloseAreAllAnswered) {
  start();
  std::unique_ptr<std::promise<Responder>> parked(add_parking_route(*server_, "/slow"));
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  c.shutdown_write();
  Responder held = parked->get_future().get();
  std::move(held).send(Response::text(200, "first"));
  std::optional<ClientResponse> first = c.read_response();
  while (first && first->status == 100) first = c.read_response();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->body, "first");
  auto second = c.read_response();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 200);
  EXPECT_TRUE(c.closed_by_peer(1s));
}

// An HTTP/1.0 client gets no interim response (RFC 9110 15.2), just its answer.
TEST_F(ServerTest, AHalfClosedHttp10ClientGetsItsAnswerWithoutAnInterim100) {
  start();
  std::unique_ptr<std::promise<Responder>> parked(add_parking_route(*server_, "/slow"));
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /slow HTTP/1.0\r\n\r\n"));
  Responder held = parked->get_future().get();
  c.shutdown_write();
  EXPECT_FALSE(eventually([&] { return !held.connected(); }, 100ms));
  std::move(held).send(Response::text(200, "for 1.0"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "for 1.0");
}

StreamWriter open_stream(Server& server, TestConnection& c);

// A half-closed client of a stream gets the whole stream.
TEST_F(ServerTest, AHalfClosedClientGetsTheWholeStream) {
  start();
  TestConnection c(port_);
  StreamWriter w = open_stream(*server_, c);
  c.shutdown_write();
  EXPECT_FALSE(eventually([&] { return !w.connected(); }, 100ms));
  EXPECT_TRUE(w.write("one"));
  EXPECT_TRUE(w.write("two"));
  w.finish();
  EXPECT_EQ(c.read_chunk(), std::optional<std::string>("one"));
  EXPECT_EQ(c.read_chunk(), std::optional<std::string>("two"));
  EXPECT_EQ(c.read_chunk(), std::nullopt);
  EXPECT_TRUE(c.closed_by_peer(1s));
  EXPECT_EQ(server_->connection_stats().client_aborts, 0u);
}

TEST_F(ServerTest, RequestPipelinedWhileAnAsyncHandlerWorksIsServedAfterIt) {
  start();
  std::unique_ptr<std::promise<Responder>> parked(add_parking_route(*server_, "/slow"));
  ASSERT_TRUE(server_->router().add(Method::kPost, "/echo", [](const Request& r) {
    return Response::text(200, std::string(r.body()));
  }).ok());
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  Responder held = parked->get_future().get();
  // The next request arrives while the first is owed: the watch reads it and
  // keeps it. Its body is larger than the input buffer (header limit + 64 KiB),
  // so watching pauses with the buffer full and reading resumes after the answer.
  std::string body(200 * 1024, 'b');
  for (size_t i = 0; i < body.size(); i += 997) body[i] = static_cast<char>('a' + i % 26);
  std::thread sender([&] {
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  });
  // Give the watch time to read what fits, then check nobody thought the client left.
  EXPECT_FALSE(eventually([&] { return !held.connected(); }, 100ms));
  std::move(held).send(Response::text(200, "first"));
  auto first = c.read_response();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->body, "first");
  auto second = c.read_response();
  sender.join();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 200);
  EXPECT_TRUE(second->body == body) << "the pipelined body came back altered (" << second->body.size() << " bytes)";
  EXPECT_EQ(server_->connection_stats().client_aborts, 0u);
}

// A client that closes its stream is seen at the next piece: the piece draws a
// reset from the client, which the connection's watch sees (no second write
// needed). A FIN alone cannot tell it from a half-close (see session.h).
TEST_F(ServerTest, StreamNoticesTheClientLeavingAtTheNextPiece) {
  start();
  StreamWriter w = open_stream_and_leave();
  EXPECT_FALSE(eventually([&] { return !w.connected(); }, 100ms));
  EXPECT_TRUE(w.write("anyone there?"));
  EXPECT_TRUE(eventually([&] { return !w.connected(); }));
  EXPECT_EQ(count_of("/events", "GET", 200), 1u);  // counted with the status it began with
  EXPECT_EQ(server_->connection_stats().client_aborts, 1u);
}

// Serves GET /events as a stream and opens it on `c`, reading the head only.
StreamWriter open_stream(Server& server, TestConnection& c) {
  std::promise<StreamWriter> writer_promise;
  EXPECT_TRUE(server.router().add(Method::kGet, "/events", [&](const Request&, Responder r) {
    writer_promise.set_value(std::move(r).stream(200, "text/event-stream"));
  }).ok());
  EXPECT_TRUE(c.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  StreamWriter w = writer_promise.get_future().get();
  EXPECT_TRUE(c.read_head().has_value());
  return w;
}

TEST_F(ServerTest, AStreamWhoseClientNeverReadsIsDroppedAtTheBufferCap) {
  ServerOptions o = local_options();
  o.read_timeout = 60s;  // the write deadline must not be what closes it
  start(o);
  TestConnection c(port_);
  StreamWriter w = open_stream(*server_, c);
  const std::string piece(64 * 1024, 'x');
  size_t offered = 0, peak = 0;
  bool refused = false;
  auto until = std::chrono::steady_clock::now() + 10s;
  while (offered < (size_t{50} << 20) && std::chrono::steady_clock::now() < until) {
    peak = std::max(peak, w.queued_bytes());
    if (!w.write(piece)) {
      refused = true;
      break;
    }
    offered += piece.size();
    peak = std::max(peak, w.queued_bytes());
  }
  EXPECT_TRUE(refused) << "offered " << offered << " bytes, peak pending " << peak;
  EXPECT_LT(offered, size_t{50} << 20);
  // Pieces are 64 KiB plus a few bytes of chunk framing each.
  EXPECT_LE(peak, StreamWriter::kMaxPending + piece.size() + 64);
  EXPECT_TRUE(eventually([&] { return !w.connected(); }));
  EXPECT_FALSE(w.write(piece));
  EXPECT_TRUE(c.closed_by_peer(5s));  // after whatever the kernel already held
  EXPECT_TRUE(eventually([&] { return server_->connection_stats().client_aborts == 1; }));
  EXPECT_EQ(server_->connection_stats().stream_drops, 1u);
  EXPECT_EQ(count_of("/events", "GET", 200), 1u);
  expect_still_serving();
}

TEST_F(ServerTest, AStreamWhoseClientStopsReadingIsClosedAfterTheWriteDeadline) {
  ServerOptions o = local_options();
  o.read_timeout = 300ms;
  start(o);
  TestConnection c(port_);
  StreamWriter w = open_stream(*server_, c);
  const std::string piece(16 * 1024, 'x');
  const size_t backlog = 512 * 1024;  // far below the cap: only the deadline can close it
  size_t peak = 0;
  auto began = std::chrono::steady_clock::now();
  // Keep about `backlog` pending until the server gives up; once the kernel's
  // buffers are full the server's write makes no progress at all.
  bool closed = poll_until(
      [&] {
        if (!w.connected()) return true;
        while (w.queued_bytes() < backlog && w.write(piece)) {
        }
        peak = std::max(peak, w.queued_bytes());
        return false;
      },
      10s);
  auto elapsed = std::chrono::steady_clock::now() - began;
  ASSERT_TRUE(closed);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(peak, StreamWriter::kMaxPending);
  EXPECT_FALSE(w.write(piece));
  EXPECT_TRUE(c.closed_by_peer(5s));
  EXPECT_TRUE(eventually([&] { return server_->connection_stats().client_aborts == 1; }));
  EXPECT_EQ(server_->connection_stats().stream_drops, 1u);
  expect_still_serving();
}

TEST_F(ServerTest, AReadingClientGetsAWholeLargeStreamWhileTheProducerPacesOnQueuedBytes) {
  ServerOptions o = local_options();
  o.read_timeout = 300ms;  // a client that keeps reading is never on the write deadline
  start(o);
  TestConnection c(port_);
  StreamWriter w = open_stream(*server_, c);
  constexpr size_t kPieces = 256;  // 16 MiB in all, four times the cap
  constexpr size_t kPiece = 64 * 1024;
  std::atomic<bool> producer_ok{true};
  std::thread producer([&] {
    for (size_t i = 0; i < kPieces; ++i) {
      // The producer's side of back-pressure: wait while the client is 1 MiB behind.
      if (!poll_until([&] { return w.queued_bytes() < (size_t{1} << 20) || !w.connected(); }, 10s) ||
          !w.write(std::string(kPiece, static_cast<char>('a' + i % 26)))) {
        producer_ok = false;
        return;
      }
    }
    w.finish();
  });
  size_t received = 0;
  bool in_order = true;
  std::string body;
  while (auto chunk = c.read_chunk()) {
    body += *chunk;
    while (body.size() >= kPiece) {
      size_t i = received / kPiece;
      if (body.find_first_not_of(static_cast<char>('a' + i % 26), 0) < kPiece) in_order = false;
      body.erase(0, kPiece);
      received += kPiece;
    }
  }
  producer.join();
  EXPECT_TRUE(producer_ok);
  EXPECT_TRUE(body.empty());
  EXPECT_EQ(received, kPieces * kPiece);
  EXPECT_TRUE(in_order);
  EXPECT_EQ(server_->connection_stats().client_aborts, 0u);
  auto after = c.get("/healthz");  // the connection lives on after the stream
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->status, 200);
}

TEST_F(ServerTest, RequestCarriesQueryHeadersIdAndRemoteAddress) {
  start();
  std::string seen;
  ASSERT_TRUE(server_->router().add(Method::kGet, "/inspect", [&seen](const Request& r) {
    seen = std::string(r.method_string()) + "|" + std::string(r.path()) + "|" + std::string(r.query_param("a")) +
           "|" + std::string(r.header("x-custom")) + "|" + std::string(r.request_id()) + "|" +
           std::string(r.remote_address().substr(0, 10));
    return Response::text(200, std::string(r.request_id()));
  }).ok());
  TestConnection c(port_);
  auto r = c.get("/inspect?a=1&b=2", "X-Custom: hello\r\nX-Request-Id: rid-42\r\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(seen, "GET|/inspect|1|hello|rid-42|127.0.0.1:");
  auto g1 = c.get("/inspect");
  auto g2 = c.get("/inspect");
  ASSERT_TRUE(g1 && g2);
  EXPECT_FALSE(g1->body.empty());
  EXPECT_NE(g1->body, g2->body);
}

TEST_F(ServerTest, ExpectContinueGetsA100BeforeTheBody) {
  start();
  ASSERT_TRUE(server_->router().add(Method::kPost, "/in", [](const Request& r) {
    return Response::text(200, std::string(r.body()));
  }).ok());
  TestConnection c(port_);
  ASSERT_TRUE(c.send("POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  auto cont = c.read_head();
  ASSERT_TRUE(cont.has_value());
  EXPECT_EQ(cont->status, 100);
  ASSERT_TRUE(c.send("data"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "data");
}

TEST_F(ServerTest, Http10ClientsGetConnectionCloseUnlessTheyAskForKeepAlive) {
  start();
  TestConnection c(port_);
  ASSERT_TRUE(c.send("GET /healthz HTTP/1.0\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
  TestConnection k(port_);
  ASSERT_TRUE(k.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto kr = k.read_response();
  ASSERT_TRUE(kr.has_value());
  EXPECT_EQ(kr->header("connection"), "keep-alive");
  ASSERT_TRUE(k.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_TRUE(k.read_response().has_value());
}

class CountingObserver : public RequestObserver {
 public:
  void on_request_begin(RouteId route, const Request& request) override {
    begins++;
    last_route = route;
    last_path = std::string(request.path());
  }
  void on_request_end(RouteId route, int status) override {
    ends++;
    last_status = status;
  }
  std::atomic<int> begins{0}, ends{0}, last_status{0};
  std::atomic<RouteId> last_route{0};
  std::string last_path;
};

TEST_F(ServerTest, ObserverSeesBeginAndEndAroundEachHandler) {
  CountingObserver observer;
  server_ = std::make_unique<Server>(local_options());
  RouteId id = *server_->router().add(Method::kGet, "/items/*", [](const Request&) { return Response::text(202, ""); });
  server_->set_observer(&observer);
  ASSERT_TRUE(server_->start().ok());
  port_ = server_->port();
  auto r = fetch(port_, "GET", "/items/9");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(observer.begins.load(), 1);
  EXPECT_EQ(observer.ends.load(), 1);
  EXPECT_EQ(observer.last_route.load(), id);
  EXPECT_EQ(observer.last_status.load(), 202);
  EXPECT_EQ(observer.last_path, "/items/9");
}

}  // namespace
}  // namespace memgate::http
