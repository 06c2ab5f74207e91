#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace memgate::testing
