#include "memgate/memory/heap_pprof.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "memgate/memory/elf_symbols.h"
#include "memgate/memory/jemalloc_heap_dump.h"
#include "memgate/memory/process_maps.h"
#include "memgate/memory/text_file.h"

namespace memgate::memory {
namespace {

// The shape jemalloc 5.3 writes, with made-up addresses: 0x7f00... is the
// allocator's library, 0x5555... the program.
constexpr std::string_view kDump =
    "heap_v2/524288\n"
    "  t*: 4: 3146240 [0: 0]\n"
    "  t0: 3: 3145728 [0: 0]\n"
    "  t1: 1: 512 [0: 0]\n"
    "@ 0x7f0000010100 0x7f0000010200 0x555500002345 0x555500003456\n"
    "  t*: 3: 3145728 [0: 0]\n"
    "  t0: 3: 3145728 [0: 0]\n"
    "@ 0x7f0000010100 0x555500002400 0x555500003456\n"
    "  t*: 1: 512 [7: 3584]\n"
    "  t1: 1: 512 [7: 3584]\n"
    "@ 0x7f0000010100 0x555500002500\n"
    "  t*: 0: 0 [0: 0]\n"
    "\n"
    "MAPPED_LIBRARIES:\n"
    "555500000000-555500001000 r--p 00000000 fe:00 1 /usr/bin/memgate\n";

TEST(JemallocHeapDump, ReadsTheIntervalTheTotalsAndEachStackLeafFirst) {
  auto d = parse_jemalloc_heap_dump(kDump);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->sample_interval, 524288u);
  EXPECT_EQ(d->live_objects, 4u);
  EXPECT_EQ(d->live_bytes, 3146240u);
  ASSERT_EQ(d->stacks.size(), 3u);
  EXPECT_EQ(d->stacks[0].frames,
            (std::vector<uint64_t>{0x7f0000010100, 0x7f0000010200, 0x555500002345, 0x555500003456}));
  EXPECT_EQ(d->stacks[0].live_objects, 3u);
  EXPECT_EQ(d->stacks[0].live_bytes, 3145728u);
  EXPECT_EQ(d->stacks[1].accumulated_objects, 7u);
  EXPECT_EQ(d->stacks[1].accumulated_bytes, 3584u);
  EXPECT_EQ(d->stacks[2].live_bytes, 0u);
}

TEST(JemallocHeapDump, RejectsWhatIsNotTheFormatNamingTheLine) {
  struct Case {
    const char* why;
    std::string text;
  };
  const Case cases[] = {
      {"empty", ""},
      {"another format", "heap profile: 1: 2 [3: 4] @ heap\n"},
      {"interval zero", "heap_v2/0\n  t*: 0: 0 [0: 0]\n"},
      {"no totals", "heap_v2/512\n"},
      {"a frame not in hex", "heap_v2/512\n  t*: 1: 8 [0: 0]\n@ 0x10 zz\n  t*: 1: 8 [0: 0]\n"},
      {"a stack without counts", "heap_v2/512\n  t*: 1: 8 [0: 0]\n@ 0x10\n@ 0x20\n  t*: 1: 8 [0: 0]\n"},
      {"ends inside a stack", "heap_v2/512\n  t*: 1: 8 [0: 0]\n@ 0x10\n"},
      {"a count overflows", "heap_v2/512\n  t*: 1: 99999999999999999999999 [0: 0]\n"},
      {"a stray line", "heap_v2/512\n  t*: 1: 8 [0: 0]\nhello\n"},
      {"counts cut short", "heap_v2/512\n  t*: 1: 8 [0:\n"},
  };
  for (const auto& c : cases) {
    auto d = parse_jemalloc_heap_dump(c.text);
    EXPECT_EQ(d.status().code(), Code::kInvalidArgument) << c.why;
  }
  EXPECT_NE(parse_jemalloc_heap_dump(cases[4].text).status().message().find("line 3"), std::string::npos);
}

TEST(JemallocHeapDump, StopsAtEachLimitInsteadOfGrowing) {
  HeapDumpLimits small;
  small.max_frames_per_stack = 3;
  EXPECT_EQ(parse_jemalloc_heap_dump(kDump, small).status().code(), Code::kResourceExhausted);
  small = {};
  small.max_stacks = 2;
  EXPECT_EQ(parse_jemalloc_heap_dump(kDump, small).status().code(), Code::kResourceExhausted);
  small = {};
  small.max_frames_total = 8;
  EXPECT_EQ(parse_jemalloc_heap_dump(kDump, small).status().code(), Code::kResourceExhausted);
  small = {};
  small.max_text_bytes = 100;
  EXPECT_EQ(parse_jemalloc_heap_dump(kDump, small).status().code(), Code::kResourceExhausted);
  small = {};
  small.max_frames_total = 9;  // exactly what it holds
  EXPECT_TRUE(parse_jemalloc_heap_dump(kDump, small).ok());
}

TEST(ProcMaps, ReadsEachLinePathsWithSpacesIncluded) {
  auto r = parse_proc_maps(
      "555500000000-555500001000 r--p 00000000 fe:00 247134                     /usr/bin/memgate\n"
      "555500001000-555500200000 r-xp 00001000 fe:00 247134                     /usr/bin/memgate\n"
      "7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
      "7f0000021000-7f0000022000 r-xp 00002000 fe:00 9 /opt/my lib/libx.so (deleted)\n"
      "7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]\n");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_FALSE((*r)[0].executable);
  EXPECT_TRUE((*r)[1].executable);
  EXPECT_EQ((*r)[1].start, 0x555500001000u);
  EXPECT_EQ((*r)[1].end, 0x555500200000u);
  EXPECT_EQ((*r)[1].file_offset, 0x1000u);
  EXPECT_EQ((*r)[1].path, "/usr/bin/memgate");
  EXPECT_EQ((*r)[2].path, "");
  EXPECT_EQ((*r)[3].path, "/opt/my lib/libx.so (deleted)");
  EXPECT_EQ((*r)[4].path, "[vdso]");
}

TEST(ProcMaps, RejectsAMalformedLineAndTooManyLines) {
  EXPECT_EQ(parse_proc_maps("5555-zz r-xp 0 fe:00 1 /x\n").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse_proc_maps("2000-1000 r-xp 0 fe:00 1 /x\n").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse_proc_maps("1000-2000 r-x 0 fe:00 1 /x\n").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse_proc_maps("1000-2000 r-xp 0\n").status().code(), Code::kInvalidArgument);
  std::string many;
  for (int i = 0; i < 4; ++i) many += "1000-2000 r-xp 0 fe:00 1 /x\n";
  EXPECT_EQ(parse_proc_maps(many, 3).status().code(), Code::kResourceExhausted);
  EXPECT_TRUE(parse_proc_maps(many, 4).ok());
}

[[gnu::noinline]] void* allocate_here(size_t n) { return std::malloc(n); }

TEST(LoadedObjects, TheProgramComesFirstWithItsBuildIdAndHoldsItsOwnCode) {
  auto objects = loaded_objects();
  ASSERT_FALSE(objects.empty());
  EXPECT_TRUE(objects[0].main);
  EXPECT_EQ(objects[0].build_id.size(), 40u) << "a SHA-1 build id, as GNU ld writes by default";
  EXPECT_EQ(objects[0].build_id.find_first_not_of("0123456789abcdef"), std::string::npos);
  const LoadedObject* here = object_at(objects, reinterpret_cast<uintptr_t>(&allocate_here));
  ASSERT_NE(here, nullptr);
  EXPECT_TRUE(here->main);
  const LoadedObject* allocator = object_at(objects, reinterpret_cast<uintptr_t>(&::malloc));
  ASSERT_NE(allocator, nullptr) << "malloc is in a shared library (jemalloc or libc)";
  EXPECT_FALSE(allocator->main);
}

TEST(ElfSymbols, NamesAFunctionOfThisProgramFromItsSymbolTable) {
  auto objects = loaded_objects();
  ASSERT_FALSE(objects.empty());
  auto symbols = ElfSymbols::read("/proc/self/exe");
  ASSERT_TRUE(symbols.ok()) << symbols.status().to_string();
  EXPECT_GT(symbols->size(), 100u);
  EXPECT_EQ(symbols->build_id(), objects[0].build_id) << "the file's note and the loaded one agree";
  const uint64_t vaddr = reinterpret_cast<uintptr_t>(&allocate_here) - objects[0].bias;
  std::string_view name = symbols->function_at(vaddr + 2);
  EXPECT_NE(name.find("allocate_here"), std::string_view::npos) << name;
  EXPECT_EQ(symbols->function_at(0), "") << "no function at address 0";
}

TEST(ElfSymbols, RefusesWhatIsNotAWholeElfFile) {
  EXPECT_EQ(ElfSymbols::read("/nonexistent/file").status().code(), Code::kNotFound);
  const std::string dir = std::filesystem::temp_directory_path() / ("memgate-elf-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir + "/text") << "not an ELF file at all, just some text that is long enough to be read";
  }
  EXPECT_EQ(ElfSymbols::read(dir + "/text").status().code(), Code::kInvalidArgument);
  // The first 4 KiB of a real ELF file: the header is fine, the sections it
  // points to are not in the file.
  auto exe = read_file_bounded("/proc/self/exe", 1u << 30);
  ASSERT_TRUE(exe.ok());
  {
    std::ofstream(dir + "/cut", std::ios::binary) << exe->substr(0, 4096);
  }
  EXPECT_EQ(ElfSymbols::read(dir + "/cut").status().code(), Code::kInvalidArgument);
  ElfSymbolLimits tiny;
  tiny.max_table_bytes = 1024;
  EXPECT_EQ(ElfSymbols::read("/proc/self/exe", tiny).status().code(), Code::kResourceExhausted);
  std::filesystem::remove_all(dir);
}

TEST(HeapPprof, NamesTheProgramsFramesWithTheFunctionsThatHoldThem) {
  HeapProcessView view;
  auto maps = read_file_bounded("/proc/self/maps", 8u << 20);
  ASSERT_TRUE(maps.ok());
  auto regions = parse_proc_maps(*maps);
  ASSERT_TRUE(regions.ok());
  view.regions = *regions;
  view.objects = loaded_objects();
  view.name_functions = true;
  // A return address a few bytes into allocate_here, as jemalloc would record it.
  char dump[160];
  std::snprintf(dump, sizeof dump, "heap_v2/512\n  t*: 1: 64 [0: 0]\n@ 0x%llx\n  t*: 1: 64 [0: 0]\n",
                static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(&allocate_here) + 3));
  auto parsed = parse_jemalloc_heap_dump(dump);
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  PprofProfile p = heap_dump_to_pprof(*parsed, view);
  ASSERT_FALSE(p.mappings.empty());
  EXPECT_TRUE(p.mappings[0].has_functions);
  EXPECT_EQ(p.mappings[0].build_id, view.objects[0].build_id);
  ASSERT_EQ(p.locations.size(), 1u);
  EXPECT_EQ(p.locations[0].mapping_id, 1u);
  ASSERT_EQ(p.functions.size(), 1u);
  ASSERT_EQ(p.locations[0].function_id, 1u);
  EXPECT_NE(p.functions[0].name.find("allocate_here(unsigned long)"), std::string::npos)
      << "demangled: " << p.functions[0].name;
  EXPECT_TRUE(p.functions[0].system_name.starts_with("_Z")) << p.functions[0].system_name;
}

