// The chat-completions client against the stand-in provider: the wire format,
// streaming, keep-alive, every way a provider fails, and the exchange counted
// for the request that started it.
#include "memgate/coach/chat_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "memgate/base/task_context.h"
#include "memgate/base/worker_pool.h"
#include "memgate/coach/fake_provider.h"
#include "memgate/memory/allocator.h"
#include "memgate/memory/memory_test_support.h"
#include "memgate/memory/route_accounting.h"

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

TEST_F(ChatClientTest, TheAnswerCapIsSentUnderTheConfiguredNameOnlyWhenSetAndTheProviderStopsThere) {
  provider_->set_pieces({"one ", "two ", "three ", "four"});
  auto c = client();
  ASSERT_TRUE(run(*c, question()).outcome.status.ok());
  ChatRequest capped = question();
  capped.max_tokens = 2;
  Finished f = run(*c, capped);
  ASSERT_TRUE(f.outcome.status.ok()) << f.outcome.status.to_string();
  EXPECT_EQ(f.outcome.content, "one two ");
  EXPECT_EQ(f.outcome.finish_reason, "length");
  ChatRequest ollama = question(true);
  ollama.max_tokens = 3;
  ollama.token_param = TokenParam::kMaxTokens;
  Finished g = run(*c, ollama);
  ASSERT_TRUE(g.outcome.status.ok()) << g.outcome.status.to_string();
  EXPECT_EQ(g.pieces, (std::vector<std::string>{"one ", "two ", "three "}));
  EXPECT_EQ(g.outcome.finish_reason, "length");

  std::vector<std::string> bodies = provider_->bodies();
  ASSERT_EQ(bodies.size(), 3u);
  EXPECT_EQ(bodies[0].find("max_"), std::string::npos) << "unset: not sent. " << bodies[0];
  EXPECT_NE(bodies[1].find("\"max_completion_tokens\":2"), std::string::npos) << bodies[1];
  EXPECT_EQ(bodies[1].find("\"max_tokens\""), std::string::npos) << bodies[1];
  EXPECT_NE(bodies[2].find("\"max_tokens\":3"), std::string::npos) << bodies[2];
  EXPECT_EQ(bodies[2].find("max_completion_tokens"), std::string::npos) << bodies[2];
}

TEST_F(ChatClientTest, APlainAnswersUsageIsReadAndAStreamAsksForItAndReadsItsFinalChunk) {
  provider_->set_pieces({"one ", "two ", "three ", "four"});
  auto c = client();
  Finished plain = run(*c, question());
  ASSERT_TRUE(plain.outcome.status.ok()) << plain.outcome.status.to_string();
  ASSERT_TRUE(plain.outcome.usage.has_value());
  EXPECT_EQ(plain.outcome.usage->prompt_tokens, 10);
  EXPECT_EQ(plain.outcome.usage->completion_tokens, 4);
  EXPECT_EQ(provider_->bodies()[0].find("stream_options"), std::string::npos) << "only streams ask";

  Finished streamed = run(*c, question(true));
  ASSERT_TRUE(streamed.outcome.status.ok()) << streamed.outcome.status.to_string();
  EXPECT_EQ(streamed.pieces, (std::vector<std::string>{"one ", "two ", "three ", "four"}));
  EXPECT_EQ(streamed.outcome.finish_reason, "stop") << "the usage chunk (choices empty) changes nothing else";
  ASSERT_TRUE(streamed.outcome.usage.has_value());
  EXPECT_EQ(streamed.outcome.usage->prompt_tokens, 10);
  EXPECT_EQ(streamed.outcome.usage->completion_tokens, 4);
  EXPECT_NE(provider_->bodies()[1].find("\"stream_options\":{\"include_usage\":true}"), std::string::npos)
      << provider_->bodies()[1];
}

