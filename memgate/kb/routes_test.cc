// The REST handlers, called directly with built requests.
#include "memgate/kb/routes.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <string>

#include "memgate/base/worker_pool.h"
#include "memgate/base/worker_pool_testing.h"
#include "memgate/http/server.h"
#include "memgate/http/test_client.h"
#include "memgate/kb/corpus.h"

namespace memgate::kb {
namespace {

namespace json = boost::json;

class RoutesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto a = build_artifact(std::string(MEMGATE_KB_TESTDATA) + "/corpus", {});
    ASSERT_TRUE(a.ok());
    auto idx = Index::open(*a, 2);
    ASSERT_TRUE(idx.ok());
    index_ = new std::shared_ptr<Index>(*idx);
  }
  static void TearDownTestSuite() { delete index_; }
  static http::Response get(const std::string& target) {
    http::RequestBuilder b;
    b.method("GET").target(target);
    if (target.rfind("/api/kb/docs/", 0) == 0) return handle_document(**index_, b.get());
    return handle_search(**index_, b.get());
  }
  static inline std::shared_ptr<Index>* index_ = nullptr;
};

TEST_F(RoutesTest, SearchReturnsHitsWithIdTitlePathScoreAndSnippet) {
  auto r = get("/api/kb/search?q=fencing+token&k=3");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = json::parse(r.body).as_object();
  EXPECT_EQ(body.at("query"), "fencing token");
  EXPECT_EQ(body.at("mode"), "simple");
  auto hits = body.at("hits").as_array();
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].at("path"), "computing/redis-locks.md");
  EXPECT_EQ(std::string(hits[0].at("id").as_string()), document_id("computing/redis-locks.md"));
  EXPECT_TRUE(hits[0].at("score").is_double());
  EXPECT_NE(std::string(hits[0].at("snippet").as_string()).find("<mark>"), std::string::npos);
}

TEST_F(RoutesTest, PercentEncodedQueriesAreDecoded) {
  auto r = get("/api/kb/search?q=caf%C3%A9");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body).at("query"), "caf\xC3\xA9");
  EXPECT_EQ(json::parse(r.body).at("hits").as_array()[0].at("path"), "cooking/bread.md");
}

TEST_F(RoutesTest, BadRequestsAre400WithTheReasonNever500) {
  for (const char* t : {"/api/kb/search", "/api/kb/search?q=", "/api/kb/search?q=%ZZ", "/api/kb/search?q=a&k=0",
                        "/api/kb/search?q=a&k=51", "/api/kb/search?q=a&k=x", "/api/kb/search?q=a&mode=raw",
                        "/api/kb/search?q=%22%22", "/api/kb/search?q=compost+AND&mode=advanced",
                        "/api/kb/search?q=nosuch%3Acompost&mode=advanced", "/api/kb/search?q=%25"}) {
    auto r = get(t);
    EXPECT_EQ(r.status, 400) << t << " " << r.body;
    auto e = json::parse(r.body).at("error").as_object();
    EXPECT_FALSE(e.at("message").as_string().empty()) << t;
  }
}

TEST_F(RoutesTest, InjectionAttemptsAreSearchedAsText) {
  for (const char* t : {"/api/kb/search?q=compost%22+OR+%22bread", "/api/kb/search?q=title%3Acompost",
                        "/api/kb/search?q=%27%3B+DROP+TABLE+docs%3B+--", "/api/kb/search?q=NEAR%28a+b%29",
                        "/api/kb/search?q=*"}) {
    auto r = get(t);
    EXPECT_TRUE(r.status == 200 || r.status == 400) << t;
    EXPECT_NE(r.status, 500) << t;
  }
  // Still serving afterwards.
  EXPECT_EQ(get("/api/kb/search?q=compost").status, 200);
}

TEST_F(RoutesTest, DocumentsAreFoundByIdAndUnknownIdsAre404) {
  std::string id = document_id("astronomy/moon-phases.txt");
  auto r = get("/api/kb/docs/" + id);
  ASSERT_EQ(r.status, 200);
  auto doc = json::parse(r.body).as_object();
  EXPECT_EQ(doc.at("title"), "Phases of the Moon");
  EXPECT_NE(std::string(doc.at("text").as_string()).find("synodic month"), std::string::npos);
  EXPECT_EQ(get("/api/kb/docs/ffffffffffffffff").status, 404);
  EXPECT_EQ(get("/api/kb/docs/").status, 404);
  EXPECT_EQ(get("/api/kb/docs/%G0").status, 400);
}

