// CoachCollector: the coach's figures as Prometheus families, read at scrape time.
//
// The same figures GET /api/ai/coach/status shows, for /metrics:
//   memgate_coach_requests_total{outcome}   counter: extractive, generative, rejected
//                                           (bulkhead full), invalid (400/413),
//                                           provider_error (502), timeout (504),
//                                           cancelled (the client went away)
//   memgate_coach_tokens_total{kind="prompt"|"completion"}  counter: the tokens
//                                           the provider said its answers used
//   memgate_coach_inflight, memgate_coach_queued     gauges: the bulkhead
//   memgate_coach_jobs                      gauge: admitted and not yet finished
//   memgate_coach_upstream_live_calls       gauge: provider calls not yet reported
//   memgate_coach_upstream_connections{state="busy"|"idle"}  gauge
//   memgate_coach_upstream_connects_total, memgate_coach_upstream_reuses_total  counters
// Without a provider the upstream families are there and stay 0, so dashboards
// need no special case for extractive mode.
//
// The collector reads whichever Coach it was last given (set()), so a module that
// replaces its Coach on a reload keeps one collector registered and the scrape
// never shows the families twice; with no Coach it reports nothing. The counters
// start again from 0 with a new Coach, which Prometheus reads as a counter reset.
//
// Thread-safe: Collect() runs on the scraping thread while set() may run on a
// loader's worker; the Coach it reads is kept alive for the length of a scrape.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <mutex>
#include <vector>

#include "memgate/coach/coach.h"

namespace memgate::coach {

class CoachCollector final : public prometheus::Collectable {
 public:
  explicit CoachCollector(std::shared_ptr<const Coach> coach = nullptr) : coach_(std::move(coach)) {}

  // The Coach to report from now on (null: report nothing).
  void set(std::shared_ptr<const Coach> coach);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Coach> coach_;  // guarded by mu_
};

}  // namespace memgate::coach
