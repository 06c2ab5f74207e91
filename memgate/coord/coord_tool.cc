// memgate_coord_tool: a small client of Coordinator that tests and benchmarks start
// as separate processes.
//
//   memgate_coord_tool lock  --key K --ttl-ms T --iterations N --hold-us H --out FILE
//       N times: with_lock(K), append "fence start_ns end_ns pid" to FILE (one write).
//   memgate_coord_tool hold  --key K --ttl-ms T --hold-ms H
//       acquire K, print "acquired fence=F", sleep H ms (a test may SIGSTOP/SIGKILL it
//       meanwhile), then print "publish=<code>" for a fenced publish of K and
//       "release=<true|false>".
//   memgate_coord_tool fleet --name N --lock-ttl-ms T --done-ttl-ms D --build-ms B --size S
//       fleet_once(N) with a build that sleeps B ms and makes S bytes; prints
//       "outcome=<outcome>" and "ready_ms=<ms from start>". --alone builds without
//       coordination (the baseline for the fleet benchmark); --cpu makes the build
//       spend B ms of CPU instead of sleeping.
//   memgate_coord_tool follow --key K --ttl-ms T --interval-ms P --seconds S
//       for S seconds: acquire K and release it, then wait P ms (a failed acquire
//       waits too). Prints "first <ns>" at the first lease, and "resumed <last_ns>
//       <ns>" when a lease comes more than 100 ms after the previous one (ns:
//       CLOCK_MONOTONIC at the lease, comparable across processes): how long this
//       instance could not coordinate, e.g. across a failover.
// Common: --url U (empty: local), --local-dir D, --tls-ca F, --instance I.
// Exit code 0 on success, 1 on a failed operation, 2 on bad arguments.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <thread>

#include "memgate/coord/coordinator.h"

using namespace memgate;
using namespace memgate::coord;
using std::chrono::milliseconds;