TEST_F(RoutesTest, AKbRouteAnswers503WithRetryAfterWhenTheWorkerPoolRefuses) {
  memgate::testing::FullWorkerPool full;
  ASSERT_TRUE(full.full());
  WorkerPool& pool = full.pool();
  http::Server server(http::ServerOptions{"127.0.0.1", 0, 1});
  std::shared_ptr<const Index> index = *index_;
  ASSERT_TRUE(install_rest_routes(server.router(), [index] { return index; }, pool).ok());
  ASSERT_TRUE(server.start().ok());

  for (const char* t : {"/api/kb/info", "/api/kb/search?q=compost"}) {
    http::testing::TestConnection c(server.port());
    auto r = c.get(t);
    ASSERT_TRUE(r.has_value()) << t;
    EXPECT_EQ(r->status, 503) << t << ": " << r->body;
    EXPECT_EQ(r->header("retry-after"), "1") << r->body;
    EXPECT_NE(r->body.find("\"unavailable\""), std::string::npos) << r->body;
  }
  EXPECT_EQ(pool.stats().refused, 2u);
  server.stop(std::chrono::milliseconds(0));
}

TEST_F(RoutesTest, ABadSearchIsAnswered400OnTheIoThreadWithoutWaitingForAWorker) {
  // The pool's only thread is held and its queue is full: anything that needs
  // a worker gets 503, so a 400 here was answered before the hop.
  memgate::testing::FullWorkerPool full;
  ASSERT_TRUE(full.full());
  WorkerPool& pool = full.pool();
  http::Server server(http::ServerOptions{"127.0.0.1", 0, 1});
  std::shared_ptr<const Index> index = *index_;
  ASSERT_TRUE(install_rest_routes(server.router(), [index] { return index; }, pool).ok());
  ASSERT_TRUE(server.start().ok());
  for (const char* t : {"/api/kb/search", "/api/kb/search?q=%ZZ", "/api/kb/search?q=a&k=0",
                        "/api/kb/search?q=a&mode=raw", "/api/kb/search?q=%22%22"}) {
    http::testing::TestConnection c(server.port());
    auto r = c.get(t);
    ASSERT_TRUE(r.has_value()) << t;
    EXPECT_EQ(r->status, 400) << t << ": " << r->body;
  }
  EXPECT_EQ(pool.stats().refused, 0u) << "none of them was offered to the pool";
  server.stop(std::chrono::milliseconds(0));
}

TEST_F(RoutesTest, TheSearchJsonIsWhatTheJsonLibraryWouldWriteAndEscapesWhatItMust) {
  SearchHit h;
  h.doc_id = "0123456789abcdef";
  h.title = "A \"quoted\" title\\ with\ttab";
  h.path = "a/b.md";
  h.heading = "caf\xC3\xA9 \x01";
  h.snippet = "<mark>x</mark> \xE2\x80\xA6";
  h.score = 12.345678901234567;
  std::string text = hits_json("bad \xFF utf8 \xC3", "simple", 10, {h});
  auto v = json::parse(text).as_object();
  EXPECT_EQ(v.at("query"), "bad \xEF\xBF\xBD utf8 \xEF\xBF\xBD") << text;
  EXPECT_EQ(v.at("count"), 1);
  auto hit = v.at("hits").as_array()[0].as_object();
  EXPECT_EQ(std::string(hit.at("title").as_string()), h.title);
  EXPECT_EQ(std::string(hit.at("heading").as_string()), h.heading);
  EXPECT_EQ(std::string(hit.at("snippet").as_string()), h.snippet);
  EXPECT_EQ(hit.at("score").as_double(), h.score);
  std::vector<std::string> keys;
  for (auto& kv : hit) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"id", "title", "path", "heading", "score", "snippet"}));
}

TEST_F(RoutesTest, AKbRouteAnswersOnTheWorkerPoolWhenItHasRoom) {
  WorkerPool pool(1);
  http::Server server(http::ServerOptions{"127.0.0.1", 0, 1});
  std::shared_ptr<const Index> index = *index_;
  ASSERT_TRUE(install_rest_routes(server.router(), [index] { return index; }, pool).ok());
  ASSERT_TRUE(server.start().ok());
  http::testing::TestConnection c(server.port());
  auto r = c.get("/api/kb/info");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << r->body;
  server.stop(std::chrono::milliseconds(0));
  pool.join();
}

TEST(PercentDecode, DecodesEscapesAndPlusesAndRefusesBadOnes) {
  EXPECT_EQ(*percent_decode("a+b%20c%2B", true), "a b c+");
  EXPECT_EQ(*percent_decode("a+b", false), "a+b");
  EXPECT_FALSE(percent_decode("%4", true).ok());
  EXPECT_FALSE(percent_decode("%", true).ok());
  EXPECT_FALSE(percent_decode("%x1", true).ok());
}

}  // namespace
}  // namespace memgate::kb
