// The MCP dispatcher, exchange by exchange: both protocol eras, JSON-RPC errors,
// Origin and bearer checks, SSE replies.
#include "memgate/mcp/server.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <map>
#include <stdexcept>

#include "memgate/base/worker_pool.h"
#include "memgate/base/worker_pool_testing.h"
#include "memgate/http/server.h"
#include "memgate/http/test_client.h"
#include "memgate/mcp/http_endpoint.h"

namespace memgate::mcp {
namespace {

namespace json = boost::json;

class McpServerTest : public ::testing::Test {
 protected:
  McpServerTest() : server_(options()) {
    Tool echo;
    echo.name = "echo";
    echo.title = "Echo";
    echo.description = "Says back what it gets.";
    echo.input_schema = json::parse(R"({"type":"object","properties":{"text":{"type":"string"}},"required":["text"]})")
                            .as_object();
    echo.output_schema =
        json::parse(R"({"type":"object","properties":{"said":{"type":"string"}},"required":["said"]})").as_object();
    echo.run = [](const json::object& args) {
      const json::value* t = args.if_contains("text");
      if (!t || !t->is_string()) return ToolResult::error("text must be a string");
      std::string said(t->as_string());
      return ToolResult{said, json::object{{"said", said}}, false};
    };
    server_.add_tool(echo);
    Tool boom;
    boom.name = "boom";
    boom.description = "Throws.";
    boom.input_schema = json::object{{"type", "object"}};
    boom.run = [](const json::object&) -> ToolResult { throw std::runtime_error("kaboom"); };
    server_.add_tool(boom);
  }
  static ServerOptions options() {
    ServerOptions o;
    o.name = "test";
    o.version = "9.9";
    return o;
  }

  HttpReply post(const std::string& body, std::map<std::string, std::string> headers = {},
                 const McpServer* server = nullptr, std::string method = "POST") {
    headers_ = std::move(headers);
    if (!headers_.count("accept")) headers_["accept"] = "application/json, text/event-stream";
    HttpExchange ex;
    ex.method = method;
    ex.body = body;
    ex.header = [this](std::string_view name) -> std::string_view {
      std::string low(name);
      for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto it = headers_.find(low);
      return it == headers_.end() ? std::string_view() : std::string_view(it->second);
    };
    return (server ? *server : server_).handle(ex);
  }
  static json::object parsed(const HttpReply& r) { return json::parse(r.body).as_object(); }
  static int64_t error_code(const HttpReply& r) { return parsed(r).at("error").at("code").as_int64(); }
  static std::string stateless(const std::string& method, const std::string& params_inner = "") {
    return R"({"jsonrpc":"2.0","id":7,"method":")" + method + R"(","params":{)" + params_inner +
           (params_inner.empty() ? "" : ",") +
           R"("_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",)"
           R"("io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}})";
  }

  McpServer server_;
  std::map<std::string, std::string> headers_;
};

TEST_F(McpServerTest, InitializeEchoesASupportedVersionAndOffersOursOtherwise) {
  auto r = post(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  auto result = parsed(r).at("result").as_object();
  EXPECT_EQ(result.at("protocolVersion"), "2025-06-18");
  EXPECT_EQ(result.at("serverInfo").at("name"), "test");
  EXPECT_TRUE(result.at("capabilities").as_object().contains("tools"));
  EXPECT_EQ(parsed(r).at("id"), 1);

  r = post(R"({"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"1999-01-01"}})");
  EXPECT_EQ(parsed(r).at("result").at("protocolVersion"), "2025-11-25");
  r = post(R"({"jsonrpc":"2.0","id":"b","method":"initialize","params":{"protocolVersion":"2026-07-28"}})");
  EXPECT_EQ(parsed(r).at("result").at("protocolVersion"), "2025-11-25") << "the stateless era has no handshake";
  r = post(R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{}})");
  EXPECT_EQ(error_code(r), kInvalidParams);
}

TEST_F(McpServerTest, NotificationsAndResponsesAreAcceptedWith202AndNoBody) {
  auto r = post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_EQ(r.status, 202);
  EXPECT_TRUE(r.body.empty());
  r = post(R"({"jsonrpc":"2.0","id":5,"result":{}})");
  EXPECT_EQ(r.status, 202);
}

TEST_F(McpServerTest, ToolsListDescribesEveryToolWithItsSchemas) {
  auto r = post(R"({"jsonrpc":"2.0","id":3,"method":"tools/list"})");
  ASSERT_EQ(r.status, 200);
  auto tools = parsed(r).at("result").at("tools").as_array();
  ASSERT_EQ(tools.size(), 2u);
  EXPECT_EQ(tools[0].at("name"), "echo");
  EXPECT_EQ(tools[0].at("inputSchema").at("type"), "object");
  EXPECT_EQ(tools[0].at("outputSchema").at("required").as_array()[0], "said");
  EXPECT_EQ(tools[0].at("annotations").at("readOnlyHint"), true);
  EXPECT_FALSE(tools[1].as_object().contains("outputSchema"));
  EXPECT_FALSE(parsed(r).at("result").as_object().contains("resultType")) << "2026 fields only in the 2026 era";
}

