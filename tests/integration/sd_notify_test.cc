// systemd's Type=notify protocol, without systemd: the test plays the service
// manager. It binds a unix datagram socket, hands its name to the real binary
// as NOTIFY_SOCKET (with WATCHDOG_USEC), and reads what memgate sends: READY=1
// once the core routes answer, a STATUS= line per stage and step of the
// start-up plan (EXTEND_TIMEOUT_USEC= with the long ones), WATCHDOG=1 from the
// IO loop at half of WATCHDOG_USEC, and STOPPING=1 on SIGTERM.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tests/integration/http_client.h"
#include "tests/integration/server_process.h"

namespace memgate::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The service manager's end: a bound AF_UNIX datagram socket (a path in a
// temporary directory, or an abstract name when `abstract`).
class NotifySocket {
 public:
  explicit NotifySocket(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
      name_ = "@memgate-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(Clock::now().time_since_epoch().count());
      std::memcpy(addr.sun_path, name_.data(), name_.size());
      addr.sun_path[0] = '\0';
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      dir_ = temp_dir("memgate-notify");
      name_ = dir_ + "/notify.sock";
      std::memcpy(addr.sun_path, name_.data(), name_.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
    }
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    if (!dir_.empty()) remove_tree(dir_);
  }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

  // Reads datagrams into messages() until `done(messages())` or `timeout`;
  // false on timeout.
  bool read_until(const std::function<bool(const std::vector<std::string>&)>& done, std::chrono::milliseconds timeout) {
    auto until = Clock::now() + timeout;
    while (!done(messages_)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) messages_.emplace_back(buf, static_cast<size_t>(n));
    }
    return true;
  }
  const std::vector<std::string>& messages() const { return messages_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::string name_;
  std::string dir_;
  std::vector<std::string> messages_;
};

bool has(const std::string& message, const std::string& part) { return message.find(part) != std::string::npos; }

// The index of the first message at or after `from` containing `part`; -1 when none.
int find_from(const std::vector<std::string>& m, size_t from, const std::string& part) {
  for (size_t i = from; i < m.size(); ++i)
    if (has(m[i], part)) return static_cast<int>(i);
  return -1;
}

size_t count(const std::vector<std::string>& m, const std::string& part, size_t from = 0) {
  return static_cast<size_t>(std::count_if(m.begin() + static_cast<std::ptrdiff_t>(std::min(from, m.size())), m.end(),
                                           [&](const std::string& s) { return has(s, part); }));
}

std::string joined(const std::vector<std::string>& m) {
  std::string out;
  for (auto& s : m) out += "[" + s + "]\n";
  return out;
}

ServerProcess::Env plan_env(const std::string& socket) {
  return {{"NOTIFY_SOCKET", socket},
          {"MEMGATE_TEST_ROUTES", "1"},
          {"MEMGATE_TEST_HEAVY_MODULES", "2"},
          {"MEMGATE_TEST_BUILD_MB", "8"},
          {"MEMGATE_TEST_KEEP_MB", "1"},
          {"MEMGATE_TEST_BUILD_MS", "300"},
          {"STAGE_DELAY", "200ms"}};
}

