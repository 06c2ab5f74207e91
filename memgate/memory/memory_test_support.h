// What the memory tests share: sizes, the AddressSanitizer skip, and a way to
// keep the compiler from eliding an allocation whose result looks unused.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

namespace memgate::memory::testing {

constexpr uint64_t kMiB = 1024 * 1024;

// Under AddressSanitizer, ASan's allocator serves malloc and the linked
// allocator's statistics do not move with the test's allocations.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#define MEMGATE_SKIP_UNDER_ASAN() \
  if (::memgate::memory::testing::kSanitized) GTEST_SKIP() << "malloc is AddressSanitizer's in this build"

inline void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

}  // namespace memgate::memory::testing
