#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <sstream>

#include "tests/support/memory_cgroup.h"
#include "tests/support/redis_server.h"

namespace memgate::testing {
namespace {

// Sends one inline command over plain TCP and returns what came back.
std::string roundtrip(uint16_t port, const std::string& line) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string msg = line + "\r\n";
    if (::write(fd, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size())) {
      char buf[256];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) out.assign(buf, n);
    }
  }
  ::close(fd);
  return out;
}

TEST(FreePort, ReturnsABindablePort) {
  uint16_t p = free_port();
  EXPECT_GT(p, 0);
}

TEST(Subprocess, ReportsTheExitCode) {
  auto p = Subprocess::start({"sh", "-c", "exit 7"});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ((*p)->wait_for(std::chrono::seconds(5)), 7);
}

TEST(Subprocess, WritesOutputAndEnvironmentToTheLog) {
  std::string dir = temp_dir("memgate-support");
  auto p = Subprocess::start({"sh", "-c", "echo hello $MG_TEST_VAR"}, {{"MG_TEST_VAR", "world"}}, dir + "/log");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->wait_for(std::chrono::seconds(5)), 0);
  EXPECT_EQ(read_file(dir + "/log"), "hello world\n");
  remove_tree(dir);
}

TEST(Subprocess, FailsToStartAMissingProgram) {
  auto p = Subprocess::start({"/nonexistent/memgate-nothing"});
  EXPECT_FALSE(p.ok());
}

TEST(Subprocess, IsKilledBySignalAndReportsIt) {
  auto p = Subprocess::start({"sleep", "30"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE((*p)->running());
  EXPECT_EQ((*p)->wait_for(std::chrono::milliseconds(20)), std::nullopt);
  (*p)->signal(SIGKILL);
  EXPECT_EQ((*p)->wait_for(std::chrono::seconds(5)), 128 + SIGKILL);
}

TEST(RedisServer, AnswersPingAndSurvivesARestartOnTheSamePort) {
  auto server = RedisServer::start();
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  auto& s = **server;
  EXPECT_EQ(roundtrip(s.port(), "PING"), "+PONG\r\n");
  EXPECT_EQ(s.url(), "redis://127.0.0.1:" + std::to_string(s.port()));
  s.kill();
  EXPECT_EQ(roundtrip(s.port(), "PING"), "");
  ASSERT_TRUE(s.restart().ok());
  EXPECT_EQ(roundtrip(s.port(), "PING"), "+PONG\r\n");
}

TEST(RedisServer, RequiresThePasswordWhenOneIsSet) {
  RedisOptions options;
  options.password = "s3cret";
  auto server = RedisServer::start(options);
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  EXPECT_NE(roundtrip((*server)->port(), "PING").find("NOAUTH"), std::string::npos);
  EXPECT_EQ((*server)->url(), "redis://:s3cret@127.0.0.1:" + std::to_string((*server)->port()));
}

TEST(RedisServer, StartsWithTlsAndACertificateFromItsOwnCa) {
  RedisOptions options;
  options.tls = true;
  auto server = RedisServer::start(options);
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  EXPECT_FALSE((*server)->ca_file().empty());
  EXPECT_FALSE(read_file((*server)->ca_file()).empty());
  EXPECT_EQ((*server)->url().rfind("rediss://", 0), 0u);
}

TEST(Subprocess, FailsToStartWhenItCannotJoinTheCgroup) {
  auto p = Subprocess::start({"sh", "-c", "exit 0"}, {}, "", "/nonexistent/memgate-cgroup/cgroup.procs");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("/nonexistent/memgate-cgroup/cgroup.procs"), std::string::npos)
      << p.status().to_string();
}

constexpr uint64_t kMiB = 1024 * 1024;

// Every test here gets a fresh 32 MiB cgroup, or skips with the reason.
class InAMemoryCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cg = MemoryCgroup::create(32 * kMiB);
    if (!cg.ok()) GTEST_SKIP() << cg.status().message();
    cgroup_ = std::move(*cg);
  }

  // Runs dd with one block of `bytes`: it reads /dev/zero into a buffer that
  // size, so it touches every page of it. Returns the exit code.
  std::optional<int> run_dd_touching(uint64_t bytes) {
    auto p = cgroup_->start({"dd", "if=/dev/zero", "of=/dev/null", "count=1", "status=none",
                             "bs=" + std::to_string(bytes)});
    if (!p.ok()) {
      ADD_FAILURE() << p.status().to_string();
      return std::nullopt;
    }
    return (*p)->wait_for(std::chrono::seconds(20));
  }

  bool file_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  // The cgroup /proc/PID/cgroup names for pid in this cgroup's hierarchy.
  std::string cgroup_of(pid_t pid) {
    std::string text = read_file("/proc/" + std::to_string(pid) + "/cgroup");
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      auto first = line.find(':');
      auto second = line.find(':', first + 1);
      std::string controllers = line.substr(first + 1, second - first - 1);
      bool match = cgroup_->version() == CgroupVersion::kV2
                       ? line.rfind("0::", 0) == 0
                       : ("," + controllers + ",").find(",memory,") != std::string::npos;
      if (match) return line.substr(second + 1);
    }
    return "";
  }

  std::unique_ptr<MemoryCgroup> cgroup_;
};

