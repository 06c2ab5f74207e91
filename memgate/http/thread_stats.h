// ThreadStats: one IO thread's request and connection counters.
//
// Internal to http/. Written only by its IO thread (relaxed atomics, no lock, no
// allocation per request after a route's first request); read from any thread
// by Server::stats() and Server::connection_stats(), which sum the threads.
// Cells are keyed by (route, method, status); a route holds at most
// kCellsPerRoute such pairs and routes past kMaxRoutesTracked share the
// unmatched row, so memory is bounded by what was registered.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "memgate/http/router.h"
#include "memgate/http/stats.h"

namespace memgate::http::detail {

inline void bump(std::atomic<uint64_t>& a, uint64_t d = 1) {
  a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

struct StatCell {
  std::atomic<uint32_t> key{0};  // (method + 1) << 16 | status; 0 = empty. Published last.
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_ns{0};
  std::array<std::atomic<uint64_t>, kLatencyBucketBounds.size()> buckets{};  // not cumulative
};

class ThreadStats {
 public:
  static constexpr size_t kMaxRoutesTracked = 1024;
  static constexpr size_t kCellsPerRoute = 16;

  ThreadStats();
  ~ThreadStats();
  ThreadStats(const ThreadStats&) = delete;
  ThreadStats& operator=(const ThreadStats&) = delete;

  // Counts one request of `ns` nanoseconds. IO thread only.
  void record(RouteId route, Method method, int status, uint64_t ns);

  template <typename F>  // F(RouteId, Method, int status, const StatCell&); any thread
  void for_each(F&& f) const {
    for (size_t r = 0; r < kMaxRoutesTracked; ++r) {
      const RouteBlock* block = blocks_[r].load(std::memory_order_acquire);
      if (block == nullptr) continue;
      for (const StatCell& c : block->cells) {
        uint32_t key = c.key.load(std::memory_order_acquire);
        if (key == 0) continue;
        f(static_cast<RouteId>(r), static_cast<Method>((key >> 16) - 1), static_cast<int>(key & 0xffff), c);
      }
    }
  }

  // Connection counters (see ConnectionStats for what each means).
  std::atomic<uint64_t> accepted{0}, closed{0}, read_timeouts{0}, idle_closes{0}, bad_requests{0}, client_aborts{0},
      refused{0}, evicted{0}, stream_drops{0};

 private:
  struct RouteBlock {
    std::array<StatCell, kCellsPerRoute> cells;
  };
  static void add(StatCell& c, uint64_t ns);

  std::array<std::atomic<RouteBlock*>, kMaxRoutesTracked> blocks_;
  std::atomic<uint64_t> overflow_{0};
};

}  // namespace memgate::http::detail
