// The chat-completions client against the stand-in provider: the wire format,
// streaming, keep-alive, and every way a provider fails.
#include "memgate/coach/chat_client.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <future>

#include "memgate/coach/fake_provider.h"

namespace memgate::coach {
namespace {

using namespace std::chrono_literals;
using testing::FakeProvider;

struct Finished {
  ChatOutcome outcome;
  std::vector<std::string> pieces;
  bool headers = false;
};

// Runs one call and waits (bounded) for its outcome.
Finished run(ChatClient& client, ChatRequest req, std::function<bool(std::string_view)> on_delta = {}) {
  auto result = std::make_shared<Finished>();
  std::promise<void> done;
  auto future = done.get_future();
  ChatHandlers h;
  h.on_headers = [result] { result->headers = true; };
  h.on_delta = [result, on_delta](std::string_view p) {
    result->pieces.emplace_back(p);
    return on_delta ? on_delta(p) : true;
  };
  h.on_done = [result, &done](ChatOutcome o) {
    result->outcome = std::move(o);
    done.set_value();
  };
  client.start(std::move(req), std::move(h));
  EXPECT_EQ(future.wait_for(20s), std::future_status::ready) << "the call never reported";
  return *result;
}

ChatRequest question(bool stream = false) {
  ChatRequest r;
  r.model = "fake-model";
  r.stream = stream;
  r.messages = {{"system", "Passages: [1] compost"}, {"user", "How often do I turn the heap?"}};
  return r;
}

class ChatClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    provider_ = FakeProvider::start();
    ASSERT_NE(provider_, nullptr);
  }
  std::unique_ptr<ChatClient> client(std::chrono::milliseconds read_timeout = 10s) {
    ChatClientOptions o;
    o.base_url = provider_->base_url();
    o.api_key = "sk-test-secret";
    o.read_timeout = read_timeout;
    o.poll_interval = 20ms;
    auto c = ChatClient::create(o);
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    return std::move(*c);
  }
  std::unique_ptr<FakeProvider> provider_;
};

TEST_F(ChatClientTest, SendsTheModelMessagesAndKeyAndReturnsTheAnswer) {
  auto c = client();
  Finished f = run(*c, question());
  ASSERT_TRUE(f.outcome.status.ok()) << f.outcome.status.to_string();
  EXPECT_EQ(f.outcome.content, "Turn the heap every two weeks [1].");
  EXPECT_EQ(f.outcome.finish_reason, "stop");
  EXPECT_EQ(f.outcome.provider_status, 200);
  ASSERT_EQ(provider_->bodies().size(), 1u);
  std::string body = provider_->bodies()[0];
  EXPECT_NE(body.find("\"model\":\"fake-model\""), std::string::npos) << body;
  EXPECT_NE(body.find("Passages: [1] compost"), std::string::npos) << body;
  EXPECT_NE(body.find("\"stream\":false"), std::string::npos) << body;
  EXPECT_EQ(provider_->authorizations()[0], "Bearer sk-test-secret");
}

TEST_F(ChatClientTest, StreamedPiecesArriveInOrder) {
  provider_->set_pieces({"one ", "two ", "three ", "four"});
  auto c = client();
  Finished f = run(*c, question(true));
  ASSERT_TRUE(f.outcome.status.ok()) << f.outcome.status.to_string();
  EXPECT_TRUE(f.headers);
  EXPECT_EQ(f.pieces, (std::vector<std::string>{"one ", "two ", "three ", "four"}));
  EXPECT_EQ(f.outcome.content, "one two three four");
  EXPECT_EQ(f.outcome.finish_reason, "stop");
}

TEST_F(ChatClientTest, ASecondCallReusesTheKeptAliveConnection) {
  auto c = client();
  ASSERT_TRUE(run(*c, question()).outcome.status.ok());
  Finished second = run(*c, question(true));
  ASSERT_TRUE(second.outcome.status.ok()) << second.outcome.status.to_string();
  EXPECT_TRUE(second.outcome.reused_connection);
  EXPECT_EQ(c->stats().connects, 1u);
  EXPECT_EQ(provider_->connections(), 1);
}

