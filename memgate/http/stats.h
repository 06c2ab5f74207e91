// Request statistics and the per-request hook.
//
// Each IO thread counts its own requests in plain per-thread cells (relaxed
// atomics written by that thread only: no contended cache line, no lock, no
// allocation per request). Server::stats() sums the threads into RouteStats rows
// for the metrics layer, which turns them into Prometheus families at scrape time.
// Rows are keyed by route pattern (RouteId), method and status, so cardinality is
// bounded by what was registered; paths no route claims share the "unmatched" row.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "memgate/http/request.h"

namespace memgate::http {

using RouteId = uint32_t;

// Upper bounds (seconds, inclusive) of the latency histogram buckets; a final
// +Inf bucket is implied (it equals count). Latency runs from the read that
// completed the request to the moment its serialised response is handed to the
// socket (for a streamed response: to the end of the stream). A request is
// counted at that same moment, so a client that has read its response will find
// it counted.
inline constexpr std::array<double, 14> kLatencyBucketBounds = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,    0.025,  0.05,    0.1,    0.25,  1.0,    5.0};

struct RouteStats {
  std::string route;   // the pattern, or "unmatched"
  std::string method;  // "GET", ...
  int status = 0;
  uint64_t count = 0;
  // Cumulative: bucket_counts[i] = requests with latency <= kLatencyBucketBounds[i].
  std::array<uint64_t, kLatencyBucketBounds.size()> bucket_counts{};
  double latency_sum_seconds = 0;
};

// Server-wide connection counters (summed over threads at the time of the call).
struct ConnectionStats {
  uint64_t accepted = 0;
  uint64_t open = 0;
  uint64_t read_timeouts = 0;   // 408s sent
  uint64_t idle_closes = 0;     // keep-alive connections closed for idleness
  uint64_t bad_requests = 0;    // 400, 413, 431
  uint64_t client_aborts = 0;   // requests whose client left before the response was complete (stream drops too)
  uint64_t refused = 0;         // connections turned away at the cap (503 and close)
  uint64_t evicted = 0;         // idle keep-alive connections closed to make room at the cap
  uint64_t stream_drops = 0;    // streams closed for their client: past the buffer cap or the write deadline
};

// A hook around each handler call, for per-route accounting (allocation
// counters, for example). Both calls run on the IO thread that runs the handler,
// back to back around it; an async handler's end comes when its handler function
// returns (status 0), not when its Responder completes. Implementations must be
// thread-safe (every IO thread calls them) and cheap. When no observer is set,
// the cost is one predictable branch per request.
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void on_request_begin(RouteId route, const Request& request) = 0;
  virtual void on_request_end(RouteId route, int status) = 0;
};

}  // namespace memgate::http
