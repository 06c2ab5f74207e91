// Lease and CancelSignal: what a lock holder holds, and how it is told to stop.
//
// A Lease is a value: the key, a random 128-bit token (32 hex digits) that proves
// ownership, a fencing number that grows by at least one for every new holder of
// that key, the TTL it was taken with, and which backend issued it. Copies refer
// to the same hold; a local lease's file lock is dropped when the last copy goes.
//
// A CancelSignal is raised by the lock watchdog when the lease is lost or cannot
// be extended in time; work under with_lock() polls cancelled() or waits on it.
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace memgate::coord {

struct Lease {
  std::string key;
  std::string token;
  int64_t fence = 0;
  std::chrono::milliseconds ttl{0};
  std::chrono::steady_clock::time_point acquired_at;
  std::string backend;           // "redis" or "local": release/extend go to the issuer
  std::string legacy_key;        // redis only: the lock name before hash tags, also held
                                 // during the migration window ("" when not)
  std::shared_ptr<void> local;   // local backend only: the held file lock
};

class CancelSignal {
 public:
  bool cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  std::string reason() const {
    std::lock_guard lock(mu_);
    return reason_;
  }
  // Waits up to `d`; true when the signal was raised.
  bool wait_for(std::chrono::milliseconds d) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, d, [&] { return cancelled_; });
  }
  // Raises the signal (the first reason wins).
  void cancel(std::string reason) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return;
      cancelled_ = true;
      reason_ = std::move(reason);
    }
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool cancelled_ = false;
  std::string reason_;
};

// A fresh random token: 128 bits from OpenSSL's CSPRNG (RAND_bytes) as 32
// lower-case hex digits. Thread-safe, and distinct in a forked child.
std::string random_token();

}  // namespace memgate::coord
