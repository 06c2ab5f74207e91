#include "memgate/metrics/families.h"

#include <cmath>
#include <limits>
#include <utility>

namespace memgate::metrics {

namespace {

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

}  // namespace

prometheus::MetricFamily counter_family(std::string name, std::string help) {
  return family(std::move(name), std::move(help), prometheus::MetricType::Counter);
}

prometheus::MetricFamily gauge_family(std::string name, std::string help) {
  return family(std::move(name), std::move(help), prometheus::MetricType::Gauge);
}

prometheus::MetricFamily histogram_family(std::string name, std::string help) {
  return family(std::move(name), std::move(help), prometheus::MetricType::Histogram);
}

void add_counter(prometheus::MetricFamily& family, double value, Labels labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  family.metric.push_back(std::move(m));
}

void add_gauge(prometheus::MetricFamily& family, double value, Labels labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  family.metric.push_back(std::move(m));
}

Status add_histogram(prometheus::MetricFamily& family, std::span<const double> upper_bounds,
                     std::span<const uint64_t> bucket_counts, double sum, Labels labels) {
  if (bucket_counts.size() != upper_bounds.size() + 1) {
    return InvalidArgument("histogram " + family.name + ": need one bucket count per bound plus one for +Inf");
  }
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]) || (i > 0 && !(upper_bounds[i - 1] < upper_bounds[i]))) {
      return InvalidArgument("histogram " + family.name + ": bounds must be finite and strictly increasing");
    }
  }
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.histogram.bucket.reserve(bucket_counts.size());
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bucket_counts.size(); ++i) {
    cumulative += bucket_counts[i];
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < upper_bounds.size() ? upper_bounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
  family.metric.push_back(std::move(m));
  return Status::Ok();
}

}  // namespace memgate::metrics
