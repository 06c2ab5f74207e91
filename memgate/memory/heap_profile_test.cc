// Runs in its own binary: jemalloc reads malloc_conf before the first allocation,
// and prof:true is chosen then or never. prof_active:false keeps sampling off until
// the test turns it on.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "memgate/memory/allocator.h"

extern "C" {
// jemalloc's compile-time options hook (unprefixed build).
const char* malloc_conf = "prof:true,prof_active:false,lg_prof_sample:10";
}

namespace memgate::memory {
namespace {

TEST(HeapProfile, IsInactiveUntilTurnedOnAndThenDumpsAProfileJeprofReads) {
  ASSERT_FALSE(heap_profiling_active());
  ASSERT_TRUE(set_heap_profiling_active(true).ok());
  ASSERT_TRUE(heap_profiling_active());

  void* p = std::malloc(4 << 20);  // something to sample
  std::memset(p, 1, 4 << 20);
  asm volatile("" : : "g"(p) : "memory");

  const std::string path = (std::filesystem::temp_directory_path() /
                            ("memgate-heap-" + std::to_string(::getpid()) + ".heap"))
                               .string();
  Result<std::string> dumped = dump_heap_profile(path);
  std::free(p);
  ASSERT_TRUE(dumped.ok()) << dumped.status().to_string();
  EXPECT_EQ(*dumped, path);

  std::ifstream in(path);
  std::string first_line;
  std::getline(in, first_line);
  EXPECT_TRUE(first_line.starts_with("heap_v2/")) << first_line;
  std::filesystem::remove(path);

  ASSERT_TRUE(set_heap_profiling_active(false).ok());
  EXPECT_FALSE(heap_profiling_active());
}

TEST(HeapProfile, DumpingIntoAMissingDirectoryFails) {
  ASSERT_TRUE(set_heap_profiling_active(true).ok());
  Result<std::string> dumped = dump_heap_profile("/nonexistent-dir/memgate.heap");
  EXPECT_EQ(dumped.status().code(), Code::kInternal);
  ASSERT_TRUE(set_heap_profiling_active(false).ok());
}

}  // namespace
}  // namespace memgate::memory
