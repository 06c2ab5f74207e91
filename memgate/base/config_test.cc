#include "memgate/base/config.h"

#include <gtest/gtest.h>

#include <map>

namespace memgate {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Invocation parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), "memgate");
  return parse_invocation(args, env_of(std::move(env)));
}

TEST(Config, DefaultsAreTheOriginalGuides) {
  Invocation inv = parse({});
  ASSERT_LT(inv.exit_code, 0) << inv.output;
  const Config& c = inv.config;
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 8080);
  EXPECT_EQ(c.admin_host, "127.0.0.1");
  EXPECT_EQ(c.admin_port, 9090);
  EXPECT_TRUE(c.enable_ai_routes);
  EXPECT_FALSE(c.enable_kb_service);
  EXPECT_FALSE(c.enable_scheduled_jobs);
  EXPECT_EQ(c.scheduler_heap_gate, SizeSpec::Bytes(2ull << 30));
  EXPECT_EQ(c.kb_heap_gate, SizeSpec::Bytes(1536ull << 20));
  EXPECT_EQ(c.heap_alert_threshold, SizeSpec::Bytes(3ull << 30));
  EXPECT_EQ(c.memory_limit, SizeSpec::Bytes(4096ull << 20));
  EXPECT_EQ(c.monitor_interval, std::chrono::seconds(30));
  EXPECT_EQ(c.log_format, LogFormat::kText);
  EXPECT_TRUE(c.redis_url.empty());
  EXPECT_FALSE(c.instance_id.empty());
  EXPECT_EQ(inv.command, Command::kServe);
}

TEST(Config, EnvironmentOverridesDefaultsAndFlagsOverrideEnvironment) {
  Invocation inv = parse({"--port", "9000"}, {{"PORT", "7000"}, {"KB_HEAP_GATE", "75%"},
                                              {"LOG_FORMAT", "json"}, {"STAGE_DELAY", "0s"}});
  ASSERT_LT(inv.exit_code, 0) << inv.output;
  EXPECT_EQ(inv.config.port, 9000);
  EXPECT_TRUE(inv.config.kb_heap_gate.is_share);
  EXPECT_EQ(inv.config.log_format, LogFormat::kJson);
  EXPECT_EQ(inv.config.stage_delay, std::chrono::milliseconds(0));
}

TEST(Config, ABadValueExitsTwoWithOneLineNamingTheVariableValueAndForm) {
  Invocation inv = parse({}, {{"PORT", "80a"}});
  EXPECT_EQ(inv.exit_code, 2);
  EXPECT_NE(inv.output.find("PORT='80a'"), std::string::npos) << inv.output;
  EXPECT_NE(inv.output.find("0 to 65535"), std::string::npos) << inv.output;
  EXPECT_EQ(inv.output.find('\n'), std::string::npos) << "more than one line: " << inv.output;

  inv = parse({}, {{"MONITOR_INTERVAL", "30"}});
  EXPECT_EQ(inv.exit_code, 2);
  EXPECT_NE(inv.output.find("MONITOR_INTERVAL='30'"), std::string::npos) << inv.output;
  EXPECT_NE(inv.output.find("15s"), std::string::npos) << inv.output;

  inv = parse({}, {{"KB_HEAP_GATE", "lots"}});
  EXPECT_EQ(inv.exit_code, 2);
  EXPECT_NE(inv.output.find("KB_HEAP_GATE='lots'"), std::string::npos) << inv.output;
  EXPECT_NE(inv.output.find("1.5GB"), std::string::npos) << inv.output;

  inv = parse({}, {{"ENABLE_KB_SERVICE", "sure"}});
  EXPECT_EQ(inv.exit_code, 2);
  EXPECT_NE(inv.output.find("ENABLE_KB_SERVICE='sure'"), std::string::npos) << inv.output;
}

TEST(Config, ABadFlagNamesTheFlag) {
  Invocation inv = parse({"--io-threads", "0"});
  EXPECT_EQ(inv.exit_code, 2);
  EXPECT_NE(inv.output.find("--io-threads='0'"), std::string::npos) << inv.output;
  inv = parse({"--no-such-flag"});
  EXPECT_EQ(inv.exit_code, 2);
}

TEST(Config, ABadRedisUrlNeverEchoesThePassword) {
  Invocation inv = parse({}, {{"REDIS_URL", "http://user:hunter2@host:6379"}});
  EXPECT_EQ(inv.exit_code, 2);
  EXPECT_NE(inv.output.find("REDIS_URL"), std::string::npos);
  EXPECT_EQ(inv.output.find("hunter2"), std::string::npos) << inv.output;
}

TEST(Config, AdminOffLoopbackNeedsAToken) {
  EXPECT_EQ(parse({}, {{"ADMIN_HOST", "0.0.0.0"}}).exit_code, 2);
  EXPECT_LT(parse({}, {{"ADMIN_HOST", "0.0.0.0"}, {"ADMIN_TOKEN", "s3cret"}}).exit_code, 0);
}

TEST(Config, HelpListsEverySettingWithItsDefault) {
  Invocation inv = parse({"--help"});
  EXPECT_EQ(inv.exit_code, 0);
  for (const char* name : {"PORT", "REDIS_URL", "ENABLE_KB_SERVICE", "MONITOR_INTERVAL", "KB_HEAP_GATE",
                           "LOG_FORMAT", "MEMORY_LIMIT", "WORKER_THREADS", "check-config"}) {
    EXPECT_NE(inv.output.find(name), std::string::npos) << name << " missing from --help";
  }
  EXPECT_NE(inv.output.find("default: 1.5GB"), std::string::npos);
  EXPECT_NE(inv.output.find("default: 4096MB"), std::string::npos);
}

