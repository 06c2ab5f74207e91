#include "memgate/http/thread_stats.h"

namespace memgate::http::detail {

namespace {

constexpr std::array<uint64_t, kLatencyBucketBounds.size()> bucket_bounds_ns() {
  std::array<uint64_t, kLatencyBucketBounds.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint64_t>(kLatencyBucketBounds[i] * 1e9 + 0.5);
  return out;
}
constexpr auto kBoundsNs = bucket_bounds_ns();

}  // namespace

ThreadStats::ThreadStats() {
  for (auto& b : blocks_) b.store(nullptr, std::memory_order_relaxed);
}

ThreadStats::~ThreadStats() {
  for (auto& b : blocks_) delete b.load(std::memory_order_relaxed);
}

void ThreadStats::record(RouteId route, Method method, int status, uint64_t ns) {
  if (route >= kMaxRoutesTracked) route = kUnmatchedRoute;
  RouteBlock* block = blocks_[route].load(std::memory_order_relaxed);
  if (block == nullptr) {
    block = new RouteBlock();
    blocks_[route].store(block, std::memory_order_release);
  }
  uint32_t key = (static_cast<uint32_t>(method) + 1) << 16 | static_cast<uint32_t>(status & 0xffff);
  size_t h = (key * 2654435761u) >> 28;
  for (size_t i = 0; i < kCellsPerRoute; ++i) {
    StatCell& c = block->cells[(h + i) % kCellsPerRoute];
    uint32_t k = c.key.load(std::memory_order_relaxed);
    if (k == key) {
      add(c, ns);
      return;
    }
    if (k == 0) {
      add(c, ns);
      c.key.store(key, std::memory_order_release);
      return;
    }
  }
  bump(overflow_);  // more than kCellsPerRoute (method, status) pairs on one route
}

void ThreadStats::add(StatCell& c, uint64_t ns) {
  bump(c.count);
  bump(c.sum_ns, ns);
  size_t i = 0;
  while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
  if (i < kBoundsNs.size()) bump(c.buckets[i]);
}

}  // namespace memgate::http::detail
