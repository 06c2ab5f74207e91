// Scheduler: runs each job once per period across the fleet, only while memory allows.
//
// Periods are aligned to wall-clock multiples of the job's period (period index =
// unix_ms / period), so every instance agrees on which period it is without
// talking. At each period boundary an instance:
//   - skips the run (counted as skipped_memory) when the heap is at or above the
//     scheduler's gate or the memory guard refuses optional work;
//   - otherwise tries to claim the period through the JobClaimer (a fleet lock
//     "job:<name>:<index>" that expires with the period and is never released, so
//     one instance per period wins; the others count skipped_claimed);
//   - runs the job on the worker pool, unless its previous run is still going
//     (skipped_overlap).
// The scheduler itself starts only once the heap is under its gate (2 GB by
// default), checking again every gate_check_interval until it is.
//
// Thread-safety: start()/stop() from the owner; report() from any thread. All
// waiting goes through the Clock, so tests drive periods with a FakeClock.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "memgate/base/clock.h"
#include "memgate/base/status.h"
#include "memgate/base/units.h"
#include "memgate/base/worker_pool.h"
#include "memgate/jobs/job.h"
#include "memgate/memory/memory_probe.h"

namespace memgate::jobs {

// Claims one period of one job for this instance, fleet-wide.
class JobClaimer {
 public:
  virtual ~JobClaimer() = default;
  // True when this instance won the period; false when another did. An error
  // (coordination unreachable) skips the run, counted as a failure to claim.
  virtual Result<bool> claim(const std::string& job, int64_t period_index, std::chrono::milliseconds ttl) = 0;
};

// Every claim wins: a single instance with no fleet.
class LocalJobClaimer final : public JobClaimer {
 public:
  Result<bool> claim(const std::string&, int64_t, std::chrono::milliseconds) override { return true; }
};

struct SchedulerOptions {
  SizeSpec heap_gate = SizeSpec::Bytes(2ull << 30);
  uint64_t memory_limit = 4096ull << 20;  // base for a share when no cgroup limit
  std::chrono::milliseconds gate_check_interval{30'000};
  std::function<bool()> refuse_optional_init;  // the memory guard; may be empty
};

struct JobReport {
  std::string name;
  int64_t period_ms = 0;
  uint64_t runs = 0;
  uint64_t failures = 0;
  uint64_t skipped_memory = 0;
  uint64_t skipped_claimed = 0;   // another instance ran this period
  uint64_t skipped_overlap = 0;   // the previous run was still going
  uint64_t claim_errors = 0;
  double last_duration_seconds = 0;
  double total_duration_seconds = 0;
  bool running = false;
};

class Scheduler {
 public:
  // Everything passed by reference must outlive the scheduler.
  Scheduler(SchedulerOptions options, Clock& clock, WorkerPool& workers, memory::MemoryProbe& probe,
            JobClaimer& claimer);
  ~Scheduler();  // stop()s

  // Adds a job; before start() only.
  void add(JobSpec job);
  // Starts the scheduler thread (it first waits for the heap gate).
  void start();
  // Stops the thread, tells running jobs through their stop token, and waits for them.
  void stop();

  // True once the heap gate let the scheduler start.
  bool running() const { return running_.load(); }
  std::vector<JobReport> report() const;

 private:
  struct Job;
  void run(std::stop_token stop);
  bool under_pressure(std::string* why);
  void tick(Job& job, int64_t period_index, std::stop_token stop);

  SchedulerOptions options_;
  Clock& clock_;
  WorkerPool& workers_;
  memory::MemoryProbe& probe_;
  JobClaimer& claimer_;
  std::vector<std::unique_ptr<Job>> jobs_;
  std::atomic<bool> running_{false};
  std::stop_source jobs_stop_;
  std::jthread thread_;
  mutable std::mutex mu_;
};

}  // namespace memgate::jobs
