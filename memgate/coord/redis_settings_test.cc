#include "memgate/coord/redis_settings.h"

#include <gtest/gtest.h>

#include "memgate/coord/connection.h"

namespace memgate::coord {
namespace {

TEST(RedisUrl, APlainUrlGetsTheDefaultPortAndDatabase) {
  auto s = parse_redis_url("redis://cache.internal");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->transport, Transport::kTcp);
  EXPECT_EQ(s->host, "cache.internal");
  EXPECT_EQ(s->port, 6379);
  EXPECT_EQ(s->db, 0);
  EXPECT_TRUE(s->password.empty());
}

TEST(RedisUrl, UserPasswordPortAndDatabaseAreRead) {
  auto s = parse_redis_url("redis://app:p%40ss%3Aword@10.0.0.5:6380/3");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->username, "app");
  EXPECT_EQ(s->password, "p@ss:word");
  EXPECT_EQ(s->host, "10.0.0.5");
  EXPECT_EQ(s->port, 6380);
  EXPECT_EQ(s->db, 3);
}

TEST(RedisUrl, APasswordWithoutAUserIsAccepted) {
  auto s = parse_redis_url("redis://:secret@localhost:7000");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->username, "");
  EXPECT_EQ(s->password, "secret");
  EXPECT_EQ(s->port, 7000);
}

TEST(RedisUrl, RedissMeansTls) {
  auto s = parse_redis_url("rediss://:pw@redis.example.com:6380/1");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->transport, Transport::kTls);
  EXPECT_EQ(s->db, 1);
  EXPECT_EQ(s->describe(), "rediss://redis.example.com:6380/1");
}

TEST(RedisUrl, AnIpv6HostLosesItsBrackets) {
  auto s = parse_redis_url("redis://[::1]:6379");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->host, "::1");
  EXPECT_EQ(s->describe(), "redis://[::1]:6379/0");
}

TEST(RedisUrl, AUnixSocketTakesItsPathDatabaseAndPassword) {
  auto s = parse_redis_url("unix:///run/redis/redis.sock?db=2&password=pw");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->transport, Transport::kUnix);
  EXPECT_EQ(s->unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(s->db, 2);
  EXPECT_EQ(s->password, "pw");
  auto t = parse_redis_url("unix://:pw2@/tmp/r.sock");
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->unix_path, "/tmp/r.sock");
  EXPECT_EQ(t->password, "pw2");
}

TEST(RedisUrl, BadUrlsAreRefusedWithAMessageThatNamesTheVariableButNotThePassword) {
  const char* bad[] = {
      "",
      "http://hunter2host:6379",
      "redis://",
      "redis://:hunter2@",
      "redis://:hunter2@host:0",
      "redis://:hunter2@host:99999",
      "redis://:hunter2@host:12ab",
      "redis://:hunter2@host:6379/abc",
      "redis://:hunter2@host:6379/-1",
      "redis://:hunter2@host:6379/0?timeout=1",
      "unix://hunter2host/tmp/sock",
      "unix://",
      "unix:///tmp/sock?color=blue",
      "not a url at all hunter2",
  };
  for (const char* url : bad) {
    auto s = parse_redis_url(url);
    ASSERT_FALSE(s.ok()) << url;
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
    std::string m = s.status().message();
    EXPECT_NE(m.find("REDIS_URL is not valid"), std::string::npos) << m;
    EXPECT_EQ(m.find("hunter2"), std::string::npos) << m;
  }
}

TEST(RedisUrl, ErrorsSayWhatIsWrong) {
  auto message = [](const char* url) { return parse_redis_url(url).status().to_string(); };
  EXPECT_NE(message("redis://h:0").find("port"), std::string::npos);
  EXPECT_NE(message("redis://h/x").find("database"), std::string::npos);
  EXPECT_NE(message("ftp://h").find("scheme"), std::string::npos);
}

TEST(ReconnectDelay, DoublesFromTheMinimumUpToTheCapWithJitterInTheUpperHalf) {
  using std::chrono::milliseconds;
  EXPECT_EQ(reconnect_delay(0, milliseconds(100), milliseconds(2000), 0.0), milliseconds(50));
  EXPECT_EQ(reconnect_delay(0, milliseconds(100), milliseconds(2000), 0.999), milliseconds(99));
  EXPECT_EQ(reconnect_delay(3, milliseconds(100), milliseconds(2000), 0.0), milliseconds(400));
  EXPECT_EQ(reconnect_delay(30, milliseconds(100), milliseconds(2000), 0.0), milliseconds(1000));
  EXPECT_LE(reconnect_delay(30, milliseconds(100), milliseconds(2000), 0.999), milliseconds(2000));
}

