// FullWorkerPool: for tests of what a route answers when the worker pool
// refuses its work. A one-thread pool whose thread is held by a priority task
// and whose request lane (limit 1) already holds one task, so every
// try_post() is refused until release(). Header-only; test code only.
#pragma once

#include <latch>

#include "memgate/base/worker_pool.h"

namespace memgate::testing {

class FullWorkerPool {
 public:
  FullWorkerPool() {
    pool_.post_priority([this] {
      started_.count_down();
      release_.wait();
    });
    started_.wait();
    full_ = pool_.try_post([] {});
  }
  // Releases the thread and joins: nothing queued is left waiting.
  ~FullWorkerPool() {
    release();
    pool_.join();
  }
  FullWorkerPool(const FullWorkerPool&) = delete;
  FullWorkerPool& operator=(const FullWorkerPool&) = delete;

  WorkerPool& pool() { return pool_; }
  // True when the request lane was filled (the precondition of the test).
  bool full() const { return full_; }
  // Lets the held thread go; the queued task then runs. Idempotent.
  void release() {
    if (released_) return;
    released_ = true;
    release_.count_down();
  }

 private:
  WorkerPool pool_{1, 1};
  std::latch started_{1}, release_{1};
  bool full_ = false;
  bool released_ = false;
};

}  // namespace memgate::testing