HeapProcessView fake_view() {
  HeapProcessView v;
  v.regions = *parse_proc_maps(
      "555500000000-555500001000 r--p 00000000 fe:00 1 /usr/bin/memgate\n"
      "555500001000-555500200000 r-xp 00001000 fe:00 1 /usr/bin/memgate\n"
      "7f0000000000-7f0000010000 r--p 00000000 fe:00 2 /usr/lib/libjemalloc.so.2\n"
      "7f0000010000-7f0000090000 r-xp 00010000 fe:00 2 /usr/lib/libjemalloc.so.2\n"
      "7f0000100000-7f0000200000 rw-p 00000000 00:00 0 \n");
  // The loader lists the program first, but maps lists the library first here
  // to check that the program's mapping still comes out first.
  std::swap(v.regions[0], v.regions[2]);
  std::swap(v.regions[1], v.regions[3]);
  v.objects = {{0x555500001000, 0x555500200000, 0x555500000000, "aaaa", true},
               {0x7f0000010000, 0x7f0000090000, 0x7f0000000000, "bbbb", false}};
  v.allocator_address = 0x7f0000010123;
  v.time_nanos = 42;
  return v;
}

TEST(HeapPprof, KeepsTheProgramsFramesDropsTheAllocatorsAndUnsamples) {
  auto dump = parse_jemalloc_heap_dump(kDump);
  ASSERT_TRUE(dump.ok());
  PprofProfile p = heap_dump_to_pprof(*dump, fake_view());

  ASSERT_EQ(p.sample_types.size(), 2u);
  EXPECT_EQ(p.sample_types[0].type, "inuse_objects");
  EXPECT_EQ(p.sample_types[1].type, "inuse_space");
  EXPECT_EQ(p.default_sample_type, "inuse_space");
  EXPECT_EQ(p.period, 524288);
  EXPECT_EQ(p.time_nanos, 42);

  ASSERT_EQ(p.mappings.size(), 2u) << "the executable file mappings only";
  EXPECT_EQ(p.mappings[0].filename, "/usr/bin/memgate");
  EXPECT_EQ(p.mappings[0].build_id, "aaaa");
  EXPECT_EQ(p.mappings[0].memory_start, 0x555500001000u);
  EXPECT_EQ(p.mappings[0].file_offset, 0x1000u);
  EXPECT_EQ(p.mappings[1].filename, "/usr/lib/libjemalloc.so.2");
  EXPECT_EQ(p.mappings[1].build_id, "bbbb");

  ASSERT_EQ(p.samples.size(), 2u) << "the stack with nothing live is left out";
  // Stack 0: the two allocator frames go; each address is one before the return address.
  ASSERT_EQ(p.samples[0].location_ids.size(), 2u);
  const PprofLocation& leaf = p.locations[p.samples[0].location_ids[0] - 1];
  EXPECT_EQ(leaf.address, 0x555500002344u);
  EXPECT_EQ(leaf.mapping_id, 1u);
  // Stack 1 shares its root frame with stack 0: one location for one address.
  ASSERT_EQ(p.samples[1].location_ids.size(), 2u);
  EXPECT_EQ(p.samples[1].location_ids[1], p.samples[0].location_ids[1]);
  EXPECT_EQ(p.locations.size(), 3u);

  // 3 objects of 1 MiB sampled at a 512 KiB mean interval: each is seen with
  // probability 1 - e^-2, so the profile says 3 / (1 - e^-2) of them.
  const double scale = 1 / (1 - std::exp(-2.0));
  EXPECT_EQ(p.samples[0].values[0], std::llround(3 * scale));
  EXPECT_EQ(p.samples[0].values[1], std::llround(3145728 * scale));
  ASSERT_EQ(p.samples[0].labels.size(), 1u);
  EXPECT_EQ(p.samples[0].labels[0].key, "bytes");
  EXPECT_EQ(p.samples[0].labels[0].num, 1 << 20);
  // A 512-byte object is seen with probability ~1/1024: it stands for ~1024.
  EXPECT_NEAR(static_cast<double>(p.samples[1].values[0]), 1024.5, 1.0);
}

