#include "memgate/base/clock.h"

namespace memgate {

int64_t SteadyClock::unix_millis() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool SteadyClock::sleep_until(TimePoint deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, stop, deadline, [] { return false; });
  return !stop.stop_requested();
}

SteadyClock& SteadyClock::instance() {
  static SteadyClock clock;
  return clock;
}

bool FakeClock::sleep_until(TimePoint deadline, std::stop_token stop) {
  std::unique_lock lock(mu_);
  auto it = deadlines_.insert(deadline);
  cv_.notify_all();  // wakes wait_for_sleepers
  bool reached = cv_.wait(lock, stop, [&] { return now() >= deadline; });
  deadlines_.erase(it);
  return reached;
}

void FakeClock::advance(Duration d) {
  std::lock_guard lock(mu_);
  ns_.fetch_add(d.count());
  cv_.notify_all();
}

int FakeClock::waiting_locked() const {
  // Only sleepers whose deadline is still ahead: one that advance() has just
  // released but that has not run yet is no longer waiting.
  TimePoint t = now();
  int n = 0;
  for (TimePoint d : deadlines_) n += d > t ? 1 : 0;
  return n;
}

int FakeClock::sleepers() const {
  std::lock_guard lock(mu_);
  return waiting_locked();
}

bool FakeClock::wait_for_sleepers(int n, std::chrono::milliseconds real_timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, real_timeout, [&] { return waiting_locked() >= n; });
}

}  // namespace memgate