TEST(SdNotify, ReadyComesFirstThenAStatusPerStageAndStepWithWatchdogPingsThroughout) {
  NotifySocket sock(false);
  ASSERT_TRUE(sock.ok()) << std::strerror(errno);
  ServerProcess::Env env = plan_env(sock.name());
  env.emplace_back("WATCHDOG_USEC", "200000");  // a ping every 100 ms
  env.emplace_back("COORD_LOCAL_DIR", temp_dir("memgate-notify-coord"));
  auto server = ServerProcess::start(env);
  ASSERT_NE(server, nullptr);

  const std::string finished = "STATUS=start-up plan finished";
  // The plan's end, then three more pings: the loop keeps beating after it.
  ASSERT_TRUE(sock.read_until(
      [&](const std::vector<std::string>& m) {
        int end = find_from(m, 0, finished);
        return end >= 0 && count(m, "WATCHDOG=1", static_cast<size_t>(end)) >= 3;
      },
      20s))
      << joined(sock.messages()) << server->log();
  const auto& m = sock.messages();

  // READY=1 (with our pid and a status) before any other status.
  int ready = find_from(m, 0, "READY=1");
  ASSERT_GE(ready, 0) << joined(m);
  EXPECT_TRUE(has(m[ready], "MAINPID=" + std::to_string(server->process().pid()))) << m[ready];
  EXPECT_EQ(find_from(m, 0, "STATUS="), ready) << joined(m);
  // READY=1 means the core routes answer.
  EXPECT_EQ(http_get(server->port(), "/healthz").status, 200);

  // Then the stages and steps, in order.
  int at = ready;
  for (const char* step :
       {"STATUS=stage 1/2: test-heavy-1", "STATUS=stage 1/2: test-heavy-1 building", "STATUS=stage 1/2: test-heavy-1 ready",
        "STATUS=stage 2/2: test-heavy-2", "STATUS=stage 2/2: test-heavy-2 building", "STATUS=stage 2/2: test-heavy-2 ready",
        "STATUS=start-up plan finished: "}) {
    int next = find_from(m, static_cast<size_t>(at) + 1, step);
    ASSERT_GT(next, at) << "missing or out of order: " << step << "\n" << joined(m);
    at = next;
  }
  EXPECT_TRUE(has(m[at], "test-heavy-1 ready") && has(m[at], "test-heavy-2 ready")) << m[at];
  // A build says how far it is, and asks for more time while it runs.
  int building = find_from(m, 0, "STATUS=stage 1/2: test-heavy-1 building");
  EXPECT_TRUE(has(m[building], "EXTEND_TIMEOUT_USEC=")) << m[building];
  int percent = find_from(m, 0, "STATUS=stage 1/2: test-heavy-1 building, ");
  ASSERT_GE(percent, 0) << joined(m);
  EXPECT_TRUE(has(m[percent], "%")) << m[percent];
  EXPECT_FALSE(has(m[find_from(m, 0, "STATUS=stage 1/2: test-heavy-1 ready")], "EXTEND_TIMEOUT_USEC="));
  // Pings all along, not only at the end: the plan took several 100 ms periods.
  EXPECT_GE(count(m, "WATCHDOG=1"), 6u) << joined(m);
  for (const std::string& s : m) {
    if (has(s, "WATCHDOG=1")) {
      EXPECT_EQ(s, "WATCHDOG=1");  // a ping is a datagram of its own
    }
  }

  // SIGTERM: STOPPING=1, with time asked for the bounded shutdown.
  server->process().signal(SIGTERM);
  ASSERT_TRUE(sock.read_until([&](const std::vector<std::string>& mm) { return find_from(mm, 0, "STOPPING=1") >= 0; },
                              10s))
      << joined(sock.messages());
  EXPECT_TRUE(sock.read_until(
      [&](const std::vector<std::string>& mm) {
        return find_from(mm, static_cast<size_t>(find_from(mm, 0, "STOPPING=1")), "EXTEND_TIMEOUT_USEC=") >= 0;
      },
      10s))
      << joined(sock.messages());
  EXPECT_EQ(server->process().wait_for(10s), 0) << server->log();
}

TEST(SdNotify, AnAbstractSocketNameWorksAndAWatchdogMeantForAnotherPidSendsNoPings) {
  NotifySocket sock(true);
  ASSERT_TRUE(sock.ok()) << std::strerror(errno);
  ServerProcess::Env env = plan_env(sock.name());
  env.emplace_back("WATCHDOG_USEC", "100000");
  env.emplace_back("WATCHDOG_PID", "1");  // systemd meant these for another process
  env.emplace_back("COORD_LOCAL_DIR", temp_dir("memgate-notify-coord"));
  auto server = ServerProcess::start(env);
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(sock.read_until(
      [&](const std::vector<std::string>& m) { return find_from(m, 0, "STATUS=start-up plan finished") >= 0; }, 20s))
      << joined(sock.messages()) << server->log();
  const auto& m = sock.messages();
  EXPECT_EQ(find_from(m, 0, "READY=1"), 0) << joined(m);
  // The plan ran for more than ten of the 50 ms periods a ping would have had.
  EXPECT_EQ(count(m, "WATCHDOG=1"), 0u) << joined(m);
}

TEST(SdNotify, WithoutNotifySocketNothingIsSentAndMemgateServes) {
  auto server = ServerProcess::start({{"NOTIFY_SOCKET", ""}, {"WATCHDOG_USEC", "100000"}});
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(http_get(server->port(), "/healthz").status, 200);
  EXPECT_EQ(server->log().find("systemd"), std::string::npos) << server->log();
}

}  // namespace
}  // namespace memgate::testing
