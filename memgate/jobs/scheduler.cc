// The scheduler keeps one thread that sleeps until the next period boundary of
// any job, then decides for each due job: memory first (a run under pressure is
// skipped, not delayed, so a struggling instance does not pile up work), then the
// fleet claim, then the worker pool. Runs never overlap with themselves; a slow
// job simply misses periods, and the counters say so.
#include "memgate/jobs/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

namespace memgate::jobs {

struct Scheduler::Job {
  JobSpec spec;
  int64_t last_period = std::numeric_limits<int64_t>::min();
  std::atomic<bool> running{false};
  JobReport report;  // guarded by Scheduler::mu_
};

Scheduler::Scheduler(SchedulerOptions options, Clock& clock, WorkerPool& workers, memory::MemoryProbe& probe,
                     JobClaimer& claimer)
    : options_(std::move(options)), clock_(clock), workers_(workers), probe_(probe), claimer_(claimer) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::add(JobSpec spec) {
  auto job = std::make_unique<Job>();
  if (spec.period.count() <= 0) spec.period = std::chrono::milliseconds(1000);
  job->report.name = spec.name;
  job->report.period_ms = spec.period.count();
  job->spec = std::move(spec);
  jobs_.push_back(std::move(job));
}

void Scheduler::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Scheduler::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  jobs_stop_.request_stop();
  // Wait for runs still on the worker pool (they were told to stop).
  for (auto& job : jobs_)
    while (job->running.load()) std::this_thread::yield();
  running_ = false;
}

bool Scheduler::under_pressure(std::string* why) {
  if (options_.refuse_optional_init && options_.refuse_optional_init()) {
    *why = "the memory guard refuses optional work";
    return true;
  }
  memory::MemorySample s = probe_.sample();
  uint64_t base = s.cgroup.limit.value_or(options_.memory_limit);
  uint64_t gate = options_.heap_gate.resolve(base);
  uint64_t heap = s.allocator.available ? s.allocator.allocated : s.process.rss;
  if (heap >= gate) {
    *why = "heap " + format_bytes(heap) + " is at or above the scheduler gate " + format_bytes(gate);
    return true;
  }
  return false;
}

void Scheduler::run(std::stop_token stop) {
  if (jobs_.empty()) return;
  std::string why;
  while (under_pressure(&why)) {
    spdlog::warn("scheduler not started: {}; checking again in {}", why,
                 format_duration(options_.gate_check_interval));
    if (!clock_.sleep_for(options_.gate_check_interval, stop)) return;
  }
  running_ = true;
  spdlog::info("scheduler started with {} job(s)", jobs_.size());
  while (!stop.stop_requested()) {
    // The next boundary of any job, on the wall clock.
    int64_t now_ms = clock_.unix_millis();
    int64_t next_ms = std::numeric_limits<int64_t>::max();
    for (auto& job : jobs_) {
      int64_t p = job->spec.period.count();
      next_ms = std::min(next_ms, (now_ms / p + 1) * p);
    }
    if (!clock_.sleep_for(std::chrono::milliseconds(next_ms - now_ms), stop)) break;
    int64_t at_ms = clock_.unix_millis();
    for (auto& job : jobs_) {
      int64_t index = at_ms / job->spec.period.count();
      if (index != job->last_period) {
        job->last_period = index;
        tick(*job, index, stop);
      }
    }
  }
}

void Scheduler::tick(Job& job, int64_t period_index, std::stop_token) {
  std::string why;
  if (under_pressure(&why)) {
    std::lock_guard lock(mu_);
    ++job.report.skipped_memory;
    spdlog::info("job {}: skipped: {}", job.spec.name, why);
    return;
  }
  if (job.running.load()) {
    std::lock_guard lock(mu_);
    ++job.report.skipped_overlap;
    return;
  }
  Result<bool> won = claimer_.claim(job.spec.name, period_index, job.spec.period);
  if (!won.ok()) {
    std::lock_guard lock(mu_);
    ++job.report.claim_errors;
    spdlog::warn("job {}: cannot claim period {}: {}", job.spec.name, period_index, won.status().to_string());
    return;
  }
  if (!*won) {
    std::lock_guard lock(mu_);
    ++job.report.skipped_claimed;
    return;
  }
  job.running = true;
  workers_.post([this, &job, token = jobs_stop_.get_token()] {
    auto begin = std::chrono::steady_clock::now();
    Status s = Internal("not run");
    try {
      s = job.spec.run(token);
    } catch (const std::exception& e) {
      s = Internal(std::string("threw: ") + e.what());
    }
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    {
      std::lock_guard lock(mu_);
      ++job.report.runs;
      if (!s.ok()) ++job.report.failures;
      job.report.last_duration_seconds = took;
      job.report.total_duration_seconds += took;
    }
    if (!s.ok()) spdlog::warn("job {} failed: {}", job.spec.name, s.to_string());
    job.running = false;
  });
}

std::vector<JobReport> Scheduler::report() const {
  std::lock_guard lock(mu_);
  std::vector<JobReport> out;
  for (auto& job : jobs_) {
    JobReport r = job->report;
    r.running = job->running.load();
    out.push_back(r);
  }
  return out;
}

}  // namespace memgate::jobs
