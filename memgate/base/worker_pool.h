// WorkerPool: a fixed set of threads for blocking and heavy work (index builds,
// artifact loads, scheduled jobs), so the IO threads never block. It plays the
// part of libuv's thread pool (WORKER_THREADS, like UV_THREADPOOL_SIZE).
//
// Thread-safe: post() and submit() may be called from any thread. Tasks run in
// no particular order across threads. join() waits for queued tasks and stops
// the threads; tasks posted after join() started are dropped.
#pragma once

#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <type_traits>

namespace memgate {

class WorkerPool {
 public:
  explicit WorkerPool(size_t threads);
  ~WorkerPool();  // join()s
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues a task. An exception escaping the task is logged and swallowed. The
  // task runs inside the poster's TaskContext, if any (see task_context.h).
  void post(std::function<void()> task);

  // Queues a task and returns a future for its result (exceptions reach the future).
  template <typename F>
  auto submit(F f) -> std::future<std::invoke_result_t<F&>> {
    using R = std::invoke_result_t<F&>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    auto future = task->get_future();
    post([task] { (*task)(); });
    return future;
  }

  size_t size() const { return size_; }

  // Waits for every queued task, then stops the threads. Idempotent.
  void join();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t size_;
};

}  // namespace memgate
