// Clock: the one way memgate code reads time and waits for it, so tests can move
// time by hand instead of sleeping.
//
// SteadyClock reads std::chrono::steady_clock and sleeps for real. FakeClock
// starts at an arbitrary point and moves only when advance() is called; a thread
// in sleep_until() wakes when advance() carries the clock past its deadline. Code
// that waits (the loader's inter-stage delay, the guard's sampling, the
// scheduler's periods) takes a Clock& so a test fires those waits by hand. Both
// clocks are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <stop_token>

namespace memgate {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // Wall-clock milliseconds since the Unix epoch, for timestamps people read.
  virtual int64_t unix_millis() const = 0;
  // Blocks until the clock reaches `deadline` or `stop` is requested. Returns true
  // when the deadline was reached, false when stopped first.
  virtual bool sleep_until(TimePoint deadline, std::stop_token stop = {}) = 0;
  bool sleep_for(Duration d, std::stop_token stop = {}) { return sleep_until(now() + d, std::move(stop)); }
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  int64_t unix_millis() const override;
  bool sleep_until(TimePoint deadline, std::stop_token stop = {}) override;
  // A process-wide instance.
  static SteadyClock& instance();

 private:
  std::mutex mu_;
  std::condition_variable_any cv_;
};

class FakeClock final : public Clock {
 public:
  FakeClock() = default;
  TimePoint now() const override { return TimePoint(Duration(ns_.load())); }
  int64_t unix_millis() const override { return 1'700'000'000'000 + ns_.load() / 1'000'000; }
  bool sleep_until(TimePoint deadline, std::stop_token stop = {}) override;

  // Moves time forward and wakes the sleepers whose deadline has come.
  void advance(Duration d);
  // Threads blocked in sleep_until whose deadline has not come yet.
  int sleepers() const;
  // Blocks (for real, up to `real_timeout`) until at least n threads sleep on this
  // clock towards a deadline still ahead; lets a test know the code under test
  // has reached its next wait.
  bool wait_for_sleepers(int n, std::chrono::milliseconds real_timeout = std::chrono::seconds(10));

 private:
  std::atomic<int64_t> ns_{1'000'000'000};
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::multiset<TimePoint> deadlines_;  // of the threads in sleep_until
  int waiting_locked() const;
};

}  // namespace memgate