TEST_F(ChatClientTest, AProviderErrorIsUnavailableWithTheProvidersStatusAndMessage) {
  provider_->set_mode(FakeProvider::Mode::kError);
  auto c = client();
  Finished f = run(*c, question());
  EXPECT_EQ(f.outcome.status.code(), Code::kUnavailable);
  EXPECT_EQ(f.outcome.provider_status, 500);
  EXPECT_NE(f.outcome.status.message().find("the model is overloaded"), std::string::npos);
  EXPECT_EQ(c->stats().live_calls, 0);
}

TEST_F(ChatClientTest, ASilentProviderTimesOutAndTheConnectionIsClosed) {
  provider_->set_mode(FakeProvider::Mode::kHang);
  auto c = client(300ms);
  auto before = std::chrono::steady_clock::now();
  Finished f = run(*c, question(true));
  EXPECT_EQ(f.outcome.status.code(), Code::kDeadlineExceeded) << f.outcome.status.to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);
  EXPECT_EQ(c->stats().live_calls, 0);
  EXPECT_EQ(c->stats().idle_connections, 0);
  EXPECT_TRUE(provider_->wait_for_closed_by_client(1)) << "the client closed its side";
}

TEST_F(ChatClientTest, AProviderThatKeepsTheStreamOpenIsCutOffAtTheRequestTimeout) {
  provider_->set_mode(FakeProvider::Mode::kGated);  // one piece, then silence
  ChatClientOptions o;
  o.base_url = provider_->base_url();
  o.read_timeout = 10s;
  o.request_timeout = 300ms;
  o.poll_interval = 20ms;
  auto c = ChatClient::create(o);
  ASSERT_TRUE(c.ok());
  Finished f = run(**c, question(true));
  EXPECT_EQ(f.outcome.status.code(), Code::kDeadlineExceeded) << f.outcome.status.to_string();
  EXPECT_EQ(f.pieces.size(), 1u);
  EXPECT_TRUE(provider_->wait_for_closed_by_client(1));
  EXPECT_EQ((*c)->stats().live_calls, 0);
}

TEST_F(ChatClientTest, ADroppedConnectionIsUnavailableWhetherStreamedOrNot) {
  provider_->set_mode(FakeProvider::Mode::kDrop);
  auto c = client();
  Finished plain = run(*c, question());
  EXPECT_EQ(plain.outcome.status.code(), Code::kUnavailable) << plain.outcome.status.to_string();
  Finished streamed = run(*c, question(true));
  EXPECT_EQ(streamed.outcome.status.code(), Code::kUnavailable) << streamed.outcome.status.to_string();
  EXPECT_EQ(streamed.pieces.size(), 1u) << "what arrived before the drop was relayed";
  EXPECT_EQ(c->stats().live_calls, 0);
}

TEST_F(ChatClientTest, AnUnreachableProviderIsUnavailable) {
  ChatClientOptions o;
  o.base_url = "http://127.0.0.1:1";
  auto c = ChatClient::create(o);
  ASSERT_TRUE(c.ok());
  Finished f = run(**c, question());
  EXPECT_EQ(f.outcome.status.code(), Code::kUnavailable) << f.outcome.status.to_string();
  EXPECT_EQ(f.outcome.provider_status, 0);
}

TEST_F(ChatClientTest, ACallerThatStopsWantingTheAnswerClosesTheUpstreamRequest) {
  provider_->set_mode(FakeProvider::Mode::kGated);
  auto c = client();
  std::atomic<bool> wanted{true};
  ChatRequest req = question(true);
  req.still_wanted = [&] { return wanted.load(); };
  Finished f = run(*c, std::move(req), [&](std::string_view) {
    wanted.store(false);  // the first piece arrived; now the caller goes away
    return true;
  });
  EXPECT_EQ(f.outcome.status.code(), Code::kCancelled);
  EXPECT_TRUE(provider_->wait_for_closed_by_client(1));
  EXPECT_EQ(c->stats().live_calls, 0);
}

TEST_F(ChatClientTest, ShuttingDownCancelsCallsInFlight) {
  provider_->set_mode(FakeProvider::Mode::kHang);
  auto c = client();
  std::promise<ChatOutcome> done;
  auto future = done.get_future();
  ChatHandlers h;
  h.on_done = [&](ChatOutcome o) { done.set_value(std::move(o)); };
  c->start(question(), std::move(h));
  ASSERT_TRUE(provider_->wait_for_requests(1));
  c->shutdown();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(future.get().status.code(), Code::kCancelled);
}