TEST_F(ChatClientTest, AServerThatRejectsStreamOptionsIsAskedOnceMoreWithoutThemAndNeverAgain) {
  provider_->set_reject_stream_options(true);
  auto c = client();
  Finished first = run(*c, question(true));
  ASSERT_TRUE(first.outcome.status.ok()) << first.outcome.status.to_string();
  EXPECT_EQ(first.outcome.provider_status, 200);
  EXPECT_TRUE(first.outcome.provider_error.empty()) << "the refused attempt leaves nothing behind";
  EXPECT_EQ(first.pieces, (std::vector<std::string>{"Turn ", "the heap ", "every two weeks [1]."}));
  EXPECT_FALSE(first.outcome.usage.has_value()) << "not asked for, not sent";
  EXPECT_TRUE(c->stats().stream_options_rejected);
  Finished second = run(*c, question(true));
  ASSERT_TRUE(second.outcome.status.ok()) << second.outcome.status.to_string();

  std::vector<std::string> bodies = provider_->bodies();
  ASSERT_EQ(bodies.size(), 3u) << "one retry, then remembered";
  EXPECT_NE(bodies[0].find("stream_options"), std::string::npos);
  EXPECT_EQ(bodies[1].find("stream_options"), std::string::npos) << bodies[1];
  EXPECT_EQ(bodies[2].find("stream_options"), std::string::npos) << bodies[2];
  EXPECT_EQ(c->stats().connects, 1u) << "the 400 kept the connection; the retry went on it";
  EXPECT_EQ(c->stats().live_calls, 0);
}

TEST_F(ChatClientTest, AnErrorThatDoesNotNameStreamOptionsIsNotRetried) {
  provider_->set_mode(FakeProvider::Mode::kError);
  provider_->set_error_body(R"({"error":{"message":"stream_options is fine, the model is overloaded"}})");
  auto c = client();
  Finished f = run(*c, question(true));
  EXPECT_EQ(f.outcome.status.code(), Code::kUnavailable);
  EXPECT_EQ(f.outcome.provider_status, 500);
  EXPECT_EQ(provider_->requests(), 1) << "only a 400 naming the option is retried";
  EXPECT_FALSE(c->stats().stream_options_rejected);
}

TEST_F(ChatClientTest, HostileTokenCountsAreIgnoredNotTrusted) {
  auto c = client();
  for (const char* usage : {R"({"prompt_tokens":-1,"completion_tokens":5})",
                            R"({"prompt_tokens":10,"completion_tokens":1e300})",
                            R"({"prompt_tokens":"10","completion_tokens":5})",
                            R"({"prompt_tokens":18446744073709551615,"completion_tokens":5})",
                            R"({"prompt_tokens":2.5,"completion_tokens":5})", R"({"completion_tokens":5})", "null",
                            R"("lots")"}) {
    provider_->set_usage(usage);
    for (bool stream : {false, true}) {
      Finished f = run(*c, question(stream));
      ASSERT_TRUE(f.outcome.status.ok()) << usage << " " << f.outcome.status.to_string();
      EXPECT_EQ(f.outcome.content, "Turn the heap every two weeks [1].") << usage;
      EXPECT_FALSE(f.outcome.usage.has_value()) << usage << (stream ? " streamed" : " plain");
    }
  }
  provider_->set_usage(R"({"prompt_tokens":100000000,"completion_tokens":0})");
  Finished edge = run(*c, question(true));
  ASSERT_TRUE(edge.outcome.usage.has_value()) << "kMaxTokenCount itself is believed";
  EXPECT_EQ(edge.outcome.usage->prompt_tokens, kMaxTokenCount);
}

TEST_F(ChatClientTest, AProviderErrorIsUnavailableWithTheProvidersStatusAndItsWordsApart) {
  provider_->set_mode(FakeProvider::Mode::kError);
  auto c = client();
  Finished f = run(*c, question());
  EXPECT_EQ(f.outcome.status.code(), Code::kUnavailable);
  EXPECT_EQ(f.outcome.provider_status, 500);
  EXPECT_EQ(f.outcome.status.message(), "the provider answered 500");
  EXPECT_EQ(f.outcome.provider_error, "the model is overloaded");
  EXPECT_EQ(c->stats().live_calls, 0);
}

