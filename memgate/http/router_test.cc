#include "memgate/http/router.h"

#include <gtest/gtest.h>

namespace memgate::http {
namespace {

Response ok(const Request&) { return Response::text(200, "ok"); }

TEST(Router, ExactRouteBeatsPrefixAndLongestPrefixWins) {
  Router router;
  RouteId docs = *router.add(Method::kGet, "/api/kb/docs/*", ok);
  RouteId api = *router.add(Method::kGet, "/api/*", ok);
  RouteId exact = *router.add(Method::kGet, "/api/kb/docs/special", ok);
  auto table = router.snapshot();
  EXPECT_EQ(table->find(Method::kGet, "/api/kb/docs/42").route->id, docs);
  EXPECT_EQ(table->find(Method::kGet, "/api/kb/docs/").route->id, docs);
  EXPECT_EQ(table->find(Method::kGet, "/api/kb/other").route->id, api);
  EXPECT_EQ(table->find(Method::kGet, "/api/kb/docs/special").route->id, exact);
  EXPECT_EQ(table->find(Method::kGet, "/nothing").route, nullptr);
  EXPECT_EQ(router.pattern(docs), "/api/kb/docs/*");
  EXPECT_EQ(router.pattern(kUnmatchedRoute), "unmatched");
}

TEST(Router, WrongMethodFindsTheRouteButNoEndpointAndHeadFallsBackToGet) {
  Router router;
  ASSERT_TRUE(router.add(Method::kGet, "/x", ok).ok());
  ASSERT_TRUE(router.add(Method::kPost, "/x", ok).ok());
  auto table = router.snapshot();
  auto put = table->find(Method::kPut, "/x");
  ASSERT_NE(put.route, nullptr);
  EXPECT_EQ(put.endpoint, nullptr);
  EXPECT_EQ(put.route->allow, "GET, HEAD, POST");
  EXPECT_NE(table->find(Method::kHead, "/x").endpoint, nullptr);
}

TEST(Router, RejectsPatternsWithoutLeadingSlashOrWithAStarInside) {
  Router router;
  EXPECT_EQ(router.add(Method::kGet, "x", ok).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(router.add(Method::kGet, "/a/*/b", ok).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(router.add(Method::kOther, "/a", ok).status().code(), Code::kInvalidArgument);
}

TEST(Router, PendingEndpointCarriesA503WithRetryAfterAndTheModuleState) {
  Router router;
  RouteId id = *router.add_pending(Method::kPost, "/api/coach", Pending::of("coach", "building", 7));
  auto match = router.snapshot()->find(Method::kPost, "/api/coach");
  ASSERT_NE(match.endpoint, nullptr);
  ASSERT_EQ(match.endpoint->kind, Endpoint::Kind::kPending);
  const Response& r = *match.endpoint->pending;
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body,
            R"({"error":{"code":"unavailable","message":"coach is building","module":"coach","state":"building"}})");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Retry-After");
  EXPECT_EQ(r.headers[0].second, "7");

  // Making it ready keeps the id and bumps the version readers compare.
  uint64_t before = router.version();
  RouteId again = *router.add(Method::kPost, "/api/coach", ok);
  EXPECT_EQ(again, id);
  EXPECT_GT(router.version(), before);
  EXPECT_EQ(router.snapshot()->find(Method::kPost, "/api/coach").endpoint->kind, Endpoint::Kind::kSync);
}

TEST(Router, AsyncHandlersAreRecognisedByTheirSignature) {
  Router router;
  ASSERT_TRUE(router.add(Method::kGet, "/a", [](const Request&, Responder r) { std::move(r).send(Response::text(200, "")); }).ok());
  EXPECT_EQ(router.snapshot()->find(Method::kGet, "/a").endpoint->kind, Endpoint::Kind::kAsync);
}

TEST(Router, OldSnapshotsStayValidAfterChanges) {
  Router router;
  ASSERT_TRUE(router.add(Method::kGet, "/a", ok).ok());
  auto old = router.snapshot();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(router.add(Method::kGet, "/r" + std::to_string(i), ok).ok());
  EXPECT_NE(old->find(Method::kGet, "/a").endpoint, nullptr);
  EXPECT_EQ(old->find(Method::kGet, "/r5").route, nullptr);
  EXPECT_NE(router.snapshot()->find(Method::kGet, "/r5").route, nullptr);
  EXPECT_EQ(router.route_id_count(), 102u);
}

TEST(Request, SplitsTargetAndFindsHeadersCaseInsensitively) {
  Header headers[] = {{"Content-Type", "text/plain"}, {"X-Request-Id", "abc-123"}};
  RequestBuilder b;
  b.method("GET").target("/p/q?x=1&y=two&z").headers(headers);
  const Request& r = b.get();
  EXPECT_EQ(r.path(), "/p/q");
  EXPECT_EQ(r.query(), "x=1&y=two&z");
  EXPECT_EQ(r.query_param("y"), "two");
  EXPECT_EQ(r.query_param("z"), "");
  EXPECT_EQ(r.query_param("w"), "");
  EXPECT_EQ(r.header("content-type"), "text/plain");
  EXPECT_EQ(r.request_id(), "abc-123");
}

TEST(Request, GeneratesADistinctIdWhenTheClientSentNone) {
  char buf1[Request::kIdBufferSize], buf2[Request::kIdBufferSize];
  RequestBuilder a, b;
  a.method("GET").target("/").id_source(buf1, 0xabc, 1);
  b.method("GET").target("/").id_source(buf2, 0xabc, 2);
  EXPECT_FALSE(a.get().request_id().empty());
  EXPECT_NE(a.get().request_id(), b.get().request_id());
}

TEST(Response, ErrorBodiesAreEscapedJson) {
  Response r = Response::error(400, "bad \"quote\"\n");
  EXPECT_EQ(r.body, R"({"error":{"code":"bad_request","message":"bad \"quote\"\n"}})");
  EXPECT_EQ(r.content_type, "application/json");
  Response s = Response::from_status(Unavailable("redis down"));
  EXPECT_EQ(s.status, http_status_for(Code::kUnavailable));
  EXPECT_NE(s.body.find(R"("code":"unavailable")"), std::string::npos);
}

TEST(Response, SseEventFramesEachDataLine) {
  EXPECT_EQ(sse_event("a\nb", "msg", "7"), "event: msg\nid: 7\ndata: a\ndata: b\n\n");
  EXPECT_EQ(sse_event("x"), "data: x\n\n");
}

}  // namespace
}  // namespace memgate::http