TEST(Script, ComputesTheSha1RedisUses) {
  // SHA-1 of "return 1", as SCRIPT LOAD reports it.
  EXPECT_EQ(Script("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(RedisUrl, ASentinelUrlNamesTheSentinelsTheMasterAndTheDatabase) {
  auto s = parse_redis_url("redis-sentinel://app:p%40ss@10.0.0.1:26379,sentinel-2,[::1]:26380/my-master?db=2");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->transport, Transport::kTcp);
  ASSERT_EQ(s->sentinels.size(), 3u);
  EXPECT_EQ(s->sentinels[0], (Endpoint{"10.0.0.1", 26379}));
  EXPECT_EQ(s->sentinels[1], (Endpoint{"sentinel-2", 26379})) << "the default sentinel port";
  EXPECT_EQ(s->sentinels[2], (Endpoint{"::1", 26380}));
  EXPECT_EQ(s->sentinel_master, "my-master");
  EXPECT_EQ(s->username, "app");
  EXPECT_EQ(s->password, "p@ss") << "the master's password";
  EXPECT_EQ(s->db, 2);
  EXPECT_EQ(s->describe(), "redis-sentinel://10.0.0.1:26379,sentinel-2:26379,[::1]:26380/my-master/2");
  auto tls = parse_redis_url("rediss-sentinel://h1:26379/m");
  ASSERT_TRUE(tls.ok()) << tls.status().to_string();
  EXPECT_EQ(tls->transport, Transport::kTls);
  EXPECT_EQ(tls->db, 0);
}

TEST(RedisUrl, BadSentinelUrlsNameTheVariableAndNeverThePassword) {
  for (const char* url : {"redis-sentinel://:hunter2@h1:26379", "redis-sentinel://:hunter2@h1:26379/",
                          "redis-sentinel://:hunter2@/m", "redis-sentinel://:hunter2@h1:0/m",
                          "redis-sentinel://:hunter2@h1:99999/m", "redis-sentinel://:hunter2@h1,/m",
                          "redis-sentinel://:hunter2@h1:26379/m?db=x", "redis-sentinel://:hunter2@h1/m?foo=1",
                          "redis-sentinel://:hunter2@[::1/m", "redis-sentinel://:hun%zzter2@h1/m"}) {
    auto s = parse_redis_url(url);
    ASSERT_FALSE(s.ok()) << url;
    EXPECT_EQ(s.status().message().rfind("REDIS_URL is not valid", 0), 0u) << s.status().message();
    EXPECT_EQ(s.status().message().find("hunter2"), std::string::npos) << s.status().message();
    EXPECT_EQ(s.status().message().find("hun"), std::string::npos) << s.status().message();
  }
}

TEST(RedisUrl, AClusterUrlNamesItsSeedNodes) {
  auto s = parse_redis_url("redis-cluster://app:p%40ss@10.0.0.1:7000,node-2,[::1]:7002");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->transport, Transport::kTcp);
  ASSERT_EQ(s->cluster_seeds.size(), 3u);
  EXPECT_EQ(s->cluster_seeds[0], (Endpoint{"10.0.0.1", 7000}));
  EXPECT_EQ(s->cluster_seeds[1], (Endpoint{"node-2", 6379})) << "the default port";
  EXPECT_EQ(s->cluster_seeds[2], (Endpoint{"::1", 7002}));
  EXPECT_EQ(s->username, "app");
  EXPECT_EQ(s->password, "p@ss");
  EXPECT_EQ(s->db, 0);
  EXPECT_TRUE(s->sentinels.empty());
  EXPECT_EQ(s->describe(), "redis-cluster://10.0.0.1:7000,node-2:6379,[::1]:7002");
  for (const char* url : {"rediss-cluster://h1:7000/", "REDISS-CLUSTER://h1:7000/?db=0", "rediss-cluster://h1:7000?db=0"}) {
    auto tls = parse_redis_url(url);
    ASSERT_TRUE(tls.ok()) << url << ": " << tls.status().to_string();
    EXPECT_EQ(tls->transport, Transport::kTls);
    EXPECT_EQ(tls->describe(), "rediss-cluster://h1:7000");
  }
}

TEST(RedisUrl, BadClusterUrlsNameTheVariableAndNeverThePassword) {
  for (const char* url : {"redis-cluster://:hunter2@", "redis-cluster://:hunter2@/", "redis-cluster://:hunter2@h1:0",
                          "redis-cluster://:hunter2@h1:99999", "redis-cluster://:hunter2@h1,",
                          "redis-cluster://:hunter2@h1:7000/1", "redis-cluster://:hunter2@h1:7000?db=1",
                          "redis-cluster://:hunter2@h1:7000/?db=x", "redis-cluster://:hunter2@h1?foo=1",
                          "redis-cluster://:hunter2@[::1", "redis-cluster://:hun%zzter2@h1"}) {
    auto s = parse_redis_url(url);
    ASSERT_FALSE(s.ok()) << url;
    EXPECT_EQ(s.status().message().rfind("REDIS_URL is not valid", 0), 0u) << s.status().message();
    EXPECT_EQ(s.status().message().find("hunter2"), std::string::npos) << s.status().message();
    EXPECT_EQ(s.status().message().find("hun"), std::string::npos) << s.status().message();
  }
  std::string many = "redis-cluster://";
  for (int i = 0; i < 65; ++i) many += (i ? ",h" : "h") + std::to_string(i);
  EXPECT_FALSE(parse_redis_url(many).ok());
}

}  // namespace
}  // namespace memgate::coord
