// BearerCollector: what /mcp's OAuth checks answered, as Prometheus families,
// read at scrape time from BearerAuth::counts():
//   memgate_mcp_auth_requests_total{outcome}  counter, one per request checked:
//       accepted, missing (no Bearer credentials), invalid (a token that did
//       not verify), insufficient_scope (without a scope every request needs)
//   memgate_mcp_auth_tool_refusals_total      counter: tools/call refused 403
//       for a scope of the tool's own (its request is also counted accepted)
// Thread-safe: Collect() reads atomics.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <vector>

#include "memgate/mcp/bearer_auth.h"

namespace memgate::mcp {

class BearerCollector final : public prometheus::Collectable {
 public:
  explicit BearerCollector(std::shared_ptr<const BearerAuth> auth) : auth_(std::move(auth)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::shared_ptr<const BearerAuth> auth_;
};

}  // namespace memgate::mcp
