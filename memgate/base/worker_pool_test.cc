#include "memgate/base/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>

namespace memgate {
namespace {

TEST(WorkerPool, RunsEveryPostedTaskBeforeJoinReturns) {
  std::atomic<int> ran{0};
  WorkerPool pool(3);
  for (int i = 0; i < 100; ++i) pool.post([&] { ran.fetch_add(1); });
  pool.join();
  EXPECT_EQ(ran.load(), 100);
}

TEST(WorkerPool, SubmitReturnsTheResultAndCarriesExceptions) {
  WorkerPool pool(2);
  EXPECT_EQ(pool.submit([] { return 6 * 7; }).get(), 42);
  auto failing = pool.submit([]() -> int { throw std::runtime_error("boom"); });
  EXPECT_THROW(failing.get(), std::runtime_error);
}

TEST(WorkerPool, ATaskThatThrowsDoesNotKillThePool) {
  WorkerPool pool(1);
  pool.post([] { throw std::runtime_error("boom"); });
  EXPECT_EQ(pool.submit([] { return 1; }).get(), 1);
}

TEST(WorkerPool, RunsTasksOffTheCallingThread) {
  WorkerPool pool(1);
  auto id = pool.submit([] { return std::this_thread::get_id(); }).get();
  EXPECT_NE(id, std::this_thread::get_id());
}

}  // namespace
}  // namespace memgate
