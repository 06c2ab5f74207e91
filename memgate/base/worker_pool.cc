// A thin wrapper over Asio's thread_pool: Asio already does the queueing and the
// thread management well; this keeps Asio out of the callers' headers and adds
// the one policy we want (an escaping exception is logged, not fatal).
#include "memgate/base/worker_pool.h"

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
  boost::asio::post(impl_->pool, [task = std::move(task)] {
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("worker task threw: {}", e.what());
    } catch (...) {
      spdlog::error("worker task threw a non-exception");
    }
  });
}

void WorkerPool::join() { impl_->pool.join(); }

}  // namespace memgate
