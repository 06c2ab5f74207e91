#include "memgate/coach/coach_module.h"

#include <mutex>

#include "memgate/coach/coach_metrics.h"
#include "memgate/coach/mcp_prompt.h"
#include "memgate/coord/coordinator.h"
#include "memgate/metrics/metrics.h"

namespace memgate::coach {
namespace {

// Templates are a few KiB; anything near this is not ours.
constexpr uint64_t kMaxTemplateArtifact = 1 << 20;

class CoachModule final : public startup::Module {
 public:
  CoachModule(bool default_on, CoachOptions options, RetrieverSource retrievers,
              std::shared_ptr<mcp::Registry> mcp_registry)
      : default_on_(default_on),
        options_(std::move(options)),
        retrievers_(std::move(retrievers)),
        mcp_registry_(std::move(mcp_registry)) {}

  std::string name() const override { return "ai-routes"; }
  int stage() const override { return 2; }
  // The guard sheds the coach first: its requests are the heaviest and the most
  // optional (the original guide's AI routes).
  int shed_priority() const override { return 1; }
  startup::FlagSpec flag() const override { return {"ENABLE_AI_ROUTES", default_on_}; }
  std::optional<startup::FleetSpec> fleet() const override {
    const coord::FleetTaskSpec& t = coord::kAiRoutesInit;
    return startup::FleetSpec{std::string(t.lock_key), t.lock_ttl, std::string(t.done_key), t.done_ttl, "1"};
  }
  std::vector<startup::RouteDecl> routes() const override {
    return {{http::Method::kPost, std::string(kCoachRoute)}, {http::Method::kGet, std::string(kCoachStatusRoute)}};
  }

  // The artifact is the templates this build of memgate carries: its inputs are
  // the templates themselves (a new build with new templates is a new artifact).
  std::string input_fingerprint() const override {
    return "templates sha " + std::to_string(std::hash<std::string>{}(templates_to_artifact(default_templates())));
  }
  startup::PeakEstimate estimate_peaks() const override { return {1 << 20, 1 << 20, 0}; }

  Result<ChunkedBytes> build(startup::ModuleContext&) override {
    PromptTemplates t = default_templates();
    std::string artifact = templates_to_artifact(t);
    // What load will accept, checked where it is made.
    auto back = templates_from_artifact(artifact);
    if (!back.ok()) return back.status();
    return ChunkedBytes::from_string(std::move(artifact));
  }

  Status load(ByteSource& bytes, startup::ModuleContext& ctx) override {
    auto artifact = startup::read_artifact(bytes, kMaxTemplateArtifact);
    if (!artifact.ok()) return artifact.status();
    auto templates = templates_from_artifact(*artifact);
    if (!templates.ok()) return templates.status();
    if (mcp_registry_)
      mcp_registry_->add_prompt(coach_prompt(*templates, retrievers_, options_.passages, options_.max_question));
    auto coach = Coach::create(options_, std::move(*templates), retrievers_, ctx.workers);
    if (!coach.ok()) return coach.status();
    std::shared_ptr<Coach> c = *coach;
    {
      std::lock_guard lock(mu_);
      if (coach_) coach_->stop();
      coach_ = c;
      publish_metrics(c, ctx.metrics);
    }
    auto added = ctx.router.add(http::Method::kPost, kCoachRoute,
                                [c](const http::Request& req, http::Responder r) { c->handle(req, std::move(r)); });
    if (!added.ok()) return added.status();
    added = ctx.router.add(http::Method::kGet, kCoachStatusRoute, [c](const http::Request&) { return c->status(); });
    if (!added.ok()) return added.status();
    return Status::Ok();
  }

  void stop() override {
    std::lock_guard lock(mu_);
    if (coach_) coach_->stop();
  }

 private:
  // One collector per Metrics, pointed at the current Coach: a reload swaps the
  // Coach it reads instead of registering a second collector, so no scrape, not
  // even one racing the reload, sees the coach's families twice. The Metrics
  // holds the collector weakly; dropping it here is what unregisters it.
  void publish_metrics(const std::shared_ptr<Coach>& coach, metrics::Metrics* metrics) {
    if (collector_ && collector_in_ == metrics) {
      collector_->set(coach);
      return;
    }
    collector_.reset();
    collector_in_ = metrics;
    if (!metrics) return;
    collector_ = std::make_shared<CoachCollector>(coach);
    metrics->add_collectable(collector_);
  }

  bool default_on_;
  CoachOptions options_;
  RetrieverSource retrievers_;
  std::shared_ptr<mcp::Registry> mcp_registry_;  // null: no MCP prompt
  std::mutex mu_;
  std::shared_ptr<Coach> coach_;                // guarded by mu_
  std::shared_ptr<CoachCollector> collector_;   // guarded by mu_
  metrics::Metrics* collector_in_ = nullptr;    // where collector_ is registered; guarded by mu_
};

}  // namespace

Result<std::shared_ptr<startup::Module>> make_coach_module(const Config& config, const EnvLookup& env,
                                                           RetrieverSource retrievers,
                                                           std::shared_ptr<mcp::Registry> mcp_registry) {
  auto options = coach_options_from_env(env);
  if (!options.ok()) return options.status();
  if (!retrievers) retrievers = [] { return std::shared_ptr<const Retriever>(); };
  return std::shared_ptr<startup::Module>(
      std::make_shared<CoachModule>(config.enable_ai_routes, std::move(*options), std::move(retrievers),
                                    std::move(mcp_registry)));
}

}  // namespace memgate::coach
