#include "memgate/base/clock.h"

#include <gtest/gtest.h>

#include <thread>

namespace memgate {
namespace {

using namespace std::chrono_literals;

TEST(FakeClock, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  TimePoint t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(5s);
  EXPECT_EQ(clock.now() - t0, 5s);
}

TEST(FakeClock, ASleeperWakesWhenTimeReachesItsDeadline) {
  FakeClock clock;
  std::atomic<bool> woke{false};
  std::jthread sleeper([&] {
    EXPECT_TRUE(clock.sleep_for(10s));
    woke = true;
  });
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  clock.advance(9s);
  EXPECT_EQ(clock.sleepers(), 1);  // not yet: one second short
  EXPECT_FALSE(woke);
  clock.advance(1s);
  sleeper.join();
  EXPECT_TRUE(woke);
}

TEST(FakeClock, AStopRequestEndsASleepEarly) {
  FakeClock clock;
  std::stop_source stop;
  bool reached = true;
  std::jthread sleeper([&] { reached = clock.sleep_for(1h, stop.get_token()); });
  ASSERT_TRUE(clock.wait_for_sleepers(1));
  stop.request_stop();
  sleeper.join();
  EXPECT_FALSE(reached);
}

TEST(SteadyClock, AStopRequestEndsARealSleepEarly) {
  SteadyClock clock;
  std::stop_source stop;
  auto begin = std::chrono::steady_clock::now();
  std::jthread stopper([&] { stop.request_stop(); });
  EXPECT_FALSE(clock.sleep_for(1h, stop.get_token()));
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 10s);
}

}  // namespace
}  // namespace memgate
