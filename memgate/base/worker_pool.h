// WorkerPool: a fixed set of threads for blocking and heavy work (index builds,
// artifact loads, scheduled jobs, request work), so the IO threads never block.
// It plays the part of libuv's thread pool (WORKER_THREADS, like
// UV_THREADPOOL_SIZE).
//
// Three lanes, taken in this order by an idle thread:
//   priority  post_priority()/submit_priority(): start-up and loader work.
//             Never refused, never dropped; goes ahead of everything queued.
//   normal    post()/submit(): background work (builds, jobs). Never refused,
//             never dropped while the pool runs.
//   request   try_post(): work done for a client (kb REST, MCP). Bounded by the
//             queue limit (WORKER_QUEUE_LIMIT): refused (false) when full, so the
//             caller answers 503. A task carries a "still wanted" check, asked
//             just before it runs; a task no longer wanted (its client left) is
//             not run but dropped, and its on_drop callback runs instead.
//
// Thread-safe: every method may be called from any thread. Tasks run in no
// particular order across threads. join() drops the queued request work at once
// (calling each on_drop), refuses new request work, and runs the priority and
// normal work still queued, including what running tasks post meanwhile, then
// stops the threads. Work posted after the threads stopped is dropped (a
// submit()'s future then reports std::future_errc::broken_promise; no caller
// waits forever).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <type_traits>

namespace memgate {

struct WorkerPoolStats {
  size_t threads = 0;
  size_t queue_limit = 0;      // the request lane's bound
  size_t queued = 0;           // tasks waiting, every lane
  size_t queued_requests = 0;  // of which in the request lane
  uint64_t refused = 0;        // try_post() calls refused (lane full, or stopping)
  uint64_t dropped = 0;        // accepted tasks never run (client left, or the pool stopped)
  bool stopping = false;       // join() has started
};

class WorkerPool {
 public:
  // Request lane bound per thread when no limit is given.
  static constexpr size_t kQueueLimitPerThread = 64;

  // queue_limit 0: threads * kQueueLimitPerThread.
  explicit WorkerPool(size_t threads, size_t queue_limit = 0);
  ~WorkerPool();  // join()s
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues a task on the normal lane. An exception escaping the task is logged
  // and swallowed. The task runs inside the poster's TaskContext, if any (see
  // task_context.h).
  void post(std::function<void()> task);

  // As post(), on the priority lane.
  void post_priority(std::function<void()> task);

  // Queues request work unless the request lane is full or the pool is
  // stopping; false means refused (nothing will run; answer 503). `wanted`
  // (optional) is asked just before the task runs: false drops it. `on_drop`
  // (optional) runs instead of the task when it is dropped, either then or when
  // join() discards the queue; use it to answer the client (or release what the
  // task held). Both run inside the poster's TaskContext, exceptions swallowed.
  bool try_post(std::function<void()> task, std::function<bool()> wanted = {}, std::function<void()> on_drop = {});

  // Queues a task on the normal lane and returns a future for its result
  // (exceptions reach the future).
  template <typename F>
  auto submit(F f) -> std::future<std::invoke_result_t<F&>> {
    auto packaged = package(std::move(f));
    post([task = std::move(packaged.first)] { (*task)(); });
    return std::move(packaged.second);
  }

  // As submit(), on the priority lane.
  template <typename F>
  auto submit_priority(F f) -> std::future<std::invoke_result_t<F&>> {
    auto packaged = package(std::move(f));
    post_priority([task = std::move(packaged.first)] { (*task)(); });
    return std::move(packaged.second);
  }

  size_t size() const { return size_; }
  size_t queue_limit() const { return queue_limit_; }
  WorkerPoolStats stats() const;

  // Drops the queued request work, finishes the priority and normal work, then
  // stops the threads. Idempotent.
  void join();

 private:
  template <typename F>
  static auto package(F f) {
    using R = std::invoke_result_t<F&>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    auto future = task->get_future();
    return std::pair{std::move(task), std::move(future)};
  }

  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t size_;
  size_t queue_limit_;
};

}  // namespace memgate
