// A thin wrapper over Asio's thread_pool: Asio already does the queueing and the
// thread management well; this keeps Asio out of the callers' headers and adds
// the one policy we want (an escaping exception is logged, not fatal).
#include "memgate/base/worker_pool.h"

#include "memgate/base/task_context.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <exception>

namespace memgate {

struct WorkerPool::Impl {
  explicit Impl(size_t n) : pool(n) {}
  boost::asio::thread_pool pool;
};

WorkerPool::WorkerPool(size_t threads) : impl_(std::make_unique<Impl>(threads)), size_(threads) {}

WorkerPool::~WorkerPool() { join(); }

void WorkerPool::post(std::function<void()> task) {
  // The work follows its request (or whatever context the poster runs in).
  std::shared_ptr<TaskContext> context;
  if (TaskContextSource* source = current_task_context_source()) context = source->capture();
  boost::asio::post(impl_->pool, [task = std::move(task), context = std::move(context)] {
    try {
      run_in_context(context, task);
    } catch (const std::exception& e) {
      spdlog::error("worker task threw: {}", e.what());
    } catch (...) {
      spdlog::error("worker task threw a non-exception");
    }
  });
}

void WorkerPool::join() { impl_->pool.join(); }

}  // namespace memgate