namespace {

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string artifact_bytes(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return s;
}

// Spends `d` of this thread's CPU time (a stand-in for a heavy build); false when cancelled.
bool burn_cpu(milliseconds d, const CancelSignal* cancel) {
  auto cpu_ns = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  };
  int64_t end = cpu_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  volatile uint64_t x = 1;
  while (cpu_ns() < end) {
    for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
    if (cancel && cancel->cancelled()) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  auto t0 = std::chrono::steady_clock::now();
  if (argc < 2) {
    std::cerr << "usage: memgate_coord_tool lock|hold|fleet|follow [--flag value]...\n";
    return 2;
  }
  std::string cmd = argv[1];
  std::map<std::string, std::string> flags;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      std::cerr << "unexpected argument " << a << "\n";
      return 2;
    }
    if (a == "--alone" || a == "--cpu") {
      flags[a.substr(2)] = "1";
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << a << " needs a value\n";
      return 2;
    }
    flags[a.substr(2)] = argv[++i];
  }
  auto flag = [&](const std::string& k, const std::string& def) { return flags.count(k) ? flags[k] : def; };
  auto num = [&](const std::string& k, int64_t def) { return flags.count(k) ? std::stoll(flags[k]) : def; };

  bool cpu = flags.count("cpu") > 0;
  if (cmd == "fleet" && flags.count("alone")) {
    if (cpu) burn_cpu(milliseconds(num("build-ms", 200)), nullptr);
    else std::this_thread::sleep_for(milliseconds(num("build-ms", 200)));
    std::string bytes = artifact_bytes(static_cast<size_t>(num("size", 1024)));
    auto ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "outcome=alone\nready_ms=" << ms << std::endl;
    return bytes.empty() ? 1 : 0;
  }

  CoordinatorOptions opts;
  opts.redis_url = flag("url", "");
  opts.local_dir = flag("local-dir", "/tmp/memgate-coord");
  opts.tls_ca = flag("tls-ca", "");
  opts.instance_id = flag("instance", "tool-" + std::to_string(::getpid()));
  opts.connect_timeout = milliseconds(num("connect-timeout-ms", 2000));
  opts.chunk_size = static_cast<size_t>(num("chunk-size", 512 * 1024));
  auto created = Coordinator::create(opts);
  if (!created.ok()) {
    std::cerr << created.status().to_string() << "\n";
    return 2;
  }
  Coordinator& coord = **created;
  std::string key = flag("key", "tool:lock");
  milliseconds ttl(num("ttl-ms", 1000));

  if (cmd == "lock") {
    int fd = ::open(flag("out", "/dev/null").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return 2;
    int64_t n = num("iterations", 10);
    int64_t hold_us = num("hold-us", 100);
    for (int64_t i = 0; i < n; ++i) {
      Status st = coord.with_lock(
          key, ttl,
          [&](const Lease& lease, const CancelSignal&) -> Status {
            int64_t start = mono_ns();
            if (hold_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(hold_us));
            int64_t end = mono_ns();
            std::string line = std::to_string(lease.fence) + " " + std::to_string(start) + " " +
                               std::to_string(end) + " " + std::to_string(::getpid()) + "\n";
            if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
              return Internal("write failed");
            }
            return Status::Ok();
          },
          milliseconds(num("wait-ms", 30000)));
      if (!st.ok()) {
        std::cerr << "with_lock: " << st.to_string() << "\n";
        return 1;
      }
    }
    ::close(fd);
    std::cout << "done " << n << " backend=" << coord.backend() << std::endl;
    return 0;
  }

  if (cmd == "hold") {
    auto lease = coord.acquire(key, ttl, milliseconds(num("wait-ms", 10000)));
    if (!lease.ok()) {
      std::cerr << "acquire: " << lease.status().to_string() << "\n";
      return 1;
    }
    std::cout << "acquired fence=" << lease->fence << std::endl;
    std::this_thread::sleep_for(milliseconds(num("hold-ms", 0)));
    Status pub = coord.publish_artifact(*lease, key, "stale bytes", "1", milliseconds(60000));
    std::cout << "publish=" << code_name(pub.code()) << std::endl;
    auto rel = coord.release(*lease);
    std::cout << "release=" << (rel.ok() ? (*rel ? "true" : "false") : rel.status().to_string()) << std::endl;
    return 0;
  }

  if (cmd == "follow") {
    milliseconds interval(num("interval-ms", 10));
    auto until = std::chrono::steady_clock::now() + milliseconds(num("seconds", 30) * 1000);
    int64_t last = 0;
    while (std::chrono::steady_clock::now() < until) {
      auto lease = coord.acquire(key, ttl, milliseconds(0));
      if (lease.ok()) {
        int64_t now = mono_ns();
        if (last == 0) std::cout << "first " << now << std::endl;
        else if (now - last > 100'000'000) std::cout << "resumed " << last << " " << now << std::endl;
        last = now;
        (void)coord.release(*lease);
      }
      std::this_thread::sleep_for(interval);
    }
    return 0;
  }

  if (cmd == "fleet") {
    std::string name = flag("name", "tool:fleet");
    size_t size = static_cast<size_t>(num("size", 1024));
    milliseconds build_ms(num("build-ms", 200));
    FleetOnceOptions fo;
    fo.artifact_version = flag("version", "1");
    fo.wait_bound = milliseconds(num("wait-ms", 60000));
    auto outcome = coord.fleet_once(
        name, milliseconds(num("lock-ttl-ms", 2000)), milliseconds(num("done-ttl-ms", 60000)),
        [&](const CancelSignal& cancel) -> Result<std::string> {
          if (cpu) {
            if (!burn_cpu(build_ms, &cancel)) return Aborted(cancel.reason());
          } else if (cancel.wait_for(build_ms)) {
            return Aborted(cancel.reason());
          }
          return artifact_bytes(size);
        },
        [&](std::string_view bytes) -> Status {
          if (bytes != artifact_bytes(size)) return InvalidArgument("artifact content differs");
          return Status::Ok();
        },
        fo);
    if (!outcome.ok()) {
      std::cerr << "fleet_once: " << outcome.status().to_string() << "\n";
      std::cout << "outcome=error" << std::endl;
      return 1;
    }
    auto ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "outcome=" << fleet_outcome_name(*outcome) << "\nready_ms=" << ms << std::endl;
    return 0;
  }
  std::cerr << "unknown command " << cmd << "\n";
  return 2;
}
