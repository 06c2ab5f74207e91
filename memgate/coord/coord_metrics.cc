#include "memgate/coord/coord_metrics.h"

namespace memgate::coord {

void Histogram::observe(std::chrono::nanoseconds d) {
  double s = std::chrono::duration<double>(d).count();
  size_t i = 0;
  while (i < kHistogramBounds.size() && s > kHistogramBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(d.count() < 0 ? 0 : d.count()), std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot out;
  uint64_t running = 0;
  for (size_t i = 0; i < kHistogramBounds.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out.cumulative[i] = running;
  }
  out.count = running + buckets_[kHistogramBounds.size()].load(std::memory_order_relaxed);
  out.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return out;
}

std::string_view command_error_kind_name(CommandErrorKind k) {
  switch (k) {
    case CommandErrorKind::kTimeout: return "timeout";
    case CommandErrorKind::kDisconnected: return "disconnected";
    case CommandErrorKind::kServer: return "server";
    case CommandErrorKind::kProtocol: return "protocol";
  }
  return "unknown";
}

CoordMetrics& coord_metrics() {
  static CoordMetrics metrics;
  return metrics;
}

}  // namespace memgate::coord