TEST_F(McpServerTest, ToolsCallReturnsTextAndStructuredContent) {
  auto r = post(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}})");
  ASSERT_EQ(r.status, 200);
  auto result = parsed(r).at("result").as_object();
  EXPECT_EQ(result.at("isError"), false);
  EXPECT_EQ(result.at("content").as_array()[0].at("text"), "hi");
  EXPECT_EQ(result.at("structuredContent").at("said"), "hi");
}

TEST_F(McpServerTest, ToolFailuresAreResultsAndUnknownToolsAreInvalidParams) {
  auto r = post(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{}}})");
  auto result = parsed(r).at("result").as_object();
  EXPECT_EQ(result.at("isError"), true);
  EXPECT_FALSE(result.contains("structuredContent"));
  r = post(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope"}})");
  EXPECT_EQ(error_code(r), kInvalidParams);
  r = post(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":[1]}})");
  EXPECT_EQ(error_code(r), kInvalidParams);
  r = post(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"boom"}})");
  EXPECT_EQ(error_code(r), kInternalError);
  // What the exception said is logged, never sent: it may name files or keys.
  EXPECT_EQ(r.body.find("kaboom"), std::string::npos) << r.body;
}

TEST_F(McpServerTest, JsonRpcErrorsFollowTheSpec) {
  auto r = post("{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), kParseError);
  EXPECT_TRUE(parsed(r).at("id").is_null());
  r = post(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), kInvalidRequest) << "batches were removed from the protocol";
  for (const char* bad : {R"({"id":1,"method":"ping"})", R"({"jsonrpc":"1.0","id":1,"method":"ping"})",
                          R"({"jsonrpc":"2.0","id":null,"method":"ping"})", R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})",
                          R"({"jsonrpc":"2.0","id":1,"method":3})", R"({"jsonrpc":"2.0","id":1})", "42", "\"x\""}) {
    r = post(bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(error_code(r), kInvalidRequest) << bad;
  }
  r = post(R"({"jsonrpc":"2.0","id":1,"method":"resources/list"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(error_code(r), kMethodNotFound);
  r = post(R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]})");
  EXPECT_EQ(error_code(r), kInvalidParams);
  r = post(R"({"jsonrpc":"2.0","id":"p","method":"ping"})");
  EXPECT_EQ(parsed(r).at("result").as_object().size(), 0u);
  EXPECT_EQ(parsed(r).at("id"), "p");
}

TEST_F(McpServerTest, GetAndDeleteAre405WithAllow) {
  for (const char* m : {"GET", "DELETE"}) {
    auto r = post("", {}, nullptr, m);
    EXPECT_EQ(r.status, 405) << m;
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].first, "Allow");
    EXPECT_EQ(r.headers[0].second, "POST");
  }
}

TEST_F(McpServerTest, OriginsOffTheAllowListAre403) {
  const std::string ping = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  EXPECT_EQ(post(ping, {{"origin", "https://evil.example"}}).status, 403);
  EXPECT_EQ(post(ping, {{"origin", "http://localhost.evil.example"}}).status, 403);
  EXPECT_EQ(post(ping, {{"origin", "null"}}).status, 403);
  EXPECT_EQ(post(ping, {{"origin", "http://localhost:5173"}}).status, 200);
  EXPECT_EQ(post(ping, {{"origin", "http://[::1]:8080"}}).status, 200);
  EXPECT_EQ(post(ping).status, 200) << "no Origin: not a browser";
  ServerOptions o;
  o.allowed_origins = {"https://app.example:8443"};
  McpServer strict(o);
  EXPECT_EQ(post(ping, {{"origin", "https://app.example:8443"}}, &strict).status, 200);
  EXPECT_EQ(post(ping, {{"origin", "https://app.example:8444"}}, &strict).status, 403);
  EXPECT_EQ(post(ping, {{"origin", "http://localhost"}}, &strict).status, 403);
  o.allowed_origins = {"*"};
  McpServer any(o);
  EXPECT_EQ(post(ping, {{"origin", "https://evil.example"}}, &any).status, 200);
}

TEST_F(McpServerTest, ABearerTokenIsRequiredWhenConfigured) {
  ServerOptions o;
  o.auth_token = "s3cret";
  McpServer guarded(o);
  const std::string ping = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  auto r = post(ping, {}, &guarded);
  EXPECT_EQ(r.status, 401);
  ASSERT_FALSE(r.headers.empty());
  EXPECT_EQ(r.headers[0].first, "WWW-Authenticate");
  EXPECT_EQ(r.body.find("s3cret"), std::string::npos);
  EXPECT_EQ(post(ping, {{"authorization", "Bearer wrong!"}}, &guarded).status, 401);
  EXPECT_EQ(post(ping, {{"authorization", "Bearer s3cre"}}, &guarded).status, 401);
  EXPECT_EQ(post(ping, {{"authorization", "Bearer s3cret"}}, &guarded).status, 200);
  EXPECT_EQ(post(ping, {{"authorization", "bearer s3cret"}}, &guarded).status, 200);
}