TEST_F(InAMemoryCgroup, AChildStartedInItIsInItFromTheStart) {
  auto p = cgroup_->start({"sleep", "30"});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(cgroup_of((*p)->pid()), cgroup_->name());
  auto pids = cgroup_->pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), (*p)->pid()), pids.end());
}

TEST_F(InAMemoryCgroup, ARunningProcessCanBeMovedIntoIt) {
  auto p = Subprocess::start({"sleep", "30"});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_NE(cgroup_of((*p)->pid()), cgroup_->name());
  ASSERT_TRUE(cgroup_->add((*p)->pid()).ok());
  EXPECT_EQ(cgroup_of((*p)->pid()), cgroup_->name());
}

TEST_F(InAMemoryCgroup, ItsLimitReadsBack) {
  auto limit = cgroup_->limit();
  ASSERT_TRUE(limit.ok()) << limit.status().to_string();
  EXPECT_EQ(*limit, 32 * kMiB);
  EXPECT_EQ(cgroup_->path().substr(cgroup_->path().size() - cgroup_->name().size()), cgroup_->name());
}

TEST_F(InAMemoryCgroup, AChildThatTouchesMoreThanTheLimitIsOomKilled) {
  EXPECT_EQ(run_dd_touching(64 * kMiB), 128 + SIGKILL);
  auto kills = cgroup_->oom_kills();
  ASSERT_TRUE(kills.ok()) << kills.status().to_string();
  EXPECT_GE(*kills, 1u);
}

TEST_F(InAMemoryCgroup, AChildThatStaysUnderTheLimitIsNotKilledAndRaisesThePeak) {
  EXPECT_EQ(run_dd_touching(8 * kMiB), 0);
  auto kills = cgroup_->oom_kills();
  ASSERT_TRUE(kills.ok()) << kills.status().to_string();
  EXPECT_EQ(*kills, 0u);
  auto peak = cgroup_->peak();
  ASSERT_TRUE(peak.ok()) << peak.status().to_string();
  EXPECT_GT(*peak, 8 * kMiB);
  EXPECT_LE(*peak, 32 * kMiB);
  auto usage = cgroup_->usage();
  ASSERT_TRUE(usage.ok()) << usage.status().to_string();
  EXPECT_LE(*usage, *peak);
}

TEST_F(InAMemoryCgroup, ItsDirectoryIsRemovedWhenItIsDestroyed) {
  std::string path = cgroup_->path();
  {
    auto p = cgroup_->start({"sleep", "30"});
    ASSERT_TRUE(p.ok()) << p.status().to_string();
  }  // the child is killed and reaped here, before the cgroup goes
  EXPECT_TRUE(file_exists(path));
  cgroup_.reset();
  EXPECT_FALSE(file_exists(path));
}

TEST(MemoryCgroupCreate, GivesAReasonWhenNoCgroupFileSystemIsAtTheRoot) {
  MemoryCgroupOptions options;
  options.cgroup_root = "/nonexistent/memgate-cgroup-root";
  auto cg = MemoryCgroup::create(32 * kMiB, options);
  ASSERT_FALSE(cg.ok());
  EXPECT_EQ(cg.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(cg.status().message().find("/nonexistent/memgate-cgroup-root"), std::string::npos)
      << cg.status().message();
}

TEST(MemoryCgroupCreate, EitherMakesACgroupOrSaysWhyNot) {
  auto cg = MemoryCgroup::create(32 * kMiB);
  if (cg.ok()) {
    EXPECT_FALSE((*cg)->path().empty());
  } else {
    EXPECT_FALSE(cg.status().message().empty());
  }
}

}  // namespace
}  // namespace memgate::testing
