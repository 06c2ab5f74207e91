// The coach's families are built by hand (metrics/families.h) from the Coach's own
// atomics at scrape time rather than kept in prometheus-cpp counters: the request
// path already counts once for /api/ai/coach/status, and a second set of atomics
// would only be two figures that can disagree.
#include "memgate/coach/coach_metrics.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "memgate/metrics/families.h"

namespace memgate::coach {

void CoachCollector::set(std::shared_ptr<const Coach> coach) {
  std::lock_guard lock(mu_);
  coach_ = std::move(coach);
}

std::vector<prometheus::MetricFamily> CoachCollector::Collect() const {
  std::shared_ptr<const Coach> coach;
  {
    std::lock_guard lock(mu_);
    coach = coach_;
  }
  if (!coach) return {};
  using metrics::add_counter;
  using metrics::add_gauge;
  auto value = [](const std::atomic<uint64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };

  const Coach::Counters& c = coach->counters();
  // A finished request is counted under exactly one outcome. Counters::requests
  // is left out: it also counts requests still at work and the few a shutdown
  // answers 503, and a total that is not the sum of its outcomes misleads.
  auto requests = metrics::counter_family("memgate_coach_requests_total",
                                          "Coach requests (POST /api/ai/coach) by how they ended.");
  add_counter(requests, value(c.extractive), {{"outcome", "extractive"}});
  add_counter(requests, value(c.generative), {{"outcome", "generative"}});
  add_counter(requests, value(c.rejected), {{"outcome", "rejected"}});
  add_counter(requests, value(c.invalid), {{"outcome", "invalid"}});
  add_counter(requests, value(c.provider_errors), {{"outcome", "provider_error"}});
  add_counter(requests, value(c.timeouts), {{"outcome", "timeout"}});
  add_counter(requests, value(c.cancelled), {{"outcome", "cancelled"}});

  auto tokens = metrics::counter_family("memgate_coach_tokens_total",
                                        "Tokens the chat-completions provider said its answers used, by kind.");
  add_counter(tokens, value(c.prompt_tokens), {{"kind", "prompt"}});
  add_counter(tokens, value(c.completion_tokens), {{"kind", "completion"}});

  const Bulkhead::Counts b = coach->bulkhead();
  auto inflight = metrics::gauge_family("memgate_coach_inflight", "Coach requests at work (bulkhead slots taken).");
  add_gauge(inflight, static_cast<double>(b.inflight));
  auto queued = metrics::gauge_family("memgate_coach_queued", "Coach requests waiting for a bulkhead slot.");
  add_gauge(queued, static_cast<double>(b.queued));
  auto jobs = metrics::gauge_family("memgate_coach_jobs", "Coach requests admitted and not yet finished.");
  add_gauge(jobs, static_cast<double>(c.jobs.load(std::memory_order_relaxed)));

  const ChatClient::Stats s = coach->client_stats();
  auto live = metrics::gauge_family("memgate_coach_upstream_live_calls",
                                    "Calls to the chat-completions provider started and not yet reported.");
  add_gauge(live, static_cast<double>(s.live_calls));
  // open and idle are read one after the other while calls come and go, so a
  // scrape can catch idle ahead of open for an instant; never report a negative.
  auto connections = metrics::gauge_family("memgate_coach_upstream_connections",
                                           "Connections to the chat-completions provider, busy or idle.");
  add_gauge(connections, static_cast<double>(std::max<int64_t>(0, s.open_connections - s.idle_connections)),
            {{"state", "busy"}});
  add_gauge(connections, static_cast<double>(s.idle_connections), {{"state", "idle"}});
  auto connects = metrics::counter_family("memgate_coach_upstream_connects_total",
                                          "Fresh connections made to the chat-completions provider.");
  add_counter(connects, static_cast<double>(s.connects));
  auto reuses = metrics::counter_family("memgate_coach_upstream_reuses_total",
                                        "Provider calls served on a kept-alive connection.");
  add_counter(reuses, static_cast<double>(s.reuses));

  std::vector<prometheus::MetricFamily> out;
  out.reserve(9);
  for (auto* f : {&requests, &tokens, &inflight, &queued, &jobs, &live, &connections, &connects, &reuses})
    out.push_back(std::move(*f));
  return out;
}

}  // namespace memgate::coach