TEST_F(McpServerTest, AClientThatAcceptsOnlyEventStreamsGetsOneSseEvent) {
  auto r = post(R"({"jsonrpc":"2.0","id":1,"method":"ping"})", {{"accept", "text/event-stream"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/event-stream");
  EXPECT_EQ(r.body, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n");
  EXPECT_EQ(post(R"({"jsonrpc":"2.0","id":1,"method":"ping"})", {{"content-type", "text/plain"}}).status, 415);
}

// The media type is the part before the parameters, not a substring.
TEST_F(McpServerTest, OnlyAnApplicationJsonMediaTypeIsTakenWhateverItsParameters) {
  const std::string ping = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  EXPECT_EQ(post(ping, {{"content-type", "text/plain; x=application/json"}}).status, 415);
  EXPECT_EQ(post(ping, {{"content-type", "application/jsonx"}}).status, 415);
  EXPECT_EQ(post(ping, {{"content-type", "Application/JSON; charset=utf-8"}}).status, 200);
}

TEST_F(McpServerTest, StatelessDiscoverDescribesTheServerWithCachingHints) {
  auto r = post(stateless("server/discover"), {{"mcp-method", "server/discover"}, {"mcp-protocol-version", "2026-07-28"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto result = parsed(r).at("result").as_object();
  EXPECT_EQ(result.at("resultType"), "complete");
  EXPECT_EQ(result.at("supportedVersions").as_array()[0], "2026-07-28");
  EXPECT_EQ(result.at("serverInfo").at("version"), "9.9");
  EXPECT_EQ(result.at("cacheScope"), "public");
  EXPECT_GT(result.at("ttlMs").as_int64(), 0);
}

TEST_F(McpServerTest, StatelessToolsListAndCallCarryResultType) {
  auto r = post(stateless("tools/list"));
  auto result = parsed(r).at("result").as_object();
  EXPECT_EQ(result.at("resultType"), "complete");
  EXPECT_TRUE(result.contains("ttlMs"));
  EXPECT_EQ(result.at("tools").as_array().size(), 2u);
  r = post(stateless("tools/call", R"("name":"echo","arguments":{"text":"yo"})"),
           {{"mcp-method", "tools/call"}, {"mcp-name", "echo"}});
  ASSERT_EQ(r.status, 200) << r.body;
  result = parsed(r).at("result").as_object();
  EXPECT_EQ(result.at("resultType"), "complete");
  EXPECT_EQ(result.at("structuredContent").at("said"), "yo");
  r = post(stateless("resources/list"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_code(r), kMethodNotFound);
}

TEST_F(McpServerTest, StatelessHeadersMustMatchTheBody) {
  auto r = post(stateless("tools/list"), {{"mcp-method", "tools/call"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), kHeaderMismatch);
  r = post(stateless("tools/call", R"("name":"echo","arguments":{"text":"x"})"),
           {{"mcp-method", "tools/call"}, {"mcp-name", "other"}});
  EXPECT_EQ(error_code(r), kHeaderMismatch);
  r = post(stateless("tools/list"), {{"mcp-protocol-version", "2025-11-25"}});
  EXPECT_EQ(error_code(r), kHeaderMismatch);
}

TEST_F(McpServerTest, AnUnsupportedVersionIs400WithTheSupportedList) {
  std::string body = stateless("tools/list");
  body.replace(body.find("2026-07-28"), 10, "2099-01-01");
  auto r = post(body);
  EXPECT_EQ(r.status, 400);
  auto error = parsed(r).at("error").as_object();
  EXPECT_EQ(error.at("code"), kUnsupportedVersion);
  auto supported = error.at("data").at("supported").as_array();
  EXPECT_EQ(supported.size(), McpServer::supported_versions().size());
  // The older era's header, when unsupported, is refused the same way.
  r = post(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})", {{"mcp-protocol-version", "1999-01-01"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), kUnsupportedVersion);
  // Missing client capabilities in the stateless era.
  r = post(R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}})");
  EXPECT_EQ(error_code(r), kInvalidParams);
}


TEST(McpEndpoint, PostAnswers503WithRetryAfterWhenTheWorkerPoolRefuses) {
  memgate::testing::FullWorkerPool full;
  ASSERT_TRUE(full.full());
  WorkerPool& pool = full.pool();
  http::Server web(http::ServerOptions{"127.0.0.1", 0, 1});
  ServerOptions o;
  o.name = "test";
  o.version = "1";
  ASSERT_TRUE(install_endpoint(web.router(), "/mcp", std::make_shared<McpServer>(o), pool).ok());
  ASSERT_TRUE(web.start().ok());
  std::string body = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  http::testing::TestConnection c(web.port());
  ASSERT_TRUE(c.send("POST /mcp HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  auto r = c.read_response();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->header("retry-after"), "1") << r->body;
  EXPECT_EQ(pool.stats().refused, 1u);
  web.stop(std::chrono::milliseconds(0));
}

TEST(SplitList, TrimsAndDropsEmptyItems) {
  EXPECT_EQ(split_list(" a, b ,,c "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(split_list("").empty());
}

}  // namespace
}  // namespace memgate::mcp
