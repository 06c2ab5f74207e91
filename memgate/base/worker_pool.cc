// Three FIFO lanes under one mutex, served by a fixed set of std::threads. (It
// used to wrap Asio's thread_pool, which has one unbounded queue and runs all of
// it on join; the lanes, the bound and the drop-on-stop need our own queue.)
#include "memgate/base/worker_pool.h"

#include "memgate/base/task_context.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace memgate {
namespace {

struct Task {
  std::function<void()> run;
  std::function<bool()> wanted;    // request lane only; empty: always wanted
  std::function<void()> on_drop;   // request lane only
  std::shared_ptr<TaskContext> context;
};

std::shared_ptr<TaskContext> capture_context() {
  if (TaskContextSource* source = current_task_context_source()) return source->capture();
  return nullptr;
}

template <typename Fn>
void guarded(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    spdlog::error("worker {} threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("worker {} threw a non-exception", what);
  }
}

void drop(Task& t) {
  if (t.on_drop) guarded("drop callback", [&] { run_in_context(t.context, t.on_drop); });
}

}  // namespace

struct WorkerPool::Impl {
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Task> priority, normal, requests;  // guarded by mu
  size_t active = 0;                            // tasks running, guarded by mu
  bool stopping = false;                        // join() started, guarded by mu
  bool stopped = false;                         // threads gone, guarded by mu
  uint64_t refused = 0, dropped = 0;            // guarded by mu
  std::vector<std::thread> threads;
  std::mutex join_mu;  // serialises join()

  bool idle_locked() const { return priority.empty() && normal.empty() && requests.empty(); }

  void loop() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return !idle_locked() || (stopping && active == 0); });
      if (idle_locked()) {
        // Stopping, nothing queued and nothing running that could post more.
        cv.notify_all();
        return;
      }
      std::deque<Task>& lane = !priority.empty() ? priority : (!normal.empty() ? normal : requests);
      Task t = std::move(lane.front());
      lane.pop_front();
      ++active;
      lock.unlock();
      bool run = true;
      if (t.wanted) {
        guarded("wanted check", [&] { run = t.wanted(); });
        if (!run) drop(t);
      }
      if (run) guarded("task", [&] { run_in_context(t.context, t.run); });
      t = Task();  // destroy captures outside the lock
      lock.lock();
      if (!run) ++dropped;
      --active;
      if (stopping && active == 0 && idle_locked()) cv.notify_all();
    }
  }

  void enqueue(std::deque<Task>& lane, Task t) {
    {
      std::lock_guard lock(mu);
      if (!stopped) {
        lane.push_back(std::move(t));
        cv.notify_one();
        return;
      }
      ++dropped;
    }
    // The threads are gone: the task is dropped (a packaged_task's future sees
    // broken_promise as it is destroyed here).
  }
};

WorkerPool::WorkerPool(size_t threads, size_t queue_limit)
    : impl_(std::make_unique<Impl>()),
      size_(threads),
      queue_limit_(queue_limit ? queue_limit : std::max<size_t>(threads, 1) * kQueueLimitPerThread) {
  impl_->threads.reserve(threads);
  for (size_t i = 0; i < threads; ++i) impl_->threads.emplace_back([impl = impl_.get()] { impl->loop(); });
}

WorkerPool::~WorkerPool() { join(); }

void WorkerPool::post(std::function<void()> task) {
  // The work follows its request (or whatever context the poster runs in).
  impl_->enqueue(impl_->normal, Task{std::move(task), {}, {}, capture_context()});
}

void WorkerPool::post_priority(std::function<void()> task) {
  impl_->enqueue(impl_->priority, Task{std::move(task), {}, {}, capture_context()});
}

bool WorkerPool::try_post(std::function<void()> task, std::function<bool()> wanted, std::function<void()> on_drop) {
  Task t{std::move(task), std::move(wanted), std::move(on_drop), capture_context()};
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping && impl_->requests.size() < queue_limit_) {
      impl_->requests.push_back(std::move(t));
      impl_->cv.notify_one();
      return true;
    }
    ++impl_->refused;
  }
  return false;  // t (and its captures) destroyed here, outside the lock
}

WorkerPoolStats WorkerPool::stats() const {
  std::lock_guard lock(impl_->mu);
  WorkerPoolStats s;
  s.threads = size_;
  s.queue_limit = queue_limit_;
  s.queued_requests = impl_->requests.size();
  s.queued = impl_->priority.size() + impl_->normal.size() + s.queued_requests;
  s.refused = impl_->refused;
  s.dropped = impl_->dropped;
  s.stopping = impl_->stopping;
  return s;
}

void WorkerPool::join() {
  std::lock_guard join_lock(impl_->join_mu);
  std::deque<Task> discarded;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopping = true;
    discarded.swap(impl_->requests);
    impl_->dropped += discarded.size();
    impl_->cv.notify_all();
  }
  for (Task& t : discarded) drop(t);
  discarded.clear();
  for (std::thread& th : impl_->threads)
    if (th.joinable()) th.join();
  std::deque<Task> left;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopped = true;
    // Nothing should be left (the threads exit only when every lane is empty),
    // but a pool with no threads never ran anything.
    for (auto* lane : {&impl_->priority, &impl_->normal, &impl_->requests})
      for (Task& t : *lane) left.push_back(std::move(t));
    impl_->priority.clear();
    impl_->normal.clear();
    impl_->requests.clear();
    impl_->dropped += left.size();
  }
  for (Task& t : left) drop(t);
}

}  // namespace memgate
