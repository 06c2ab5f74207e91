#include "memgate/coord/connection.h"

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <future>

#include "memgate/coord/coord_test_env.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;

RedisSettings settings_for(const std::string& url) {
  auto s = parse_redis_url(url);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  s->connect_timeout = 1000ms;
  s->command_timeout = 1000ms;
  return *s;
}

class ConnectionTest : public RedisTest {};

TEST_F(ConnectionTest, RunsCommandsAndReportsTheConnectedState) {
  CoordMetrics m;
  auto c = Connection::create(settings_for(url()), &m);
  ASSERT_TRUE(c->wait_connected(2s).ok());
  EXPECT_EQ(m.connection_state.load(), static_cast<int>(ConnectionState::kConnected));
  auto set = c->command({"SET", "greeting", std::string_view("hi\0there", 8)});
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->str, "OK");
  auto get = c->command({"GET", "greeting"});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->str, std::string("hi\0there", 8));
  auto missing = c->command({"GET", "nothing"});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->is_nil());
  auto err = c->command({"INCR", "greeting"});
  ASSERT_TRUE(err.ok());
  EXPECT_TRUE(err->is_error());
}

TEST_F(ConnectionTest, PipelinedCommandsFromManyThreadsGetTheirOwnRepliesInOrder) {
  auto c = Connection::create(settings_for(url()), &metrics_);
  ASSERT_TRUE(c->wait_connected(2s).ok());
  constexpr int kThreads = 8, kPerThread = 2000;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string key = "counter:" + std::to_string(t);
      std::promise<void> done;
      std::atomic<int> left{kPerThread};
      std::atomic<int64_t> expected{1};
      for (int i = 0; i < kPerThread; ++i) {
        c->async_command({"INCR", key}, [&](Result<Reply> r) {
          // Replies for one key arrive in the order the INCRs were sent.
          if (!r.ok() || r->integer != expected.fetch_add(1)) wrong.fetch_add(1);
          if (left.fetch_sub(1) == 1) done.set_value();
        });
      }
      done.get_future().wait();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(ConnectionTest, EvalshaFallsBackToEvalAfterTheScriptCacheIsFlushed) {
  auto c = Connection::create(settings_for(url()), &metrics_);
  ASSERT_TRUE(c->wait_connected(2s).ok());
  Script s("return tonumber(ARGV[1]) + 1");
  auto r = c->eval(s, {}, {"41"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->integer, 42);
  ASSERT_TRUE(c->command({"SCRIPT", "FLUSH"}).ok());
  r = c->eval(s, {}, {"1"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->integer, 2);
  auto exists = c->command({"SCRIPT", "EXISTS", s.sha1()});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists->elements.at(0).integer, 1);
}

TEST_F(ConnectionTest, SelectsTheDatabaseFromTheUrl) {
  auto db2 = Connection::create(settings_for(url() + "/2"), &metrics_);
  ASSERT_TRUE(db2->wait_connected(2s).ok());
  ASSERT_TRUE(db2->command({"SET", "where", "two"}).ok());
  auto in_db0 = raw().command({"GET", "where"});
  ASSERT_TRUE(in_db0.ok());
  EXPECT_TRUE(in_db0->is_nil());
  EXPECT_EQ(db2->command({"GET", "where"})->str, "two");
}

TEST_F(ConnectionTest, AuthenticatesAndReportsAWrongPasswordWithoutEchoingIt) {
  testing::RedisOptions o;
  o.password = "correct-horse";
  start_redis(o);
  auto good = Connection::create(settings_for(url()), &metrics_);
  ASSERT_TRUE(good->wait_connected(2s).ok());
  EXPECT_EQ(good->command({"PING"})->str, "PONG");
  auto bad_settings = settings_for(url());
  bad_settings.password = "battery-staple";
  auto bad = Connection::create(bad_settings, &metrics_, false);
  Status st = bad->wait_connected(500ms);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("AUTH"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("battery-staple"), std::string::npos);
}

TEST_F(ConnectionTest, AuthenticatesAsANamedAclUser) {
  testing::RedisOptions o;
  o.password = "admin-pw";
  start_redis(o);
  auto admin = Connection::create(settings_for(url()), &metrics_, false);
  ASSERT_TRUE(admin->wait_connected(2s).ok());
  auto acl = admin->command({"ACL", "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all"});
  ASSERT_TRUE(acl.ok() && !acl->is_error()) << describe_reply_error(acl);
  auto app = Connection::create(
      settings_for("redis://app:app-pw@127.0.0.1:" + std::to_string(server_->port())), &metrics_, false);
  ASSERT_TRUE(app->wait_connected(2s).ok()) << app->last_error();
  EXPECT_EQ(app->command({"ACL", "WHOAMI"})->str, "app");
}

TEST_F(ConnectionTest, ConnectsOverAUnixSocket) {
  std::string sock = dir_ + "/redis.sock";
  auto proc = testing::Subprocess::start({"redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                                          "--dir", dir_},
                                         {}, dir_ + "/unix-redis.log");
  ASSERT_TRUE(proc.ok());
  ASSERT_TRUE(testing::wait_until([&] { return std::filesystem::exists(sock); }, 5s));
  auto c = Connection::create(settings_for("unix://" + sock + "?db=1"), &metrics_);
  ASSERT_TRUE(c->wait_connected(2s).ok()) << c->last_error();
  EXPECT_EQ(c->command({"PING"})->str, "PONG");
}

TEST_F(ConnectionTest, TlsWithTheCaConnectsAndWithoutItIsRefused) {
  testing::RedisOptions o;
  o.tls = true;
  start_redis(o);
  auto with_ca = settings_for(url());
  with_ca.tls_ca = server_->ca_file();
  auto good = Connection::create(with_ca, &metrics_);
  ASSERT_TRUE(good->wait_connected(3s).ok()) << good->last_error();
  EXPECT_EQ(good->command({"PING"})->str, "PONG");

  auto no_ca = Connection::create(settings_for(url()), &metrics_, false);
  Status st = no_ca->wait_connected(500ms);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("certificate"), std::string::npos) << st.message();

  auto insecure_settings = settings_for(url());
  insecure_settings.tls_insecure = true;
  auto insecure = Connection::create(insecure_settings, &metrics_, false);
  EXPECT_TRUE(insecure->wait_connected(3s).ok()) << insecure->last_error();
}

TEST_F(ConnectionTest, ACommandWithoutAReplyTimesOut) {
  auto s = settings_for(url());
  s.command_timeout = 200ms;
  CoordMetrics m;
  auto c = Connection::create(s, &m);
  ASSERT_TRUE(c->wait_connected(2s).ok());
  ::kill(server_->pid(), SIGSTOP);
  auto r = c->command({"PING"});
  ::kill(server_->pid(), SIGCONT);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
  EXPECT_GE(m.errors(CommandErrorKind::kTimeout), 1u);
  // The connection recovers (possibly after a reconnect).
  ASSERT_TRUE(testing::wait_until([&] { auto p = c->command({"PING"}); return p.ok() && p->str == "PONG"; }, 5s));
}

TEST_F(ConnectionTest, RedisKilledAndRestartedFailsCallsClearlyThenReconnectsByItself) {
  CoordMetrics m;
  auto c = Connection::create(settings_for(url()), &m);
  ASSERT_TRUE(c->wait_connected(2s).ok());
  ASSERT_TRUE(c->command({"SET", "k", "v"}).ok());
  server_->kill();
  ASSERT_TRUE(testing::wait_until([&] { return !c->connected(); }, 2s));
  auto r = c->command({"GET", "k"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_NE(r.status().message().find("redis"), std::string::npos) << r.status().message();
  EXPECT_NE(m.connection_state.load(), static_cast<int>(ConnectionState::kConnected));
  ASSERT_TRUE(server_->restart().ok());
  ASSERT_TRUE(c->wait_connected(5s).ok()) << c->last_error();
  EXPECT_EQ(c->command({"PING"})->str, "PONG");
  EXPECT_GE(m.reconnects.load(), 1u);
  EXPECT_GE(m.errors(CommandErrorKind::kDisconnected), 1u);
}

TEST_F(ConnectionTest, ABlockingCallFromACallbackIsRefusedInsteadOfDeadlocking) {
  auto c = Connection::create(settings_for(url()), &metrics_);
  ASSERT_TRUE(c->wait_connected(2s).ok());
  std::promise<Code> code;
  c->async_command({"PING"}, [&](Result<Reply>) { code.set_value(c->command({"PING"}).status().code()); });
  EXPECT_EQ(code.get_future().get(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace memgate::coord