TEST_F(ChatClientTest, TheProvidersErrorTextIsCutAndItsSecretLookingWordsMasked) {
  provider_->set_mode(FakeProvider::Mode::kError);
  provider_->set_error_body(R"({"error":{"message":"bad key sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c in\nrequest )" +
                            std::string(500, 'x') + R"("}})");
  auto c = client();
  Finished f = run(*c, question());
  EXPECT_EQ(f.outcome.provider_status, 500);
  EXPECT_EQ(f.outcome.status.message().find("sk-live"), std::string::npos) << f.outcome.status.message();
  EXPECT_EQ(f.outcome.provider_error.find("sk-live"), std::string::npos) << f.outcome.provider_error;
  EXPECT_EQ(f.outcome.provider_error.rfind("bad key *** in\\x0arequest ", 0), 0u) << f.outcome.provider_error;
  EXPECT_LE(f.outcome.provider_error.size(), 203u);
}

TEST_F(ChatClientTest, AnEndlessChunkHeaderFailsTheCallAndNeverGrowsTheBufferBeyondItsBound) {
  provider_->set_mode(FakeProvider::Mode::kEndlessChunkHeader);
  auto c = client();
  Finished f = run(*c, question(true));
  EXPECT_EQ(f.outcome.status.code(), Code::kResourceExhausted) << f.outcome.status.to_string();
  EXPECT_NE(f.outcome.status.message().find("chunk header"), std::string::npos) << f.outcome.status.message();
  EXPECT_GT(c->stats().largest_read_buffer, 0u);
  EXPECT_LE(c->stats().largest_read_buffer, kMaxReadBuffer);
  EXPECT_EQ(c->stats().idle_connections, 0) << "the connection is not kept";
}

TEST_F(ChatClientTest, AnEndlessHeadFailsTheCallAndNeverGrowsTheBufferBeyondItsBound) {
  provider_->set_mode(FakeProvider::Mode::kEndlessHead);
  auto c = client();
  Finished f = run(*c, question());
  EXPECT_EQ(f.outcome.status.code(), Code::kResourceExhausted) << f.outcome.status.to_string();
  EXPECT_LE(c->stats().largest_read_buffer, kMaxReadBuffer);
}

