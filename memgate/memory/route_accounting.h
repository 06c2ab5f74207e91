// RouteAccounting: bytes allocated per request, by route.
//
// Around each request the HTTP layer calls begin(route) and end() on the thread
// that runs the handler; the difference of jemalloc's per-thread allocated and
// deallocated counters between the two is the request's own allocation on that
// thread. Work the request posts to the worker pool is accounted to it too: the
// request's frame is the thread's TaskContextSource, and the first post turns it
// into a shared context that measures every task it runs (on any thread) and
// records the request's total when the last of them finishes. A request that
// posts nothing allocates nothing for its accounting.
//
// Per route it keeps: requests, bytes allocated, bytes still held (allocated
// minus freed within the request's work: what it left behind), and a histogram
// of bytes allocated per request. Counts live in per-thread cells written only
// by their thread (relaxed atomics), summed by snapshot(): no shared cache line
// and no lock on the request path.
//
// Thread-safety: begin/end on one thread per request; snapshot() from anywhere.
// Without thread counters (glibc builds) every figure stays 0 and available()
// says so.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace memgate::memory {

// Upper bounds (bytes) of the per-request allocation histogram; +Inf is implied.
inline constexpr std::array<double, 12> kAllocationBucketBounds = {
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456, 1073741824};
inline constexpr size_t kMaxAccountedRoutes = 1024;  // route ids above share the last slot

struct RouteAllocation {
  uint32_t route = 0;
  uint64_t requests = 0;
  uint64_t allocated = 0;  // bytes
  int64_t held = 0;        // bytes allocated and not freed by the request's work
  // Per bucket (not cumulative), the last one above every bound.
  std::array<uint64_t, kAllocationBucketBounds.size() + 1> buckets{};
};

class RouteAccounting {
 public:
  RouteAccounting();
  ~RouteAccounting();
  RouteAccounting(const RouteAccounting&) = delete;
  RouteAccounting& operator=(const RouteAccounting&) = delete;

  bool available() const;

  // On the handler's thread, around the handler. Calls nest: an inner pair on
  // the same thread is ignored.
  void begin(uint32_t route);
  void end();

  // Rows with at least one request, by route id.
  std::vector<RouteAllocation> snapshot() const;

  // Adds one finished request (used internally; public for tests).
  void record(uint32_t route, uint64_t allocated, int64_t held);

 private:
  struct Cells;
  Cells& cells();  // the calling thread's
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Cells>> all_;  // guarded by mu_
  const uint64_t id_;
};

}  // namespace memgate::memory