TEST(ChatClientUrl, AcceptsHttpAndHttpsBaseUrlsOnly) {
  EXPECT_TRUE(check_base_url("https://api.openai.com").ok());
  EXPECT_TRUE(check_base_url("http://127.0.0.1:8000/v1").ok());
  EXPECT_FALSE(check_base_url("ftp://x").ok());
  EXPECT_FALSE(check_base_url("not a url").ok());
  EXPECT_FALSE(check_base_url("https://user:key@api.example.com").ok());
}

TEST(ChatStreamParser, JoinsEventsSplitAcrossReads) {
  ChatStreamParser p;
  std::vector<std::string> got;
  auto on = [&](std::string_view s) {
    got.emplace_back(s);
    return true;
  };
  std::string body =
      "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"
      "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
      ": keep-alive\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  for (size_t i = 0; i < body.size(); i += 7) ASSERT_TRUE(p.feed(body.substr(i, 7), on));
  EXPECT_EQ(got, (std::vector<std::string>{"Hel", "lo"}));
  EXPECT_TRUE(p.done());
  EXPECT_EQ(p.finish_reason(), "stop");
  EXPECT_EQ(p.model(), "m");
  EXPECT_FALSE(ChatStreamParser().feed("data: {not json}\n", on));
}

}  // namespace
}  // namespace memgate::coach

namespace memgate::coach {
namespace {

// A CA and a server certificate for `san`, made with the openssl command line
// the way tests/support makes Redis's; returns the folder (empty on failure).
std::string make_certs(const std::string& san) {
  char tmpl[] = "/tmp/memgate-coach-tls-XXXXXX";
  if (!mkdtemp(tmpl)) return "";
  std::string d = tmpl;
  std::string q = " >" + d + "/openssl.log 2>&1";
  std::string cmds[] = {
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d + "/ca.key -out " + d +
          "/ca.pem -days 2 -subj /CN=memgate-test-ca" + q,
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d + "/server.key -out " + d +
          "/server.csr -subj /CN=provider" + q,
      "printf 'subjectAltName=" + san + "\\n' > " + d + "/san.ext",
      "openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d + "/ca.key -CAcreateserial -out " +
          d + "/server.pem -days 2 -extfile " + d + "/san.ext" + q};
  for (const std::string& c : cmds)
    if (std::system(c.c_str()) != 0) return "";
  return d;
}

Finished run_tls(const std::string& dir, const std::string& ca_file) {
  auto provider = FakeProvider::start(dir + "/server.pem", dir + "/server.key");
  EXPECT_NE(provider, nullptr);
  if (!provider) return {};
  ChatClientOptions o;
  o.base_url = provider->base_url();
  o.ca_file = ca_file;
  auto c = ChatClient::create(o);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  Finished f = run(**c, question(true));
  if (f.outcome.status.ok()) {
    EXPECT_EQ(provider->requests(), 1);
    EXPECT_TRUE(run(**c, question()).outcome.reused_connection) << "TLS connections are kept alive too";
  }
  return f;
}

TEST(ChatClientTls, TalksToAProviderWhoseCertificateTheConfiguredCaSigned) {
  std::string dir = make_certs("IP:127.0.0.1");
  ASSERT_FALSE(dir.empty());
  Finished f = run_tls(dir, dir + "/ca.pem");
  ASSERT_TRUE(f.outcome.status.ok()) << f.outcome.status.to_string();
  EXPECT_EQ(f.outcome.content, "Turn the heap every two weeks [1].");
  std::system(("rm -rf " + dir).c_str());
}

TEST(ChatClientTls, RefusesACertificateTheSystemStoreDoesNotTrust) {
  std::string dir = make_certs("IP:127.0.0.1");
  ASSERT_FALSE(dir.empty());
  Finished f = run_tls(dir, "");
  EXPECT_EQ(f.outcome.status.code(), Code::kUnavailable) << f.outcome.status.to_string();
  EXPECT_NE(f.outcome.status.message().find("TLS handshake"), std::string::npos) << f.outcome.status.message();
  std::system(("rm -rf " + dir).c_str());
}

TEST(ChatClientTls, RefusesACertificateForAnotherHost) {
  std::string dir = make_certs("DNS:other.example");
  ASSERT_FALSE(dir.empty());
  Finished f = run_tls(dir, dir + "/ca.pem");
  EXPECT_EQ(f.outcome.status.code(), Code::kUnavailable) << f.outcome.status.to_string();
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace memgate::coach
