// FakeMemoryProbe: a MemoryProbe whose answers a test sets by hand, for code
// that decides on memory (gates, guard, collectors) to be tested without real
// allocations. Thread-safe; header-only.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

#include "memgate/memory/memory_probe.h"

namespace memgate::memory {

class FakeMemoryProbe final : public MemoryProbe {
 public:
  FakeMemoryProbe() {
    sample_.allocator.available = true;
    sample_.allocator.allocator = "fake";
  }

  // What sample() returns from now on.
  void set_sample(const MemorySample& s) {
    std::lock_guard lock(mu_);
    sample_ = s;
  }
  // Shortcut for the most common knob: the heap's allocated bytes.
  void set_allocated(uint64_t bytes) {
    std::lock_guard lock(mu_);
    sample_.allocator.allocated = bytes;
  }
  // What purge() returns; and, if given, the sample in force after a purge
  // (so a test can make a purge "work").
  void set_purge_result(const PurgeResult& r, std::optional<MemorySample> after = std::nullopt) {
    std::lock_guard lock(mu_);
    purge_result_ = r;
    after_purge_ = std::move(after);
  }

  MemorySample sample() override {
    std::lock_guard lock(mu_);
    ++samples_;
    return sample_;
  }
  PurgeResult purge() override {
    std::lock_guard lock(mu_);
    ++purges_;
    if (after_purge_) sample_ = *after_purge_;
    return purge_result_;
  }

  int sample_count() const {
    std::lock_guard lock(mu_);
    return samples_;
  }
  int purge_count() const {
    std::lock_guard lock(mu_);
    return purges_;
  }

 private:
  mutable std::mutex mu_;
  MemorySample sample_;
  PurgeResult purge_result_;
  std::optional<MemorySample> after_purge_;
  int samples_ = 0;
  int purges_ = 0;
};

}  // namespace memgate::memory
