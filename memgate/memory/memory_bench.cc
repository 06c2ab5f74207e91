// What the memory probes cost: the per-thread counter read that wraps every
// request, a full sample, each of its parts, and a purge with nothing to purge.
#include <benchmark/benchmark.h>

#include "memgate/memory/allocator.h"
#include "memgate/memory/cgroup.h"
#include "memgate/memory/memory_probe.h"
#include "memgate/memory/process_stats.h"

namespace memgate::memory {
namespace {

void BM_ThreadAllocatedBytes(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(thread_allocated_bytes());
}
BENCHMARK(BM_ThreadAllocatedBytes);

void BM_ReadAllocatorStats(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_allocator_stats());
}
BENCHMARK(BM_ReadAllocatorStats);

void BM_ReadProcessStats(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_process_stats());
}
BENCHMARK(BM_ReadProcessStats);

void BM_ReadCgroup(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(read_cgroup());
}
BENCHMARK(BM_ReadCgroup);

void BM_ProbeSample(benchmark::State& state) {
  SystemMemoryProbe probe;
  for (auto _ : state) benchmark::DoNotOptimize(probe.sample());
}
BENCHMARK(BM_ProbeSample);

void BM_PurgeWithNothingToPurge(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(purge_allocator());
}
BENCHMARK(BM_PurgeWithNothingToPurge);

}  // namespace
}  // namespace memgate::memory

BENCHMARK_MAIN();
