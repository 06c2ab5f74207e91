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
#include "memgate/memory/heap_pprof.h"
#include "memgate/memory/pprof_decode_testing.h"

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

// Not inlined, so its return address is its own and the test can find it.
[[gnu::noinline]] void* allocate_for_the_profile(size_t n) {
  void* p = std::malloc(n);
  std::memset(p, 1, n);
  asm volatile("" : : "g"(p) : "memory");
  return p;
}

TEST(HeapProfile, APprofProfileNamesTheAllocatingFunctionsAddressWithTheBytesItHolds) {
  ASSERT_TRUE(set_heap_profiling_active(true).ok());
  constexpr size_t kBytes = 8 << 20;  // 8 samples' worth at lg_prof_sample:10: always sampled
  void* p = allocate_for_the_profile(kBytes);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("memgate-heap-" + std::to_string(::getpid()) + ".pprof"))
                               .string();
  auto gz = take_heap_profile(path, HeapProfileFormat::kPprof);
  std::free(p);
  ASSERT_TRUE(set_heap_profiling_active(false).ok());
  ASSERT_TRUE(gz.ok()) << gz.status().to_string();
  EXPECT_FALSE(std::filesystem::exists(path)) << "the dump file is removed";

  auto bytes = testing::gunzip(*gz);
  ASSERT_TRUE(bytes);
  auto profile = testing::decode_profile(*bytes);
  ASSERT_TRUE(profile);
  ASSERT_EQ(profile->sample_types.size(), 2u);
  EXPECT_EQ(profile->sample_types[1].first, "inuse_space");
  EXPECT_EQ(profile->period, 1024);
  ASSERT_FALSE(profile->mappings.empty());
  const auto& main = profile->mappings[0];
  EXPECT_EQ(main.build_id.size(), 40u);
  EXPECT_NE(main.filename.find("memgate_memory_profile_test"), std::string::npos) << main.filename;

  // The sample whose leaf is inside allocate_for_the_profile (within a few
  // hundred bytes of its entry) holds the 8 MiB, and its leaf is in mapping 1.
  const auto fn = reinterpret_cast<uint64_t>(&allocate_for_the_profile);
  bool found = false;
  for (const auto& s : profile->samples) {
    ASSERT_FALSE(s.location_ids.empty());
    const auto* leaf = profile->location(s.location_ids[0]);
    ASSERT_NE(leaf, nullptr);
    if (leaf->address < fn || leaf->address >= fn + 256) continue;
    found = true;
    EXPECT_EQ(leaf->mapping_id, 1u);
    ASSERT_EQ(s.values.size(), 2u);
    EXPECT_EQ(s.values[0], 1);
    EXPECT_EQ(s.values[1], static_cast<int64_t>(kBytes)) << "a sure sample is not scaled";
  }
  EXPECT_TRUE(found) << "no sample's leaf is in allocate_for_the_profile";
}

TEST(HeapProfile, TheJeprofFormatIsTheDumpAsJemallocWroteIt) {
  ASSERT_TRUE(set_heap_profiling_active(true).ok());
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("memgate-heap-" + std::to_string(::getpid()) + ".jeprof"))
                               .string();
  auto text = take_heap_profile(path, HeapProfileFormat::kJeprof);
  ASSERT_TRUE(set_heap_profiling_active(false).ok());
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  EXPECT_TRUE(text->starts_with("heap_v2/1024\n")) << text->substr(0, 40);
  EXPECT_NE(text->find("MAPPED_LIBRARIES:"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(HeapProfile, DumpingIntoAMissingDirectoryFails) {
  ASSERT_TRUE(set_heap_profiling_active(true).ok());
  Result<std::string> dumped = dump_heap_profile("/nonexistent-dir/memgate.heap");
  EXPECT_EQ(dumped.status().code(), Code::kInternal);
  EXPECT_EQ(take_heap_profile("/nonexistent-dir/memgate.heap", HeapProfileFormat::kPprof).status().code(),
            Code::kInternal);
  ASSERT_TRUE(set_heap_profiling_active(false).ok());
}

}  // namespace
}  // namespace memgate::memory
