// memgate_http_startup_probe: how long from exec to the first 200, and how much
// memory right after.
//
// Usage: memgate_http_startup_probe PORT PATH -- COMMAND [ARGS...]
// Spawns COMMAND (with its environment), polls 127.0.0.1:PORT every 100 us with
// "GET PATH" until a 200 arrives (at most 5 s), then prints
//   first_200_us=<n> rss_kb=<VmRSS of the child>
// and stops the child with SIGTERM (SIGKILL after 2 s). Exit status 1 when no
// 200 came in time. With MEMGATE_PROBE_SMAPS=FILE, the child's /proc/PID/smaps
// at that moment is copied to FILE too (where the RSS is: bench/http/footprint).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

extern char** environ;

namespace {

bool got_200(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      pollfd p{fd, POLLIN, 0};
      char buf[64] = {};
      if (::poll(&p, 1, 1000) == 1 && ::recv(fd, buf, sizeof buf - 1, 0) >= 12) {
        ok = std::strncmp(buf + 9, "200", 3) == 0;
      }
    }
  }
  ::close(fd);
  return ok;
}

long rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || std::string(argv[3]) != "--") {
    std::fprintf(stderr, "usage: %s PORT PATH -- COMMAND [ARGS...]\n", argv[0]);
    return 2;
  }
  auto port = static_cast<uint16_t>(std::atoi(argv[1]));
  std::string path = argv[2];
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[4], nullptr, nullptr, argv + 4, environ) != 0) {
    std::perror("posix_spawn");
    return 2;
  }
  bool ok = false;
  std::chrono::microseconds elapsed{};
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    if (got_200(port, path)) {
      elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
      ok = true;
      break;
    }
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) break;  // the child died
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  long rss = ok ? rss_kb(pid) : -1;
  if (const char* out = std::getenv("MEMGATE_PROBE_SMAPS"); ok && out && *out) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
    std::ofstream(out) << in.rdbuf();
  }
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid || r < 0) {
      pid = 0;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (pid != 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  if (!ok) {
    std::fprintf(stderr, "no 200 from 127.0.0.1:%u%s within 5 s\n", port, path.c_str());
    return 1;
  }
  std::printf("first_200_us=%lld rss_kb=%ld\n", static_cast<long long>(elapsed.count()), rss);
  return 0;
}
