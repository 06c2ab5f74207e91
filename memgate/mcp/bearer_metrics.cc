#include "memgate/mcp/bearer_metrics.h"

#include "memgate/metrics/families.h"

namespace memgate::mcp {

std::vector<prometheus::MetricFamily> BearerCollector::Collect() const {
  const BearerAuth::Counts c = auth_->counts();
  auto requests = metrics::counter_family("memgate_mcp_auth_requests_total",
                                          "Requests to /mcp by what the OAuth bearer check answered.");
  metrics::add_counter(requests, static_cast<double>(c.accepted), {{"outcome", "accepted"}});
  metrics::add_counter(requests, static_cast<double>(c.missing), {{"outcome", "missing"}});
  metrics::add_counter(requests, static_cast<double>(c.invalid), {{"outcome", "invalid"}});
  metrics::add_counter(requests, static_cast<double>(c.insufficient_scope), {{"outcome", "insufficient_scope"}});
  auto tools = metrics::counter_family("memgate_mcp_auth_tool_refusals_total",
                                       "tools/call requests refused 403 for a scope of the tool's own.");
  metrics::add_counter(tools, static_cast<double>(c.tool_refused));
  std::vector<prometheus::MetricFamily> out;
  out.push_back(std::move(requests));
  out.push_back(std::move(tools));
  return out;
}

}  // namespace memgate::mcp
