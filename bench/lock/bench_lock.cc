// Lock benchmark: acquire+release round trips per second, and fleet readiness.
//
// Starts a redis-server on a free loopback port and measures, in one run:
//   1. a bare hiredis loop (blocking context): SET key token NX PX, EVALSHA release;
//   2. memgate sequential: Coordinator::acquire + release from one thread;
//   3. memgate with N concurrent lockers (default 64): async acquire -> release chains
//      sharing the one pipelined connection, each locker on its own key;
//   4. redis-benchmark -c N running the same SET NX PX and the same release script
//      (two runs; a lock is one of each, so locks/s = 1 / (1/a + 1/b));
//   5. fleet: time until 8 memgate_coord_tool processes are all ready with
//      fleet_once (one builds, seven load), against 8 processes that each build.
// Usage: memgate_bench_lock [--seconds S] [--lockers N] [--build-ms B]
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "memgate/coord/coordinator.h"
#include "memgate/coord/redis_backend.h"
#include "tests/support/redis_server.h"

using namespace memgate;
using namespace memgate::coord;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

namespace {

const char* kRelease = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

double seconds_since(Steady::time_point t) { return std::chrono::duration<double>(Steady::now() - t).count(); }

double bare_hiredis(uint16_t port, double seconds) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) return 0;
  auto* loaded = static_cast<redisReply*>(redisCommand(c, "SCRIPT LOAD %s", kRelease));
  std::string sha(loaded->str, loaded->len);
  freeReplyObject(loaded);
  uint64_t n = 0;
  auto start = Steady::now();
  while (seconds_since(start) < seconds) {
    auto* a = static_cast<redisReply*>(redisCommand(c, "SET bare:lock tok NX PX 10000"));
    freeReplyObject(a);
    auto* r = static_cast<redisReply*>(redisCommand(c, "EVALSHA %s 1 bare:lock tok", sha.c_str()));
    freeReplyObject(r);
    ++n;
  }
  double rate = static_cast<double>(n) / seconds_since(start);
  redisFree(c);
  return rate;
}

double memgate_sequential(Coordinator& c, double seconds) {
  uint64_t n = 0;
  auto start = Steady::now();
  while (seconds_since(start) < seconds) {
    auto lease = c.acquire("seq:lock", 10s, 0ms);
    if (!lease.ok()) {
      std::cerr << "acquire: " << lease.status().to_string() << "\n";
      return 0;
    }
    (void)c.release(*lease);
    ++n;
  }
  return static_cast<double>(n) / seconds_since(start);
}

double memgate_concurrent(RedisBackend& backend, int lockers, double seconds) {
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<bool> stop{false};
  std::atomic<int> running{lockers};
  std::promise<void> all_stopped;
  std::vector<std::string> keys;
  for (int i = 0; i < lockers; ++i) keys.push_back("conc:lock:" + std::to_string(i));
  // One locker: acquire, then release, then again, until stop.
  std::function<void(int)> step = [&](int i) {
    if (stop.load(std::memory_order_relaxed)) {
      if (running.fetch_sub(1) == 1) all_stopped.set_value();
      return;
    }
    backend.async_try_acquire(keys[i], 10s, [&, i](Result<TryAcquire> r) {
      if (!r.ok() || !r->lease) {
        failed.fetch_add(1);
        step(i);
        return;
      }
      backend.async_release(*r->lease, [&, i](Result<bool> rel) {
        if (rel.ok() && *rel) done.fetch_add(1, std::memory_order_relaxed);
        else failed.fetch_add(1);
        step(i);
      });
    });
  };
  auto start = Steady::now();
  for (int i = 0; i < lockers; ++i) step(i);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  uint64_t n = done.load();
  double elapsed = seconds_since(start);
  stop.store(true);
  all_stopped.get_future().wait();
  if (failed.load() > 0) std::cerr << "concurrent: " << failed.load() << " failed steps\n";
  return static_cast<double>(n) / elapsed;
}

// Runs a command line, returns its stdout.
std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

double redis_benchmark_rps(const std::string& cmd) {
  std::string out = capture(cmd + " 2>/dev/null");
  std::smatch m;
  std::regex rps("([0-9.]+) requests per second");
  if (std::regex_search(out, m, rps)) return std::stod(m[1]);
  std::cerr << "could not read redis-benchmark output: " << out << "\n";
  return 0;
}

