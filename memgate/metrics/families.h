// Building Prometheus metric families by hand, from plain numbers.
//
// For a custom prometheus::Collectable whose figures live elsewhere — per-thread
// request counters summed at scrape time, a histogram kept as an array of bucket
// counts — and that should not pay for prometheus-cpp's own atomics on the hot
// path. A Collect() builds one family per metric name, adds one sample per label
// set, and returns them:
//
//   std::vector<prometheus::MetricFamily> Collect() const override {
//     auto requests = counter_family("memgate_http_requests_total", "Requests served.");
//     add_counter(requests, totals.get, {{"method", "GET"}});
//     auto latency = histogram_family("memgate_http_request_duration_seconds", "Latency.");
//     add_histogram(latency, kBounds, bucket_counts, sum_seconds, {{"route", "/kb"}});
//     return {std::move(requests), std::move(latency)};
//   }
//
// Pure functions on values; thread-safe. This header includes prometheus-cpp's
// MetricFamily, which a Collectable needs anyway.
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::metrics {

// Label pairs of one sample, e.g. {{"route", "/kb/search"}, {"code", "200"}}.
using Labels = std::vector<prometheus::ClientMetric::Label>;

// An empty family of the given type. `name` should be a valid metric name
// ([a-zA-Z_:][a-zA-Z0-9_:]*; counters by convention end in _total); an invalid
// one is not rejected here but makes the exposition unreadable to Prometheus.
prometheus::MetricFamily counter_family(std::string name, std::string help);
prometheus::MetricFamily gauge_family(std::string name, std::string help);
prometheus::MetricFamily histogram_family(std::string name, std::string help);

// Appends one counter / gauge sample with these labels.
void add_counter(prometheus::MetricFamily& family, double value, Labels labels = {});
void add_gauge(prometheus::MetricFamily& family, double value, Labels labels = {});

// Appends one histogram sample from per-bucket (not cumulative) counts.
//
// upper_bounds are the finite bucket bounds, strictly increasing (do not list
// +Inf). bucket_counts has one more element than upper_bounds: bucket_counts[i]
// counts observations v with upper_bounds[i-1] < v <= upper_bounds[i], and the last
// counts those above the last bound. The sample gets cumulative buckets ending
// with le="+Inf", a _count equal to the sum of bucket_counts, and `sum` as _sum.
// Fails with kInvalidArgument (and leaves the family unchanged) when the sizes
// do not match or the bounds are not strictly increasing and finite.
Status add_histogram(prometheus::MetricFamily& family, std::span<const double> upper_bounds,
                     std::span<const uint64_t> bucket_counts, double sum, Labels labels = {});

}  // namespace memgate::metrics