TEST_F(ChatClientTest, ABodyLargerThanTheLimitFailsTheCallWhetherChunkedOrNot) {
  provider_->set_pieces({std::string(4000, 'a'), std::string(4000, 'b')});
  ChatClientOptions o;
  o.base_url = provider_->base_url();
  o.max_response_bytes = 2048;
  auto c = ChatClient::create(o);
  ASSERT_TRUE(c.ok());
  for (bool stream : {false, true}) {
    Finished f = run(**c, question(stream));
    EXPECT_EQ(f.outcome.status.code(), Code::kResourceExhausted) << stream << " " << f.outcome.status.to_string();
  }
  EXPECT_LE((*c)->stats().largest_read_buffer, kMaxReadBuffer);
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

// A call started while the client shuts down reports once, cancelled or not,
// and the shutdown does not wait on it: the provider here never answers, so a
// call that slipped past the cancel-all would hold shutdown() until its timeout.
// A stress check: the window it guards is a few instructions wide, so it rarely
// catches the race even without the start/shutdown lock; it does catch a double
// or missing report and a shutdown that waits.
TEST_F(ChatClientTest, ACallStartedDuringShutdownReportsAndDoesNotHoldIt) {
  provider_->set_mode(FakeProvider::Mode::kHang);
  for (int round = 0; round < 30; ++round) {
    auto c = client(30s);
    std::atomic<int> reported{0};
    std::promise<void> done;
    auto future = done.get_future();
    ChatHandlers h;
    h.on_done = [&](ChatOutcome) {
      if (reported.fetch_add(1) == 0) done.set_value();
    };
    std::thread starter([&] { c->start(question(), std::move(h)); });
    auto t0 = std::chrono::steady_clock::now();
    c->shutdown();
    auto took = std::chrono::steady_clock::now() - t0;
    starter.join();
    ASSERT_EQ(future.wait_for(5s), std::future_status::ready) << "round " << round << ": the call never reported";
    EXPECT_EQ(reported.load(), 1);
    EXPECT_LT(took, 5s) << "round " << round << ": shutdown waited on a call it should have cancelled";
  }
}

// --- the request's context follows the call ----------------------------------

// A task context that marks the thread while it runs a task and says when its
// last holder let it go.
class MarkingContext final : public TaskContext {
 public:
  ~MarkingContext() override {
    released_flag.store(true);
    released.set_value();
  }
  void run(const std::function<void()>& task) override {
    MarkingContext* outer = t_inside;
    t_inside = this;
    task();
    t_inside = outer;
  }
  // The context running a task on this thread, if any.
  static MarkingContext* inside() { return t_inside; }

  std::atomic<bool> released_flag{false};
  std::promise<void> released;

 private:
  static thread_local MarkingContext* t_inside;
};
thread_local MarkingContext* MarkingContext::t_inside = nullptr;

// Where each handler of a call ran: inside `expected` (or, when null, inside no
// context at all) and off the caller's thread.
struct HandlerLog {
  MarkingContext* expected = nullptr;
  std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> inside{0}, outside{0}, on_callers_thread{0};
  std::atomic<int> headers{0}, deltas{0}, wanted{0}, dones{0};
  std::atomic<bool> released_before_done{false};
  void note(std::atomic<int>& counter) {
    bool in = expected ? MarkingContext::inside() == expected
                       : MarkingContext::inside() == nullptr && current_task_context_source() == nullptr;
    (in ? inside : outside).fetch_add(1);
    if (std::this_thread::get_id() == caller) on_callers_thread.fetch_add(1);
    counter.fetch_add(1);
  }
};

// Starts a streamed call whose every handler (still_wanted too) notes where it ran.
std::future<ChatOutcome> start_logged(ChatClient& client, HandlerLog& log) {
  auto done = std::make_shared<std::promise<ChatOutcome>>();
  auto future = done->get_future();
  ChatRequest req = question(true);
  req.still_wanted = [&log] {
    log.note(log.wanted);
    return true;
  };
  ChatHandlers h;
  h.on_headers = [&log] { log.note(log.headers); };
  h.on_delta = [&log](std::string_view) {
    log.note(log.deltas);
    return true;
  };
  h.on_done = [&log, done](ChatOutcome o) {
    log.note(log.dones);
    if (log.expected) log.released_before_done.store(log.expected->released_flag.load());
    done->set_value(std::move(o));
  };
  client.start(std::move(req), std::move(h));
  return future;
}

ChatOutcome outcome_of(std::future<ChatOutcome> future) {
  if (future.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << "the call never reported";
    return {};
  }
  return future.get();
}

TEST_F(ChatClientTest, EveryHandlerOfACallRunsInsideTheContextOfTheThreadThatStartedIt) {
  provider_->set_pieces({"one ", "two ", "three"});
  auto c = client();
  auto context = std::make_shared<MarkingContext>();
  std::weak_ptr<MarkingContext> weak = context;
  auto released = context->released.get_future();
  HandlerLog log;
  log.expected = context.get();
  std::future<ChatOutcome> outcome;
  {
    // As a request's thread (or a worker running its task) does: a source is
    // installed while start() is called. Leaving the scope drops the source and
    // with it the test's last reference: the call is the only holder after.
    FixedTaskContextSource source(std::move(context));
    TaskContextSourceScope scope(&source);
    outcome = start_logged(*c, log);
  }
  ChatOutcome o = outcome_of(std::move(outcome));
  ASSERT_TRUE(o.status.ok()) << o.status.to_string();
  ASSERT_EQ(released.wait_for(20s), std::future_status::ready) << "the context was never released";
  EXPECT_TRUE(weak.expired());
  EXPECT_FALSE(log.released_before_done.load()) << "the context went before on_done ran";
  EXPECT_EQ(log.headers.load(), 1);
  EXPECT_EQ(log.deltas.load(), 3);
  EXPECT_GE(log.wanted.load(), 1);
  EXPECT_EQ(log.dones.load(), 1);
  EXPECT_EQ(log.outside.load(), 0) << "a handler ran outside the starter's context";
  EXPECT_EQ(log.on_callers_thread.load(), 0) << "the handlers run on the client's thread";
}

TEST_F(ChatClientTest, ACallStartedOutsideAnyContextRunsOutsideOneOnAConnectionAnAccountedCallUsed) {
  auto c = client();
  {
    FixedTaskContextSource source(std::make_shared<MarkingContext>());
    TaskContextSourceScope scope(&source);
    HandlerLog first;
    first.expected = static_cast<MarkingContext*>(source.capture().get());
    ASSERT_TRUE(outcome_of(start_logged(*c, first)).status.ok());
    EXPECT_EQ(first.outside.load(), 0);
  }
  HandlerLog second;  // expects no context at all
  ChatOutcome o = outcome_of(start_logged(*c, second));
  ASSERT_TRUE(o.status.ok()) << o.status.to_string();
  EXPECT_TRUE(o.reused_connection) << "the same pooled connection served both calls";
  EXPECT_EQ(second.outside.load(), 0) << "a handler ran inside a context it was never given";
  EXPECT_EQ(second.deltas.load(), 3);
  EXPECT_EQ(second.dones.load(), 1);
}

// What the caller's handlers hold may set off other work as it goes: in the
// coach the last handler holds the request's bulkhead place, and letting it go
// admits the next queued request, which posts its work to the worker pool. That
// work must not inherit the finished call's context, or one request's context
// would pass from call to call for as long as a queue lasts.
TEST_F(ChatClientTest, WorkPostedWhenTheCallersHandlersGoDoesNotInheritTheCallsContext) {
  WorkerPool pool(1);
  std::promise<MarkingContext*> posted;
  auto posted_context = posted.get_future();
  // Posts, when the last copy of it goes, a task that notes its context.
  struct PostsWhenItGoes {
    PostsWhenItGoes(WorkerPool* pool, std::promise<MarkingContext*>* posted) : pool(pool), posted(posted) {}
    ~PostsWhenItGoes() {
      pool->post([p = posted] { p->set_value(MarkingContext::inside()); });
    }
    PostsWhenItGoes(const PostsWhenItGoes&) = delete;
    PostsWhenItGoes& operator=(const PostsWhenItGoes&) = delete;
    WorkerPool* pool;
    std::promise<MarkingContext*>* posted;
  };
  auto context = std::make_shared<MarkingContext>();
  auto released = context->released.get_future();
  MarkingContext* raw = context.get();
  std::promise<MarkingContext*> done;
  auto done_context = done.get_future();
  auto c = client();
  {
    FixedTaskContextSource source(std::move(context));
    TaskContextSourceScope scope(&source);
    auto holder = std::make_shared<PostsWhenItGoes>(&pool, &posted);
    ChatHandlers h;
    h.on_done = [holder, &done](ChatOutcome) { done.set_value(MarkingContext::inside()); };
    holder.reset();  // the handler holds the only copy now
    c->start(question(), std::move(h));
  }
  ASSERT_EQ(done_context.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(done_context.get(), raw) << "on_done runs inside the call's context";
  ASSERT_EQ(posted_context.wait_for(20s), std::future_status::ready) << "the handler was never let go";
  EXPECT_EQ(posted_context.get(), nullptr) << "work posted as the handlers went inherited the call's context";
  EXPECT_EQ(released.wait_for(20s), std::future_status::ready);
  pool.join();
}

// With the real accounting (jemalloc's per-thread counters): what the client's
// thread allocates for a call (the parser filling the body, the JSON, the
// answer) counts for the route that started it.
TEST_F(ChatClientTest, TheProviderExchangeIsAccountedToTheRouteOfTheRequestThatStartedIt) {
  MEMGATE_SKIP_UNDER_ASAN();
  if (!memory::thread_counters_available()) GTEST_SKIP() << "no per-thread counters in this allocator";
  constexpr size_t kAnswer = 200 * 1024;
  constexpr uint32_t kRoute = 5;
  provider_->set_pieces({std::string(kAnswer, 'x')});
  auto c = client();
  memory::RouteAccounting accounting;
  std::promise<ChatOutcome> done;
  auto future = done.get_future();
  ChatHandlers h;
  h.on_done = [&done](ChatOutcome o) { done.set_value(std::move(o)); };
  accounting.begin(kRoute);  // as the HTTP layer does around a handler
  c->start(question(), std::move(h));
  accounting.end();
  ASSERT_EQ(future.wait_for(20s), std::future_status::ready);
  ChatOutcome o = future.get();
  ASSERT_TRUE(o.status.ok()) << o.status.to_string();
  ASSERT_EQ(o.content.size(), kAnswer);
  // Joining the client's thread: the call has reported and let the request's
  // context go, so its total is recorded.
  c->shutdown();
  const memory::RouteAllocation* row = nullptr;
  auto rows = accounting.snapshot();
  for (auto& r : rows)
    if (r.route == kRoute) row = &r;
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->requests, 1u);
  // Before the call carried the request's context, only start() on this thread
  // counted: 1,952 bytes here, a hundredth of the answer. With it, the body, its
  // JSON and the answer count: ~700 KB.
  EXPECT_GE(row->allocated, kAnswer) << "allocated " << row->allocated;
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

TEST(ChatStreamParser, ALongLineArrivingAByteAtATimeIsScannedOnceNotOncePerPiece) {
  // A provider decides how its stream is cut: 1-byte chunks make every byte a
  // read of its own. Rescanning the unfinished line on every piece made a 1 MiB
  // line (LLM_MAX_RESPONSE's default) cost 5.3 s of the client's one thread and
  // this 2 MiB one four times that; scanned once, it takes milliseconds.
  ChatStreamParser p;
  std::string line = "data: {\"choices\":[{\"delta\":{\"content\":\"" + std::string(2 << 20, 'a') + "\"}}]}\n";
  size_t got = 0;
  std::function<bool(std::string_view)> on = [&](std::string_view s) {
    got += s.size();
    return true;
  };
  auto start = std::chrono::steady_clock::now();
  bool ok = true;
  for (size_t i = 0; i < line.size() && ok; ++i) ok = p.feed(std::string_view(line).substr(i, 1), on);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(ok);
  EXPECT_EQ(got, size_t{2} << 20);
  EXPECT_LT(took, 2s) << "feeding " << line.size() << " bytes one at a time took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
}

// A response as a provider would send it, chunked, one chunk per piece.
std::string chunked_response(std::string_view content_type, const std::vector<std::string>& pieces) {
  std::string r = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type) + "\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& p : pieces) {
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", p.size());
    r += size + p + "\r\n";
  }
  return r + "0\r\n\r\n";
}