TEST(Config, CheckConfigRedactsSecrets) {
  Invocation inv = parse({"check-config"}, {{"REDIS_URL", "redis://app:hunter2@cache:6379/2"},
                                            {"ADMIN_TOKEN", "tok-123"}});
  ASSERT_LT(inv.exit_code, 0) << inv.output;
  EXPECT_EQ(inv.command, Command::kCheckConfig);
  std::string text = describe(inv.config);
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_EQ(text.find("tok-123"), std::string::npos) << text;
  EXPECT_NE(text.find("REDIS_URL=redis://app:***@cache:6379/2"), std::string::npos) << text;
  EXPECT_NE(text.find("KB_HEAP_GATE=1.5GB"), std::string::npos) << text;
}

TEST(RedactUrl, HidesThePasswordAndKeepsTheRest) {
  EXPECT_EQ(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
  EXPECT_EQ(redact_url("rediss://user:p@ss@h:1"), "rediss://user:***@h:1");
  EXPECT_EQ(redact_url("redis://user@h:1"), "redis://***@h:1") << "a userinfo alone is often a token";
  EXPECT_EQ(redact_url("redis://h:6379"), "redis://h:6379");
  EXPECT_EQ(redact_url("unix:///run/redis.sock"), "unix:///run/redis.sock");
}

TEST(RedactUrl, HidesAPasswordThatHoldsASlashAQuestionMarkOrAnAt) {
  EXPECT_EQ(redact_url("redis://app:pa/ss@cache:6379/2"), "redis://app:***@cache:6379/2");
  EXPECT_EQ(redact_url("redis://app:a/b/c@cache:6379"), "redis://app:***@cache:6379");
  EXPECT_EQ(redact_url("redis://app:pa?ss@cache:6379"), "redis://app:***@cache:6379");
  EXPECT_EQ(redact_url("rediss://:x@y/z@cache:1/0?db=1"), "rediss://:***@cache:1/0?db=1");
}

TEST(RedactUrl, HidesCredentialsInTheQueryAndKeepsOtherParameters) {
  EXPECT_EQ(redact_url("unix:///run/redis.sock?password=hunter2&db=1"), "unix:///run/redis.sock?password=***&db=1");
  EXPECT_EQ(redact_url("unix:///run/redis.sock?db=1&password=a/b"), "unix:///run/redis.sock?db=1&password=***");
  EXPECT_EQ(redact_url("https://llm.example/v1?api_key=sk-1&token=t&key=k&model=m#top"),
            "https://llm.example/v1?api_key=***&token=***&key=***&model=m#top");
  EXPECT_EQ(redact_url("https://u:p@llm.example/?Access_Token=abc"), "https://u:***@llm.example/?Access_Token=***");
  EXPECT_EQ(redact_url("unix:///tmp/a@b.sock"), "unix:///tmp/a@b.sock") << "no authority, no userinfo";
  EXPECT_EQ(redact_url("not a url ?password=x"), "not a url ?password=x");
}

TEST(Config, CheckConfigRedactsEverySecretAndTheCredentialsOfAnyUrl) {
  for (const std::string url : {"unix:///run/redis.sock?password=hunter2", "redis://app:hun/ter2@cache:6379/2",
                                "rediss://hunter2@cache:6379", "unix://:hunter2@/run/redis.sock"}) {
    Invocation inv = parse({"check-config"}, {{"REDIS_URL", url}, {"ADMIN_TOKEN", "a://hunter2@x"}});
    ASSERT_LT(inv.exit_code, 0) << inv.output;
    std::string text = describe(inv.config);
    EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
    EXPECT_NE(text.find("ADMIN_TOKEN=<redacted>\n"), std::string::npos) << text;
  }
  Invocation bad = parse({"check-config"}, {{"REDIS_URL", "ftp://app:hunter2@cache"}});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.output.find("hunter2"), std::string::npos) << bad.output;
}

TEST(SecretEquals, IsTrueOnlyForTheSameBytes) {
  EXPECT_TRUE(secret_equals("tok-123", "tok-123"));
  EXPECT_TRUE(secret_equals("", ""));
  EXPECT_FALSE(secret_equals("tok-124", "tok-123"));
  EXPECT_FALSE(secret_equals("tok-12", "tok-123")) << "a prefix is not the token";
  EXPECT_FALSE(secret_equals("tok-1234", "tok-123"));
  EXPECT_FALSE(secret_equals("", "tok-123"));
  EXPECT_FALSE(secret_equals(std::string("tok-123\0", 8), "tok-123"));
}

}  // namespace
}  // namespace memgate

namespace memgate {
namespace {

TEST(Config, AValueWithControlBytesStillGivesOneErrorLine) {
  Invocation inv = parse_invocation({"memgate"}, [](const std::string& n) -> std::optional<std::string> {
    if (n == "HTTP_HEADER_LIMIT") return std::string("62HOENA\n\0\0BL", 12);
    return std::nullopt;
  });
  EXPECT_EQ(inv.exit_code, 2);
  EXPECT_EQ(inv.output.find('\n'), std::string::npos) << inv.output;
  EXPECT_NE(inv.output.find("\\x0a"), std::string::npos) << inv.output;
}

}  // namespace
}  // namespace memgate