double fleet_ready_seconds(const std::string& url, bool alone, int instances, int build_ms, const std::string& dir,
                           const std::string& name) {
  std::vector<std::unique_ptr<testing::Subprocess>> procs;
  auto start = Steady::now();
  for (int i = 0; i < instances; ++i) {
    std::vector<std::string> argv = {MEMGATE_COORD_TOOL, "fleet", "--url", url, "--name", name, "--lock-ttl-ms", "5000",
                                     "--build-ms", std::to_string(build_ms), "--size", "1048576"};
    if (alone) argv.push_back("--alone");
    auto p = testing::Subprocess::start(argv, {}, dir + "/fleet-" + name + "-" + std::to_string(i) + ".log");
    if (!p.ok()) return -1;
    procs.push_back(std::move(*p));
  }
  for (auto& p : procs) {
    auto code = p->wait_for(120s);
    if (!code || *code != 0) return -1;
  }
  return seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int lockers = 64;
  int build_ms = 1000;
  std::string only;  // run one measurement: bare, seq, conc (for profiling)
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--seconds") seconds = std::stod(argv[i + 1]);
    else if (f == "--lockers") lockers = std::stoi(argv[i + 1]);
    else if (f == "--build-ms") build_ms = std::stoi(argv[i + 1]);
    else if (f == "--only") only = argv[i + 1];
  }
  spdlog::set_level(spdlog::level::warn);
  auto server = testing::RedisServer::start();
  if (!server.ok()) {
    std::cerr << server.status().to_string() << "\n";
    return 1;
  }
  auto& s = **server;
  CoordinatorOptions o;
  o.redis_url = s.url();
  auto coord = Coordinator::create(o);
  if (!coord.ok() || (*coord)->backend() != "redis") {
    std::cerr << "no redis\n";
    return 1;
  }

  if (!only.empty()) {
    double r = only == "bare" ? bare_hiredis(s.port(), seconds)
               : only == "seq" ? memgate_sequential(**coord, seconds)
                               : memgate_concurrent(*(*coord)->redis(), lockers, seconds);
    std::printf("%s: %.0f locks/s\n", only.c_str(), r);
    return 0;
  }
  std::printf("redis-server 127.0.0.1:%u, %.1fs per measurement, %d concurrent lockers\n", s.port(), seconds, lockers);
  double bare = bare_hiredis(s.port(), seconds);
  double seq = memgate_sequential(**coord, seconds);
  double conc = memgate_concurrent(*(*coord)->redis(), lockers, seconds);

  std::string port = std::to_string(s.port());
  std::string sha = Script(kRelease).sha1();
  capture("redis-cli -p " + port + " SCRIPT LOAD \"" + std::string(kRelease) + "\" >/dev/null");
  std::string common = "redis-benchmark -p " + port + " -c " + std::to_string(lockers) + " -n " +
                       std::to_string(static_cast<int>(200000 * seconds / 3)) + " -r 100000 -q ";
  double rb_set = redis_benchmark_rps(common + "SET rb:lock:__rand_int__ tok NX PX 10000");
  double rb_rel = redis_benchmark_rps(common + "EVALSHA " + sha + " 1 rb:lock:__rand_int__ tok");
  double rb_lock = (rb_set > 0 && rb_rel > 0) ? 1.0 / (1.0 / rb_set + 1.0 / rb_rel) : 0;

  std::printf("\n%-58s %12s\n", "acquire+release round trips", "locks/s");
  std::printf("%-58s %12.0f\n", "bare hiredis loop, sequential (SET NX PX + EVALSHA)", bare);
  std::printf("%-58s %12.0f   %.2fx of bare hiredis\n", "memgate Coordinator, sequential", seq, seq / bare);
  std::printf("%-58s %12.0f\n", ("redis-benchmark -c " + std::to_string(lockers) + ": SET NX PX").c_str(), rb_set);
  std::printf("%-58s %12.0f\n", ("redis-benchmark -c " + std::to_string(lockers) + ": EVALSHA release").c_str(), rb_rel);
  std::printf("%-58s %12.0f\n", "redis-benchmark, one of each (1/(1/a+1/b))", rb_lock);
  std::printf("%-58s %12.0f   %.2fx of redis-benchmark\n",
              ("memgate, " + std::to_string(lockers) + " concurrent lockers, one connection").c_str(), conc,
              rb_lock > 0 ? conc / rb_lock : 0);

  std::string dir = testing::temp_dir("memgate-bench-lock");
  double shared = fleet_ready_seconds(s.url(), false, 8, build_ms, dir, "bench:fleet");
  double alone = fleet_ready_seconds(s.url(), true, 8, build_ms, dir, "bench:alone");
  std::printf("\n%-58s %12s\n", ("8 instances all ready (build " + std::to_string(build_ms) + "ms)").c_str(), "seconds");
  std::printf("%-58s %12.3f\n", "fleet_once (one builds, seven load)", shared);
  std::printf("%-58s %12.3f\n", "each builds alone", alone);
  std::printf("(on 2 cores, 8 'alone' builds are sleeps, not CPU work: the CPU a real build burns\n"
              " eight times over is the larger saving; see docs/design/coord.md)\n");
  testing::remove_tree(dir);
  return 0;
}