TEST(HeapPprof, KeepsEveryFrameWhenTheAllocatorIsPartOfTheProgram) {
  auto dump = parse_jemalloc_heap_dump(kDump);
  ASSERT_TRUE(dump.ok());
  HeapProcessView v = fake_view();
  v.allocator_address = 0x555500001234;  // a static jemalloc would be the program's own code
  PprofProfile p = heap_dump_to_pprof(*dump, v);
  ASSERT_FALSE(p.samples.empty());
  EXPECT_EQ(p.samples[0].location_ids.size(), 4u);
}

TEST(HeapPprof, AStackOfAllocatorFramesOnlyKeepsItsOutermostFrame) {
  auto dump = parse_jemalloc_heap_dump("heap_v2/512\n  t*: 1: 64 [0: 0]\n@ 0x7f0000010100 0x7f0000010200\n  t*: 1: 64 [0: 0]\n");
  ASSERT_TRUE(dump.ok()) << dump.status().to_string();
  PprofProfile p = heap_dump_to_pprof(*dump, fake_view());
  ASSERT_EQ(p.samples.size(), 1u);
  ASSERT_EQ(p.samples[0].location_ids.size(), 1u);
  EXPECT_EQ(p.locations[0].address, 0x7f00000101ffu);
  EXPECT_EQ(p.locations[0].mapping_id, 2u);
}

}  // namespace
}  // namespace memgate::memory
