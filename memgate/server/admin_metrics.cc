#include "memgate/server/admin_metrics.h"

#include <prometheus/collectable.h>

#include <spdlog/spdlog.h>

#include <array>
#include <functional>
#include <span>

#include "memgate/http/stats.h"
#include "memgate/metrics/families.h"
#include "memgate/metrics/memory_collector.h"
#include "memgate/metrics/process_collector.h"

namespace memgate::server {
namespace {

// A Collectable that builds its families from plain figures at scrape time.
class CallbackCollector final : public prometheus::Collectable {
 public:
  explicit CallbackCollector(std::function<std::vector<prometheus::MetricFamily>()> f) : f_(std::move(f)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return f_(); }

 private:
  std::function<std::vector<prometheus::MetricFamily>()> f_;
};

std::vector<prometheus::MetricFamily> http_families(const http::Server& server) {
  auto requests = metrics::counter_family("http_requests_total", "HTTP requests answered, by route pattern, method and status");
  auto latency = metrics::histogram_family(
      "http_request_duration_seconds",
      "Time from a complete request to its response handed to the kernel, by route pattern, method and status");
  for (const http::RouteStats& row : server.stats()) {
    metrics::Labels labels{{"route", row.route}, {"method", row.method}, {"status", std::to_string(row.status)}};
    metrics::add_counter(requests, static_cast<double>(row.count), labels);
    // http keeps cumulative buckets; the family helper takes per-bucket counts
    // plus the overflow bucket above the last bound.
    std::array<uint64_t, http::kLatencyBucketBounds.size() + 1> per_bucket{};
    uint64_t below = 0;
    for (size_t i = 0; i < row.bucket_counts.size(); ++i) {
      per_bucket[i] = row.bucket_counts[i] - below;
      below = row.bucket_counts[i];
    }
    per_bucket.back() = row.count - below;
    Status st = metrics::add_histogram(latency, std::span<const double>(http::kLatencyBucketBounds),
                                       std::span<const uint64_t>(per_bucket), row.latency_sum_seconds, labels);
    if (!st.ok()) spdlog::warn("latency histogram for {} not exported: {}", row.route, st.to_string());
  }
  http::ConnectionStats c = server.connection_stats();
  auto accepted = metrics::counter_family("http_connections_accepted_total", "Connections accepted");
  metrics::add_counter(accepted, static_cast<double>(c.accepted));
  auto open = metrics::gauge_family("http_connections_open", "Connections open now");
  metrics::add_gauge(open, static_cast<double>(c.open));
  auto closes = metrics::counter_family("http_connections_closed_total",
                                        "Connections the server closed, by reason");
  metrics::add_counter(closes, static_cast<double>(c.read_timeouts), {{"reason", "read_timeout"}});
  metrics::add_counter(closes, static_cast<double>(c.idle_closes), {{"reason", "idle"}});
  metrics::add_counter(closes, static_cast<double>(c.bad_requests), {{"reason", "bad_request"}});
  std::vector<prometheus::MetricFamily> out;
  out.push_back(std::move(requests));
  out.push_back(std::move(latency));
  out.push_back(std::move(accepted));
  out.push_back(std::move(open));
  out.push_back(std::move(closes));
  return out;
}

}  // namespace

AdminMetrics::AdminMetrics(memory::MemoryProbe& probe, const http::Server& public_server) {
  metrics_.own_collectable(metrics::make_process_collector());
  metrics_.own_collectable(metrics::make_memory_collector(probe));
  metrics_.own_collectable(std::make_shared<CallbackCollector>([&public_server] { return http_families(public_server); }));
}

AdminMetrics::~AdminMetrics() = default;

}  // namespace memgate::server
