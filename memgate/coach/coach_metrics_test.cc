// The coach's /metrics families: a real Coach behind a real http::Server, the
// stand-in provider, and the exposition read back the way Prometheus would.
#include "memgate/coach/coach_metrics.h"

#include <gtest/gtest.h>

#include "memgate/base/worker_pool.h"
#include "memgate/coach/coach_module.h"
#include "memgate/coach/coach_test_support.h"
#include "memgate/coach/fake_provider.h"
#include "memgate/http/server.h"
#include "memgate/http/test_client.h"
#include "memgate/metrics/metrics.h"
#include "memgate/metrics/parsed_exposition.h"
#include "tests/support/process.h"

namespace memgate::coach {
namespace {

using namespace std::chrono_literals;
using http::testing::fetch;
using http::testing::TestConnection;
using memgate::testing::wait_until;
using metrics::ParsedExposition;
using testing::FakeProvider;

constexpr const char* kOutcomes[] = {"extractive",     "generative", "rejected", "invalid",
                                     "provider_error", "timeout",    "cancelled"};

std::string outcome(const std::string& name) { return "memgate_coach_requests_total{outcome=\"" + name + "\"}"; }

// How many times a family is declared: Metrics does not merge families, so two
// collectors for one coach would show up here as 2.
int type_lines(const std::string& text, const std::string& family) {
  int n = 0;
  const std::string needle = "# TYPE " + family + " ";
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string post_bytes(const std::string& body) {
  return "POST /api/ai/coach HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

class CoachMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    provider_ = FakeProvider::start();
    ASSERT_NE(provider_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->stop(2s);
    if (coach_) coach_->stop();
  }

  void start(bool with_provider, CoachOptions o = {}) {
    if (with_provider) {
      o.llm_base_url = provider_->base_url();
      o.llm_model = "fake-model";
    }
    auto coach = Coach::create(o, default_templates(), [] { return std::shared_ptr<const Retriever>(); }, workers_);
    ASSERT_TRUE(coach.ok()) << coach.status().to_string();
    coach_ = *coach;
    collector_ = std::make_shared<CoachCollector>(coach_);
    metrics_.add_collectable(collector_);
    server_ = testing::serve_coach(coach_);
    ASSERT_TRUE(server_->running());
  }
  int ask(const std::string& body) {
    auto r = testing::post_coach(server_->port(), body);
    return r ? r->status : -1;
  }
  ParsedExposition scrape() {
    ParsedExposition p = metrics::parse_exposition(metrics_.serialize());
    EXPECT_EQ(p.error, "") << "the exposition does not parse";
    return p;
  }
  double at(const ParsedExposition& p, const std::string& series) {
    auto v = p.at(series);
    EXPECT_TRUE(v.has_value()) << series << " is missing";
    return v.value_or(-1);
  }

  WorkerPool workers_{2};
  metrics::Metrics metrics_;
  std::unique_ptr<FakeProvider> provider_;
  std::shared_ptr<Coach> coach_;
  std::shared_ptr<CoachCollector> collector_;
  std::unique_ptr<http::Server> server_;
};

TEST_F(CoachMetricsTest, EveryFamilyIsThereFromTheStartWithItsTypeAndEveryOutcomeAtZero) {
  start(false);
  ParsedExposition p = scrape();
  EXPECT_EQ(p.types["memgate_coach_requests_total"], "counter");
  EXPECT_EQ(p.types["memgate_coach_upstream_connects_total"], "counter");
  EXPECT_EQ(p.types["memgate_coach_upstream_reuses_total"], "counter");
  for (const char* gauge : {"memgate_coach_inflight", "memgate_coach_queued", "memgate_coach_jobs",
                            "memgate_coach_upstream_live_calls", "memgate_coach_upstream_connections"})
    EXPECT_EQ(p.types[gauge], "gauge") << gauge;
  for (const char* o : kOutcomes) EXPECT_EQ(at(p, outcome(o)), 0) << o;
  EXPECT_EQ(at(p, "memgate_coach_upstream_connections{state=\"busy\"}"), 0);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connections{state=\"idle\"}"), 0);
  EXPECT_EQ(p.types["memgate_coach_tokens_total"], "counter");
  EXPECT_EQ(at(p, "memgate_coach_tokens_total{kind=\"prompt\"}"), 0);
  EXPECT_EQ(at(p, "memgate_coach_tokens_total{kind=\"completion\"}"), 0);
}

TEST_F(CoachMetricsTest, TheTokensTheProviderSaidItUsedAreCountedByKind) {
  start(true);
  ASSERT_EQ(ask(R"({"question":"one"})"), 200);
  ASSERT_EQ(ask(R"({"question":"two","stream":true})"), 200);
  ParsedExposition p = scrape();
  EXPECT_EQ(at(p, "memgate_coach_tokens_total{kind=\"prompt\"}"), 20);
  EXPECT_EQ(at(p, "memgate_coach_tokens_total{kind=\"completion\"}"), 6) << "three pieces each";
}

TEST_F(CoachMetricsTest, ExtractiveAnswersAndInvalidRequestsAreCountedByOutcome) {
  start(false);
  ASSERT_EQ(ask(R"({"question":"How do I turn a compost heap?"})"), 200);
  ASSERT_EQ(ask(R"({"question":"And when?"})"), 200);
  ASSERT_EQ(ask("{not json"), 400);
  ParsedExposition p = scrape();
  EXPECT_EQ(at(p, outcome("extractive")), 2);
  EXPECT_EQ(at(p, outcome("invalid")), 1);
  EXPECT_EQ(at(p, outcome("generative")), 0);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connects_total"), 0) << "extractive answers never call a provider";
}

TEST_F(CoachMetricsTest, TheBulkheadAndTheUpstreamPoolShowWhileAProviderHoldsARequest) {
  provider_->set_mode(FakeProvider::Mode::kGated);
  CoachOptions o;
  o.max_inflight = 1;
  o.max_queue = 1;
  start(true, o);

  // One at work (held by the provider)...
  TestConnection first(server_->port(), 10s), second(server_->port(), 10s);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(first.send(post_bytes(R"({"question":"one"})")));
  ASSERT_TRUE(provider_->wait_for_requests(1));
  ParsedExposition p = scrape();
  EXPECT_EQ(at(p, "memgate_coach_inflight"), 1);
  EXPECT_EQ(at(p, "memgate_coach_queued"), 0);
  EXPECT_EQ(at(p, "memgate_coach_jobs"), 1);
  EXPECT_EQ(at(p, "memgate_coach_upstream_live_calls"), 1);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connections{state=\"busy\"}"), 1);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connections{state=\"idle\"}"), 0);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connects_total"), 1);