TEST(ReplayProviderResponse, ReadsAStreamCutAnywhereIntoTheSamePiecesAndAnswer) {
  std::string sse =
      "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"Turn \"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"weekly.\"},\"finish_reason\":\"stop\"}]}\n\n"
      "data: [DONE]\n\n";
  std::vector<std::string> one_byte_chunks;
  for (char c : sse) one_byte_chunks.emplace_back(1, c);
  for (const std::string& response :
       {chunked_response("text/event-stream", {sse}), chunked_response("text/event-stream", one_byte_chunks)}) {
    for (size_t piece : {size_t{1}, size_t{7}, size_t{1} << 16}) {
      ReplayOptions o;
      o.stream = true;
      o.piece = piece;
      ReplayedResponse r = replay_provider_response(response, o);
      ASSERT_TRUE(r.outcome.status.ok()) << piece << " " << r.outcome.status.to_string();
      EXPECT_TRUE(r.headers);
      EXPECT_EQ(r.pieces, (std::vector<std::string>{"Turn ", "weekly."}));
      EXPECT_EQ(r.outcome.content, "Turn weekly.");
      EXPECT_EQ(r.outcome.finish_reason, "stop");
      EXPECT_EQ(r.outcome.model, "m");
      EXPECT_TRUE(r.keep_alive);
    }
  }
}

