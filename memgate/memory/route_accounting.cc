#include "memgate/memory/route_accounting.h"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include "memgate/base/task_context.h"
#include "memgate/memory/allocator.h"

namespace memgate::memory {

struct RouteAccounting::Cells {
  struct Cell {
    std::atomic<uint64_t> requests{0}, allocated{0};
    std::atomic<int64_t> held{0};
    std::array<std::atomic<uint64_t>, kAllocationBucketBounds.size() + 1> buckets{};
  };
  std::unique_ptr<Cell[]> cells{new Cell[kMaxAccountedRoutes]};
};

namespace {

std::atomic<uint64_t> g_next_id{1};

// A request's shared context once it posted work: measures each task and records
// the total when the last reference goes.
class RequestContext final : public TaskContext, public std::enable_shared_from_this<RequestContext> {
 public:
  RequestContext(RouteAccounting* owner, uint32_t route) : owner_(owner), route_(route) {}
  ~RequestContext() override {
    owner_->record(route_, allocated_.load(), static_cast<int64_t>(allocated_.load()) -
                                                   static_cast<int64_t>(deallocated_.load()));
  }
  void run(const std::function<void()>& task) override {
    uint64_t a0 = thread_allocated_bytes(), d0 = thread_deallocated_bytes();
    task();
    add(thread_allocated_bytes() - a0, thread_deallocated_bytes() - d0);
  }
  void add(uint64_t allocated, uint64_t deallocated) {
    allocated_.fetch_add(allocated, std::memory_order_relaxed);
    deallocated_.fetch_add(deallocated, std::memory_order_relaxed);
  }

 private:
  RouteAccounting* owner_;
  uint32_t route_;
  std::atomic<uint64_t> allocated_{0}, deallocated_{0};
};

// The request in progress on this thread.
struct Frame final : TaskContextSource {
  RouteAccounting* owner = nullptr;
  uint32_t route = 0;
  uint64_t a0 = 0, d0 = 0;
  int depth = 0;
  std::shared_ptr<RequestContext> shared;
  std::shared_ptr<TaskContext> capture() override {
    if (!shared) shared = std::make_shared<RequestContext>(owner, route);
    return shared;
  }
};

thread_local Frame t_frame;

// The thread's cells per accounting object (usually one per process).
thread_local std::unordered_map<uint64_t, std::shared_ptr<void>> t_cells;

}  // namespace

RouteAccounting::RouteAccounting() : id_(g_next_id.fetch_add(1)) {}
RouteAccounting::~RouteAccounting() = default;

bool RouteAccounting::available() const { return thread_counters_available(); }

// The last accounting object this thread recorded into: one compare instead of a
// hash lookup on every request.
thread_local uint64_t t_last_id = 0;
thread_local void* t_last_cells = nullptr;

RouteAccounting::Cells& RouteAccounting::cells() {
  if (t_last_id == id_) return *static_cast<Cells*>(t_last_cells);
  auto& slot = t_cells[id_];
  if (!slot) {
    auto c = std::make_shared<Cells>();
    {
      std::lock_guard lock(mu_);
      all_.push_back(c);
    }
    slot = c;
  }
  t_last_id = id_;
  t_last_cells = slot.get();
  return *static_cast<Cells*>(slot.get());
}

void RouteAccounting::begin(uint32_t route) {
  Frame& f = t_frame;
  if (f.depth++ > 0) return;
  f.owner = this;
  f.route = route;
  f.a0 = thread_allocated_bytes();
  f.d0 = thread_deallocated_bytes();
  set_current_task_context_source(&f);
}

void RouteAccounting::end() {
  Frame& f = t_frame;
  if (f.depth == 0 || --f.depth > 0) return;
  uint64_t allocated = thread_allocated_bytes() - f.a0;
  uint64_t deallocated = thread_deallocated_bytes() - f.d0;
  set_current_task_context_source(nullptr);
  if (f.shared) {
    f.shared->add(allocated, deallocated);
    f.shared.reset();  // records now, or when the last posted task finishes
  } else {
    record(f.route, allocated, static_cast<int64_t>(allocated) - static_cast<int64_t>(deallocated));
  }
}

namespace {
// Cells are written by their own thread only: a relaxed load and store is enough
// (and, unlike fetch_add, is no locked instruction on x86).
template <typename T, typename V>
void bump(std::atomic<T>& a, V by) {
  a.store(a.load(std::memory_order_relaxed) + static_cast<T>(by), std::memory_order_relaxed);
}
}  // namespace

void RouteAccounting::record(uint32_t route, uint64_t allocated, int64_t held) {
  auto& cell = cells().cells[std::min<size_t>(route, kMaxAccountedRoutes - 1)];
  bump(cell.requests, 1);
  bump(cell.allocated, allocated);
  bump(cell.held, held);
  size_t b = 0;
  while (b < kAllocationBucketBounds.size() && static_cast<double>(allocated) > kAllocationBucketBounds[b]) ++b;
  bump(cell.buckets[b], 1);
}

std::vector<RouteAllocation> RouteAccounting::snapshot() const {
  std::vector<std::shared_ptr<Cells>> all;
  {
    std::lock_guard lock(mu_);
    all = all_;
  }
  std::vector<RouteAllocation> out;
  for (size_t r = 0; r < kMaxAccountedRoutes; ++r) {
    RouteAllocation row;
    row.route = static_cast<uint32_t>(r);
    for (auto& c : all) {
      auto& cell = c->cells[r];
      row.requests += cell.requests.load(std::memory_order_relaxed);
      row.allocated += cell.allocated.load(std::memory_order_relaxed);
      row.held += cell.held.load(std::memory_order_relaxed);
      for (size_t b = 0; b < row.buckets.size(); ++b) row.buckets[b] += cell.buckets[b].load(std::memory_order_relaxed);
    }
    if (row.requests) out.push_back(row);
  }
  return out;
}

}  // namespace memgate::memory