  // ...one waiting behind it, and one turned away.
  ASSERT_TRUE(second.send(post_bytes(R"({"question":"two"})")));
  ASSERT_TRUE(wait_until([&] { return scrape().at("memgate_coach_queued") == 1.0; }, 10s));
  EXPECT_EQ(ask(R"({"question":"three"})"), 503);
  p = scrape();
  EXPECT_EQ(at(p, outcome("rejected")), 1);
  EXPECT_EQ(at(p, "memgate_coach_jobs"), 2);

  // Released: both answered, the second on the connection the first gave back.
  provider_->release();
  auto a = first.read_response();
  auto b = second.read_response();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->status, 200) << a->body;
  EXPECT_EQ(b->status, 200) << b->body;
  ASSERT_TRUE(wait_until([&] { return scrape().at("memgate_coach_jobs") == 0.0; }, 10s));
  p = scrape();
  EXPECT_EQ(at(p, outcome("generative")), 2);
  EXPECT_EQ(at(p, "memgate_coach_inflight"), 0);
  EXPECT_EQ(at(p, "memgate_coach_queued"), 0);
  EXPECT_EQ(at(p, "memgate_coach_upstream_live_calls"), 0);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connections{state=\"busy\"}"), 0);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connections{state=\"idle\"}"), 1);
  EXPECT_EQ(at(p, "memgate_coach_upstream_connects_total"), 1);
  EXPECT_EQ(at(p, "memgate_coach_upstream_reuses_total"), 1);

  // A provider failure is its own outcome.
  provider_->set_mode(FakeProvider::Mode::kError);
  EXPECT_EQ(ask(R"({"question":"four"})"), 502);
  EXPECT_EQ(at(scrape(), outcome("provider_error")), 1);
}

TEST_F(CoachMetricsTest, ACollectorWithoutACoachReportsNothing) {
  start(false);
  collector_->set(nullptr);
  EXPECT_EQ(metrics_.serialize().find("memgate_coach_"), std::string::npos);
}

// The module: the families appear where the loader's ModuleContext says, and a
// second load replaces the Coach they read instead of adding a second set.
TEST(CoachModuleMetrics, AReloadLeavesOneSetOfFamiliesReadingTheNewCoach) {
  Config config;
  WorkerPool workers(2);
  metrics::Metrics metrics;
  http::ServerOptions so;
  so.host = "127.0.0.1";
  http::Server server(so);
  ASSERT_TRUE(server.start().ok());
  auto module = make_coach_module(config, [](const std::string&) { return std::optional<std::string>(); },
                                  [] { return std::shared_ptr<const Retriever>(); });
  ASSERT_TRUE(module.ok()) << module.status().to_string();
  startup::ModuleContext ctx{config, server.router(), workers, {}, 0, nullptr, "test", &metrics};
  auto built = (*module)->build(ctx);
  ASSERT_TRUE(built.ok()) << built.status().to_string();
  const std::string artifact = built->flatten();
  auto load = [&] { return (*module)->load(*view_source(artifact), ctx); };
  auto ask = [&] {
    auto r = testing::post_coach(server.port(), R"({"question":"x"})");
    return r ? r->status : -1;
  };
  auto extractive = [&] { return metrics::parse_exposition(metrics.serialize()).at(outcome("extractive")); };

  ASSERT_TRUE(load().ok());
  ASSERT_EQ(ask(), 200);
  EXPECT_EQ(extractive(), 1.0);

  ASSERT_TRUE(load().ok());  // the reload
  std::string text = metrics.serialize();
  EXPECT_EQ(type_lines(text, "memgate_coach_requests_total"), 1) << text;
  EXPECT_EQ(type_lines(text, "memgate_coach_upstream_connections"), 1) << text;
  EXPECT_EQ(extractive(), 0.0) << "the families read the new Coach";
  ASSERT_EQ(ask(), 200);
  EXPECT_EQ(extractive(), 1.0);

  // Loaded into another Metrics, the families move there: none are left behind.
  metrics::Metrics other;
  ctx.metrics = &other;
  ASSERT_TRUE(load().ok());
  EXPECT_EQ(metrics.serialize().find("memgate_coach_"), std::string::npos);
  EXPECT_EQ(type_lines(other.serialize(), "memgate_coach_requests_total"), 1);

  // And without one, the module serves no families at all.
  ctx.metrics = nullptr;
  ASSERT_TRUE(load().ok());
  EXPECT_EQ(other.serialize().find("memgate_coach_"), std::string::npos);
  ASSERT_EQ(ask(), 200) << "the coach still answers";

  (*module)->stop();
  server.stop(2s);
}

}  // namespace
}  // namespace memgate::coach