TEST(ReplayProviderResponse, FailsATruncatedAnswerAnEndlessChunkHeaderAndAnOversizedBodyWithinTheirBounds) {
  std::string answer = R"({"choices":[{"message":{"content":"hi"}}]})";
  ReplayOptions o;
  o.piece = 512;
  ReplayedResponse cut = replay_provider_response(
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + answer, o);
  EXPECT_EQ(cut.outcome.status.code(), Code::kUnavailable) << cut.outcome.status.to_string();

  ReplayedResponse endless = replay_provider_response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(2 * kMaxReadBuffer, 'x'), o);
  EXPECT_EQ(endless.outcome.status.code(), Code::kResourceExhausted) << endless.outcome.status.to_string();
  EXPECT_LE(endless.largest_read_buffer, kMaxReadBuffer);

  o.max_response_bytes = 2048;
  ReplayedResponse big = replay_provider_response(
      chunked_response("application/json", {std::string(1500, 'a'), std::string(1500, 'b')}), o);
  EXPECT_EQ(big.outcome.status.code(), Code::kResourceExhausted) << big.outcome.status.to_string();
  EXPECT_LE(big.largest_body, 2048u);
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

// The TLS handshake and the reading of TLS records run in the steps Asio, Beast
// and OpenSSL take between the call's own handlers; they count only because the
// handlers carry the context as their executor. Measured here (~690 KB on the
// client's thread for the call): the request was charged all of it; with the
// context applied around the call's own handlers only, a third; without the
// context, 1.6 KB (start() on the caller's thread).
TEST(ChatClientTls, EveryStepOfACallOnItsThreadTheHandshakeIncludedIsAccountedToItsRequest) {
  MEMGATE_SKIP_UNDER_ASAN();
  if (!memory::thread_counters_available()) GTEST_SKIP() << "no per-thread counters in this allocator";
  std::string dir = make_certs("IP:127.0.0.1");
  ASSERT_FALSE(dir.empty());
  auto provider = FakeProvider::start(dir + "/server.pem", dir + "/server.key");
  ASSERT_NE(provider, nullptr);
  ChatClientOptions o;
  o.base_url = provider->base_url();
  o.ca_file = dir + "/ca.pem";
  o.max_idle_connections = 0;  // every call connects and shakes hands afresh
  auto c = ChatClient::create(o);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  memory::RouteAccounting accounting;
  constexpr uint32_t kRoute = 6;
  // Runs a call and returns the client's thread's allocation counter as its
  // on_done saw it (0 when the call failed).
  auto call = [&](bool accounted) -> uint64_t {
    auto done = std::make_shared<std::promise<uint64_t>>();
    auto future = done->get_future();
    ChatHandlers h;
    h.on_done = [done](ChatOutcome outcome) {
      EXPECT_TRUE(outcome.status.ok()) << outcome.status.to_string();
      done->set_value(outcome.status.ok() ? memory::thread_allocated_bytes() : 0);
    };
    if (accounted) accounting.begin(kRoute);
    (*c)->start(question(), std::move(h));
    if (accounted) accounting.end();
    if (future.wait_for(20s) != std::future_status::ready) {
      ADD_FAILURE() << "the call never reported";
      return 0;
    }
    return future.get();
  };
  uint64_t before = call(false);  // also the reference point for the next
  uint64_t after = call(true);
  ASSERT_TRUE(before > 0 && after > before);
  (*c)->shutdown();  // the accounted call has let its context go: recorded
  const memory::RouteAllocation* row = nullptr;
  auto rows = accounting.snapshot();
  for (auto& r : rows)
    if (r.route == kRoute) row = &r;
  ASSERT_NE(row, nullptr);
  // All the client's thread allocated for the call (and a crumb of the end of the previous one).
  uint64_t spent = after - before;
  EXPECT_GE(row->allocated, spent * 9 / 10) << "the client's thread allocated " << spent << " bytes for the call, "
                                             << row->allocated << " were accounted to its request";
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
