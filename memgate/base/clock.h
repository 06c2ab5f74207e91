// Clock: the one way memgate code reads time, so tests can move it by hand.
//
// SteadyClock reads std::chrono::steady_clock. FakeClock starts at an arbitrary
// point and moves only when advance() is called; it is thread-safe. Code that waits
// for a deadline asks the clock for now() and compares, and code that schedules
// work (the loader's inter-stage delay, the guard's sampling, the scheduler) takes
// a Clock& so a test can fire its timers without sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace memgate {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // Wall-clock milliseconds since the Unix epoch, for timestamps people read.
  virtual int64_t unix_millis() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  int64_t unix_millis() const override;
  // A process-wide instance.
  static SteadyClock& instance();
};

class FakeClock final : public Clock {
 public:
  FakeClock() = default;
  TimePoint now() const override { return TimePoint(Duration(ns_.load())); }
  int64_t unix_millis() const override { return 1'700'000'000'000 + ns_.load() / 1'000'000; }
  void advance(Duration d) { ns_.fetch_add(d.count()); }

 private:
  std::atomic<int64_t> ns_{1'000'000'000};
};

}  // namespace memgate
