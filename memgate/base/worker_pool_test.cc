#include "memgate/base/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

// Holds a pool's only thread until release(), so what is queued behind it stays queued.
class Blocker {
 public:
  explicit Blocker(WorkerPool& pool) {
    pool.post_priority([this] {
      started_.count_down();
      release_.wait();
    });
    started_.wait();
  }
  ~Blocker() { release(); }
  void release() {
    if (!released_.exchange(true)) release_.count_down();
  }

 private:
  std::latch started_{1};
  std::latch release_{1};
  std::atomic<bool> released_{false};
};

TEST(WorkerPool, TheQueueLimitDefaultsToSixtyFourPerThread) {
  WorkerPool pool(3);
  EXPECT_EQ(pool.queue_limit(), 3 * WorkerPool::kQueueLimitPerThread);
  EXPECT_EQ(WorkerPool(1, 5).queue_limit(), 5u);
}

TEST(WorkerPool, AFullQueueRefusesRequestWorkButAcceptsPriorityAndNormalWork) {
  WorkerPool pool(1, 2);
  std::atomic<int> requests{0}, priority{0}, normal{0};
  std::latch requests_done{2};
  auto request = [&] {
    requests.fetch_add(1);
    requests_done.count_down();
  };
  {
    Blocker blocker(pool);
    EXPECT_TRUE(pool.try_post(request));
    EXPECT_TRUE(pool.try_post(request));
    EXPECT_FALSE(pool.try_post([&] { requests.fetch_add(100); }));
    pool.post_priority([&] { priority.fetch_add(1); });
    pool.post([&] { normal.fetch_add(1); });
    WorkerPoolStats s = pool.stats();
    EXPECT_EQ(s.queue_limit, 2u);
    EXPECT_EQ(s.queued_requests, 2u);
    EXPECT_EQ(s.queued, 4u);
    EXPECT_EQ(s.refused, 1u);
  }
  requests_done.wait();  // priority and normal work ran before the request lane
  EXPECT_EQ(requests.load(), 2);
  EXPECT_EQ(priority.load(), 1);
  EXPECT_EQ(normal.load(), 1);
  EXPECT_EQ(pool.stats().dropped, 0u);
}

TEST(WorkerPool, PriorityWorkRunsAheadOfNormalAndRequestWork) {
  WorkerPool pool(1);
  std::mutex mu;
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    std::lock_guard lock(mu);
    order.push_back(std::move(what));
  };
  {
    Blocker blocker(pool);
    ASSERT_TRUE(pool.try_post([&] { note("request"); }));
    pool.post([&] { note("normal"); });
    pool.post_priority([&] { note("priority"); });
    std::thread joiner([&] { pool.join(); });
    while (!pool.stats().stopping) std::this_thread::yield();
    blocker.release();
    joiner.join();
  }
  EXPECT_EQ(order, (std::vector<std::string>{"priority", "normal"}));  // the request was dropped by join()
}

TEST(WorkerPool, ATaskWhoseClientLeftIsNotRunButDroppedAndCounted) {
  WorkerPool pool(1);
  std::atomic<bool> client_here{true};
  std::atomic<bool> ran{false}, dropped{false};
  {
    Blocker blocker(pool);
    ASSERT_TRUE(pool.try_post([&] { ran = true; }, [&] { return client_here.load(); }, [&] { dropped = true; }));
    client_here = false;
  }
  std::promise<void> after;
  ASSERT_TRUE(pool.try_post([&] { after.set_value(); }));
  after.get_future().wait();
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(dropped.load());
  EXPECT_EQ(pool.stats().dropped, 1u);
}

TEST(WorkerPool, StopDropsQueuedRequestWorkAndFinishesPriorityWork) {
  WorkerPool pool(1);
  std::atomic<int> requests_run{0}, requests_dropped{0}, priority_run{0}, normal_run{0};
  std::future<int> priority_result;
  std::future<int> normal_result;
  {
    Blocker blocker(pool);
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(pool.try_post([&] { requests_run.fetch_add(1); }, {}, [&] { requests_dropped.fetch_add(1); }));
    pool.post_priority([&] { priority_run.fetch_add(1); });
    priority_result = pool.submit_priority([] { return 7; });
    normal_result = pool.submit([&] {
      normal_run.fetch_add(1);
      return 8;
    });
    std::thread joiner([&] { pool.join(); });
    while (!pool.stats().stopping) std::this_thread::yield();  // join() has started
    EXPECT_FALSE(pool.try_post([&] { requests_run.fetch_add(1); }));
    blocker.release();
    joiner.join();
  }
  EXPECT_EQ(requests_run.load(), 0);
  EXPECT_EQ(requests_dropped.load(), 5);
  EXPECT_EQ(priority_run.load(), 1);
  EXPECT_EQ(priority_result.get(), 7);
  EXPECT_EQ(normal_result.get(), 8);
  EXPECT_EQ(normal_run.load(), 1);
  EXPECT_EQ(pool.stats().dropped, 5u);
  EXPECT_EQ(pool.stats().refused, 1u);
  EXPECT_EQ(pool.stats().queued, 0u);
}

TEST(WorkerPool, WorkPostedByARunningTaskDuringStopStillRuns) {
  WorkerPool pool(2);
  std::atomic<bool> helper_ran{false};
  std::promise<void> go;
  auto outer = pool.submit_priority([&] {
    go.get_future().wait();
    // Like an index build posting its helpers and waiting for them.
    pool.submit([&] { helper_ran = true; }).wait();
  });
  std::thread joiner([&] { pool.join(); });
  while (!pool.stats().stopping) std::this_thread::yield();  // join() has started
  go.set_value();
  joiner.join();
  outer.get();
  EXPECT_TRUE(helper_ran.load());
}

TEST(WorkerPool, WorkPostedAfterStopIsRefusedOrDroppedAndNoFutureHangs) {
  WorkerPool pool(1);
  pool.join();
  bool dropped = false;
  EXPECT_FALSE(pool.try_post([] {}, {}, [&] { dropped = true; }));
  EXPECT_FALSE(dropped);  // refused, not accepted: the caller answers for it
  auto f = pool.submit([] { return 1; });
  try {
    f.get();
    ADD_FAILURE() << "a task posted after join() ran";
  } catch (const std::future_error& e) {
    EXPECT_EQ(e.code(), std::future_errc::broken_promise);
  }
  EXPECT_EQ(pool.stats().refused, 1u);
  EXPECT_EQ(pool.stats().dropped, 1u);
}

}  // namespace
}  // namespace memgate
