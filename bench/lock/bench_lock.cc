// Lock benchmark: acquire+release round trips per second, and fleet readiness.
//
// Starts a redis-server on a free loopback port and measures, in one run:
//   1. a bare hiredis loop (blocking context): SET key token NX PX, EVALSHA release,
//      and the same loop with memgate's own fenced acquire script instead of SET;
//   2. memgate sequential: Coordinator::acquire + release from one thread
//      (1 and 2 run interleaved in 0.2 s slices so they share the machine's load);
//   3. memgate with N concurrent lockers (default 64): async acquire -> release chains
//      sharing the one pipelined connection, each locker on its own key;
//   4. redis-benchmark -c N running the same SET NX PX and the same release script
//      (two runs; a lock is one of each, so locks/s = 1 / (1/a + 1/b));
//   5. fleet: time until 8 memgate_coord_tool processes are all ready with
//      fleet_once (one builds, seven load), against 8 processes that each build.
// With --topology cluster, instead: a three-master Redis Cluster (tests/support/
// redis_cluster.h) against one redis-server started in the same run, each figure
// as a ratio to the single server's: sequential acquire+release (interleaved
// 0.2 s slices), N concurrent async lockers (alternating rounds, medians), and
// the 8-instance fleet_once readiness.
// With --topology sentinel: the same three ratios for a master + replica behind
// three sentinels (tests/support/redis_sentinel.h), then --kills failovers (5),
// each on a fresh group with 4 `memgate_coord_tool follow` processes: the time
// from SIGKILL of the master to the sentinels agreeing on the replica, and to
// every instance taking a lease again; medians, with the sentinels' settings.
// Usage: memgate_bench_lock [--seconds S] [--lockers N] [--build-ms B]
//                           [--topology single|sentinel|cluster] [--kills K]
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "memgate/coord/coordinator.h"
#include "memgate/coord/redis_backend.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/redis_sentinel.h"
#include "tests/support/redis_server.h"

using namespace memgate;
using namespace memgate::coord;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

namespace {

// The same scripts RedisBackend sends (redis_backend.cc).
const char* kAcquire =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "local t = redis.call('TIME') local now = t[1] .. string.format('%06d', tonumber(t[2])) "
    "local f = redis.call('INCR', KEYS[2]) "
    "if f < tonumber(now) then redis.call('SET', KEYS[2], now) f = tonumber(now) end return {1, f} end "
    "return {0, redis.call('PTTL', KEYS[1])}";
const char* kRelease = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

double seconds_since(Steady::time_point t) { return std::chrono::duration<double>(Steady::now() - t).count(); }

std::string load_script(redisContext* c, const char* source) {
  auto* loaded = static_cast<redisReply*>(redisCommand(c, "SCRIPT LOAD %s", source));
  std::string sha(loaded->str, loaded->len);
  freeReplyObject(loaded);
  return sha;
}

// A rate measured in slices, so that runs compared with each other share the
// machine's conditions (this machine is shared: load comes and goes).
struct Rate {
  uint64_t n = 0;
  double seconds = 0;
  double per_second() const { return seconds > 0 ? static_cast<double>(n) / seconds : 0; }
};

// fenced = false: SET NX PX + EVALSHA release; true: EVALSHA of memgate's fenced
// acquire script + EVALSHA release (the exact commands memgate sends).
void bare_hiredis_slice(redisContext* c, const std::string& acquire_sha, const std::string& release_sha, bool fenced,
                        double seconds, Rate& rate) {
  auto start = Steady::now();
  uint64_t n = 0;
  while (seconds_since(start) < seconds) {
    auto* a = static_cast<redisReply*>(
        fenced ? redisCommand(c, "EVALSHA %s 2 bare:lock bare:lock:fence tok 10000", acquire_sha.c_str())
               : redisCommand(c, "SET bare:lock tok NX PX 10000"));
    freeReplyObject(a);
    auto* r = static_cast<redisReply*>(redisCommand(c, "EVALSHA %s 1 bare:lock tok", release_sha.c_str()));
    freeReplyObject(r);
    ++n;
  }
  rate.n += n;
  rate.seconds += seconds_since(start);
}

void memgate_sequential_slice(Coordinator& c, double seconds, Rate& rate) {
  auto start = Steady::now();
  uint64_t n = 0;
  while (seconds_since(start) < seconds) {
    auto lease = c.acquire("seq:lock", 10s, 0ms);
    if (!lease.ok()) {
      std::cerr << "acquire: " << lease.status().to_string() << "\n";
      return;
    }
    (void)c.release(*lease);
    ++n;
  }
  rate.n += n;
  rate.seconds += seconds_since(start);
}

// Interleaves 0.2 s slices of the three sequential loops for `seconds` each.
void sequential(uint16_t port, Coordinator& coord, double seconds, Rate& bare, Rate& bare_fenced, Rate& ours) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (!c || c->err) return;
  std::string release_sha = load_script(c, kRelease);
  std::string acquire_sha = load_script(c, kAcquire);
  for (double done = 0; done < seconds; done += 0.2) {
    bare_hiredis_slice(c, acquire_sha, release_sha, false, 0.2, bare);
    bare_hiredis_slice(c, acquire_sha, release_sha, true, 0.2, bare_fenced);
    memgate_sequential_slice(coord, 0.2, ours);
  }
  redisFree(c);
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
                           const std::string& name, bool cpu) {
  std::vector<std::unique_ptr<testing::Subprocess>> procs;
  auto start = Steady::now();
  for (int i = 0; i < instances; ++i) {
    std::vector<std::string> argv = {MEMGATE_COORD_TOOL, "fleet", "--url", url, "--name", name, "--lock-ttl-ms", "5000",
                                     "--build-ms", std::to_string(build_ms), "--size", "1048576"};
    if (alone) argv.push_back("--alone");
    if (cpu) argv.push_back("--cpu");
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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// --topology cluster: the cluster's figures, each against one server measured alongside.
int cluster_figures(double seconds, int lockers, int build_ms) {
  auto single = testing::RedisServer::start();
  auto cluster = testing::RedisCluster::start();
  if (!single.ok() || !cluster.ok()) {
    std::cerr << "cannot start redis: " << (single.ok() ? cluster.status() : single.status()).to_string() << "\n";
    return 1;
  }
  CoordinatorOptions so, co;
  so.redis_url = (*single)->url();
  co.redis_url = (*cluster)->url();
  auto one = Coordinator::create(so);
  auto three = Coordinator::create(co);
  if (!one.ok() || !three.ok() || (*one)->backend() != "redis" || (*three)->backend() != "redis") {
    std::cerr << "no redis\n";
    return 1;
  }
  std::printf("redis-server 127.0.0.1:%u and a 3-master cluster (%s), %.1fs per measurement, %d lockers\n",
              (*single)->port(), (*cluster)->url().c_str(), seconds, lockers);
  Rate seq_one, seq_three;
  for (double done = 0; done < seconds; done += 0.2) {
    memgate_sequential_slice(**one, 0.2, seq_one);
    memgate_sequential_slice(**three, 0.2, seq_three);
  }
  std::vector<double> conc_one, conc_three;
  for (int round = 0; round < 3; ++round) {
    conc_one.push_back(memgate_concurrent(*(*one)->redis(), lockers, seconds / 3));
    conc_three.push_back(memgate_concurrent(*(*three)->redis(), lockers, seconds / 3));
  }
  std::string dir = testing::temp_dir("memgate-bench-lock");
  std::vector<double> fleet_one, fleet_three;
  for (int round = 0; round < 3; ++round) {
    std::string r = std::to_string(round);
    fleet_one.push_back(fleet_ready_seconds((*single)->url(), false, 8, build_ms, dir, "bench:one:" + r, true));
    fleet_three.push_back(fleet_ready_seconds((*cluster)->url(), false, 8, build_ms, dir, "bench:three:" + r, true));
  }
  testing::remove_tree(dir);
  double s1 = seq_one.per_second(), s3 = seq_three.per_second();
  double c1 = median(conc_one), c3 = median(conc_three), f1 = median(fleet_one), f3 = median(fleet_three);
  std::printf("\n%-58s %12s %12s %8s\n", "", "one server", "cluster", "ratio");
  std::printf("%-58s %12.0f %12.0f %7.2fx\n", "memgate Coordinator, sequential acquire+release (locks/s)", s1, s3,
              s1 > 0 ? s3 / s1 : 0);
  std::printf("%-58s %12.0f %12.0f %7.2fx\n",
              ("memgate, " + std::to_string(lockers) + " concurrent lockers, median of 3 (locks/s)").c_str(), c1, c3,
              c1 > 0 ? c3 / c1 : 0);
  std::printf("%-58s %12.3f %12.3f %7.2fx\n",
              ("8 instances all ready, fleet_once, " + std::to_string(build_ms) + "ms CPU build (s)").c_str(), f1, f3,
              f1 > 0 ? f3 / f1 : 0);
  return 0;
}

// One failover: a fresh Sentinel group, `instances` memgate_coord_tool follow
// processes on it, the master SIGKILLed; the time from the kill until the
// sentinels agree on the replica, and until every instance took a lease again.
struct FailoverTimes {
  double promoted_s = -1, all_coordinating_s = -1;
};

FailoverTimes one_failover(const testing::SentinelOptions& so, int instances, const std::string& dir, int run) {
  FailoverTimes out;
  auto g = testing::SentinelGroup::start(so);
  if (!g.ok()) {
    std::cerr << "sentinel group: " << g.status().to_string() << "\n";
    return out;
  }
  auto& group = **g;
  std::vector<std::unique_ptr<testing::Subprocess>> procs;
  std::vector<std::string> logs;
  for (int i = 0; i < instances; ++i) {
    logs.push_back(dir + "/follow-" + std::to_string(run) + "-" + std::to_string(i) + ".log");
    auto p = testing::Subprocess::start({MEMGATE_COORD_TOOL, "follow", "--url", group.url(), "--key",
                                         "bench:follow:" + std::to_string(i), "--ttl-ms", "2000", "--interval-ms",
                                         "10", "--seconds", "60", "--connect-timeout-ms", "1000"},
                                        {}, logs.back());
    if (!p.ok()) return out;
    procs.push_back(std::move(*p));
  }
  bool started = testing::wait_until(
      [&] {
        for (auto& l : logs)
          if (testing::read_file(l).find("first ") == std::string::npos) return false;
        return true;
      },
      10s);
  if (!started) {
    std::cerr << "the follow processes did not start\n";
    return out;
  }
  uint16_t replica = group.first_replica().port();
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t killed_ns = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  auto killed = Steady::now();
  group.first_master().kill();
  std::thread watcher([&] {
    while (seconds_since(killed) < 30) {
      if (group.agreed_master_port() == replica) {
        out.promoted_s = seconds_since(killed);
        return;
      }
    }
  });
  // Each instance's first lease after the kill ("resumed <before> <after>").
  std::vector<int64_t> back(logs.size(), 0);
  testing::wait_until(
      [&] {
        bool all = true;
        for (size_t i = 0; i < logs.size(); ++i) {
          if (back[i]) continue;
          std::istringstream in(testing::read_file(logs[i]));
          for (std::string word; in >> word;) {
            if (word != "resumed") continue;
            int64_t before = 0, after = 0;
            in >> before >> after;
            if (after > killed_ns) {
              back[i] = after;
              break;
            }
          }
          if (!back[i]) all = false;
        }
        return all;
      },
      30s);
  watcher.join();
  int64_t last = 0;
  for (int64_t b : back) {
    if (b == 0) return out;
    last = std::max(last, b);
  }
  out.all_coordinating_s = static_cast<double>(last - killed_ns) / 1e9;
  return out;
}

// --topology sentinel: the figures through a Sentinel-managed master, each
// against one server measured alongside, and the failover time.
int sentinel_figures(double seconds, int lockers, int build_ms, int kills) {
  testing::SentinelOptions so;  // down-after 400 ms, failover-timeout 2 s
  auto single = testing::RedisServer::start();
  auto group = testing::SentinelGroup::start(so);
  if (!single.ok() || !group.ok()) {
    std::cerr << "cannot start redis: " << (single.ok() ? group.status() : single.status()).to_string() << "\n";
    return 1;
  }
  CoordinatorOptions o1, o2;
  o1.redis_url = (*single)->url();
  o2.redis_url = (*group)->url();
  auto one = Coordinator::create(o1);
  auto sentinel = Coordinator::create(o2);
  if (!one.ok() || !sentinel.ok() || (*one)->backend() != "redis" || (*sentinel)->backend() != "redis") {
    std::cerr << "no redis\n";
    return 1;
  }
  std::printf("redis-server 127.0.0.1:%u and a master + replica behind 3 sentinels (%s), %.1fs per measurement, "
              "%d lockers\n",
              (*single)->port(), (*group)->url().c_str(), seconds, lockers);
  Rate seq_one, seq_sentinel;
  for (double done = 0; done < seconds; done += 0.2) {
    memgate_sequential_slice(**one, 0.2, seq_one);
    memgate_sequential_slice(**sentinel, 0.2, seq_sentinel);
  }
  std::vector<double> conc_one, conc_sentinel;
  for (int round = 0; round < 3; ++round) {
    conc_one.push_back(memgate_concurrent(*(*one)->redis(), lockers, seconds / 3));
    conc_sentinel.push_back(memgate_concurrent(*(*sentinel)->redis(), lockers, seconds / 3));
  }
  std::string dir = testing::temp_dir("memgate-bench-lock");
  std::vector<double> fleet_one, fleet_sentinel;
  for (int round = 0; round < 3; ++round) {
    std::string r = std::to_string(round);
    fleet_one.push_back(fleet_ready_seconds((*single)->url(), false, 8, build_ms, dir, "bench:one:" + r, true));
    fleet_sentinel.push_back(
        fleet_ready_seconds((*group)->url(), false, 8, build_ms, dir, "bench:sentinel:" + r, true));
  }
  sentinel->reset();
  one->reset();
  group->reset();
  single->reset();
  std::vector<double> promoted, coordinating;
  for (int k = 0; k < kills; ++k) {
    FailoverTimes t = one_failover(so, 4, dir, k);
    if (t.promoted_s < 0 || t.all_coordinating_s < 0) {
      std::cerr << "failover " << k << " did not complete\n";
      continue;
    }
    promoted.push_back(t.promoted_s);
    coordinating.push_back(t.all_coordinating_s);
  }
  testing::remove_tree(dir);
  double s1 = seq_one.per_second(), s2 = seq_sentinel.per_second();
  double c1 = median(conc_one), c2 = median(conc_sentinel), f1 = median(fleet_one), f2 = median(fleet_sentinel);
  std::printf("\n%-58s %12s %12s %8s\n", "", "one server", "sentinel", "ratio");
  std::printf("%-58s %12.0f %12.0f %7.2fx\n", "memgate Coordinator, sequential acquire+release (locks/s)", s1, s2,
              s1 > 0 ? s2 / s1 : 0);
  std::printf("%-58s %12.0f %12.0f %7.2fx\n",
              ("memgate, " + std::to_string(lockers) + " concurrent lockers, median of 3 (locks/s)").c_str(), c1, c2,
              c1 > 0 ? c2 / c1 : 0);
  std::printf("%-58s %12.3f %12.3f %7.2fx\n",
              ("8 instances all ready, fleet_once, " + std::to_string(build_ms) + "ms CPU build (s)").c_str(), f1, f2,
              f1 > 0 ? f2 / f1 : 0);
  auto list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : ", ") + std::to_string(x).substr(0, 5);
    return s;
  };
  std::printf("\nfailover (master SIGKILLed; down-after-milliseconds %d, failover-timeout %d ms; 4 instances "
              "taking a lease every 10 ms), %zu of %d kills:\n",
              so.down_after_ms, so.failover_timeout_ms, coordinating.size(), kills);
  std::printf("%-58s %12.3f   (%s)\n", "kill -> the sentinels agree on the replica, median (s)", median(promoted),
              list(promoted).c_str());
  std::printf("%-58s %12.3f   (%s)\n", "kill -> every instance coordinating again, median (s)", median(coordinating),
              list(coordinating).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int lockers = 64;
  int build_ms = 1000;
  bool seq_only = false;  // --seq-only 1: just the interleaved sequential loops (for profiling)
  std::string topology = "single";
  int kills = 5;  // --topology sentinel: failovers measured
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--seconds") seconds = std::stod(argv[i + 1]);
    else if (f == "--lockers") lockers = std::stoi(argv[i + 1]);
    else if (f == "--build-ms") build_ms = std::stoi(argv[i + 1]);
    else if (f == "--seq-only") seq_only = std::string(argv[i + 1]) == "1";
    else if (f == "--topology") topology = argv[i + 1];
    else if (f == "--kills") kills = std::stoi(argv[i + 1]);
  }
  spdlog::set_level(spdlog::level::warn);
  if (topology == "cluster") return cluster_figures(seconds, lockers, build_ms);
  if (topology == "sentinel") return sentinel_figures(seconds, lockers, build_ms, kills);
  if (topology != "single") {
    std::cerr << "--topology: single, sentinel or cluster\n";
    return 2;
  }
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

  std::printf("redis-server 127.0.0.1:%u, %.1fs per measurement, %d concurrent lockers\n", s.port(), seconds, lockers);
  Rate bare_rate, fenced_rate, seq_rate;
  sequential(s.port(), **coord, seconds, bare_rate, fenced_rate, seq_rate);
  double bare = bare_rate.per_second(), bare_fenced = fenced_rate.per_second(), seq = seq_rate.per_second();
  if (seq_only) {
    std::printf("bare %.0f, bare scripts %.0f, memgate %.0f locks/s: %.2fx, %.2fx\n", bare, bare_fenced, seq,
                seq / bare, seq / bare_fenced);
    return 0;
  }
  double conc = memgate_concurrent(*(*coord)->redis(), lockers, seconds);

  std::string port = std::to_string(s.port());
  std::string sha = Script(kRelease).sha1();
  capture("redis-cli -p " + port + " SCRIPT LOAD \"" + std::string(kRelease) + "\" >/dev/null");
  capture("redis-cli -p " + port + " SCRIPT LOAD \"" + std::string(kAcquire) + "\" >/dev/null");
  std::string acquire_sha = Script(kAcquire).sha1();
  std::string common = "redis-benchmark -p " + port + " -c " + std::to_string(lockers) + " -n " +
                       std::to_string(static_cast<int>(200000 * seconds / 3)) + " -r 100000 -q ";
  double rb_set = redis_benchmark_rps(common + "SET rb:lock:__rand_int__ tok NX PX 10000");
  double rb_rel = redis_benchmark_rps(common + "EVALSHA " + sha + " 1 rb:lock:__rand_int__ tok");
  double rb_lock = (rb_set > 0 && rb_rel > 0) ? 1.0 / (1.0 / rb_set + 1.0 / rb_rel) : 0;
  // -r replaces __rand_int__ in every argument: the lock and its fence key share it.
  double rb_acq = redis_benchmark_rps(common + "EVALSHA " + acquire_sha +
                                      " 2 rbf:lock:__rand_int__ rbf:lock:__rand_int__:fence tok 10000");
  double rb_fenced = (rb_acq > 0 && rb_rel > 0) ? 1.0 / (1.0 / rb_acq + 1.0 / rb_rel) : 0;
  // The server's own ceiling: the same scripts with 64 in flight, pipelined (-c 4 -P 16).
  std::string piped = "redis-benchmark -p " + port + " -c 4 -P 16 -n " +
                      std::to_string(static_cast<int>(400000 * seconds / 3)) + " -r 100000 -q ";
  double rbp_acq = redis_benchmark_rps(piped + "EVALSHA " + acquire_sha +
                                       " 2 rbp:lock:__rand_int__ rbp:lock:__rand_int__:fence tok 10000");
  double rbp_rel = redis_benchmark_rps(piped + "EVALSHA " + sha + " 1 rbp:lock:__rand_int__ tok");
  double rbp_fenced = (rbp_acq > 0 && rbp_rel > 0) ? 1.0 / (1.0 / rbp_acq + 1.0 / rbp_rel) : 0;

  std::printf("\n%-58s %12s\n", "acquire+release round trips", "locks/s");
  std::printf("%-58s %12.0f\n", "bare hiredis loop, sequential (SET NX PX + EVALSHA)", bare);
  std::printf("%-58s %12.0f\n", "bare hiredis loop, sequential (memgate's two scripts)", bare_fenced);
  std::printf("%-58s %12.0f   %.2fx of bare SET NX, %.2fx of bare scripts\n", "memgate Coordinator, sequential", seq,
              seq / bare, seq / bare_fenced);
  std::printf("%-58s %12.0f\n", ("redis-benchmark -c " + std::to_string(lockers) + ": SET NX PX").c_str(), rb_set);
  std::printf("%-58s %12.0f\n", ("redis-benchmark -c " + std::to_string(lockers) + ": EVALSHA release").c_str(), rb_rel);
  std::printf("%-58s %12.0f\n", "redis-benchmark, one of each (1/(1/a+1/b))", rb_lock);
  std::printf("%-58s %12.0f\n", ("redis-benchmark -c " + std::to_string(lockers) + ": EVALSHA fenced acquire").c_str(), rb_acq);
  std::printf("%-58s %12.0f\n", "redis-benchmark, fenced acquire + release", rb_fenced);
  std::printf("%-58s %12.0f\n", "redis-benchmark -c 4 -P 16, fenced acquire + release", rbp_fenced);
  std::printf("%-58s %12.0f   %.2fx of redis-benchmark SET NX + release, %.2fx of its fenced pair\n",
              ("memgate, " + std::to_string(lockers) + " concurrent lockers, one connection").c_str(), conc,
              rb_lock > 0 ? conc / rb_lock : 0, rb_fenced > 0 ? conc / rb_fenced : 0);
  std::printf("%-58s %12s   %.2fx of the pipelined fenced pair\n", "", "", rbp_fenced > 0 ? conc / rbp_fenced : 0);

  std::string dir = testing::temp_dir("memgate-bench-lock");
  double shared = fleet_ready_seconds(s.url(), false, 8, build_ms, dir, "bench:fleet", true);
  double alone = fleet_ready_seconds(s.url(), true, 8, build_ms, dir, "bench:alone", true);
  std::printf("\n%-58s %12s\n", ("8 instances all ready (build = " + std::to_string(build_ms) + "ms of CPU)").c_str(),
              "seconds");
  std::printf("%-58s %12.3f\n", "fleet_once (one builds, seven load a 1 MiB artifact)", shared);
  std::printf("%-58s %12.3f   %.2fx\n", "each builds alone", alone, shared > 0 ? alone / shared : 0);
  testing::remove_tree(dir);
  return 0;
}
