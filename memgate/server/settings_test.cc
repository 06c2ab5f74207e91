// The one settings table: the runtime's rows and every module's, checked against
// what the source reads, what --help and check-config print, and what
// docs/operations.md lists.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "memgate/base/config.h"
#include "memgate/server/modules.h"

namespace memgate::server {
namespace {

namespace fs = std::filesystem;

SettingRows whole_table() {
  SettingRows rows = runtime_settings();
  for (SettingRow& r : module_settings()) rows.push_back(std::move(r));
  return rows;
}

std::set<std::string> table_names() {
  std::set<std::string> names;
  for (const SettingRow& r : whole_table()) names.insert(r.env);
  return names;
}

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Invocation parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  args.insert(args.begin(), "memgate");
  return parse_invocation(args, env_of(std::move(env)), module_settings());
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// Variables the process reads that are not memgate settings.
const std::map<std::string, std::string> kNotSettings = {
    {"TMPDIR", "the system's temporary folder (POSIX), for the kb's scratch database"},
    {"MALLOC_CONF", "jemalloc's own options, extended for MEMGATE_HEAP_PROFILE's re-exec"},
    {"MEMGATE_HEAP_PROFILE_EXECED", "set by memgate itself on its one re-exec for heap profiling"},
    // The service manager's protocol (sd_notify(3)), set by systemd, not by an operator.
    {"NOTIFY_SOCKET", "systemd's notification socket"},
    {"WATCHDOG_USEC", "systemd's watchdog interval"},
    {"WATCHDOG_PID", "the process systemd's watchdog expects to hear from"},
};

// Every "NAME" the production source reads from the environment: getenv("NAME"),
// env("NAME") on a lookup, and the variable of a module's FlagSpec.
std::map<std::string, std::string> names_read_in_source() {
  const std::regex read_call(R"((?:getenv|\benv)\(\s*"([A-Z][A-Z0-9_]*)\")");
  const std::regex flag(R"(FlagSpec flag\(\) const override \{\s*return \{\s*"([A-Z][A-Z0-9_]*)\")");
  std::map<std::string, std::string> found;  // name -> first file
  for (const char* top : {"memgate", "app", "examples"}) {
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(MEMGATE_SOURCE_ROOT) / top)) {
      if (!entry.is_regular_file()) continue;
      std::string path = entry.path().string();
      std::string name = entry.path().filename().string();
      if (path.find("/testdata/") != std::string::npos) continue;
      if (!name.ends_with(".cc") && !name.ends_with(".h")) continue;
      if (name.ends_with("_test.cc") || name.find("test_support") != std::string::npos ||
          name.find("test_env") != std::string::npos)
        continue;
      std::string text = read(entry.path());
      for (const std::regex* re : {&read_call, &flag})
        for (std::sregex_iterator it(text.begin(), text.end(), *re), end; it != end; ++it)
          found.emplace((*it)[1].str(), fs::relative(entry.path(), MEMGATE_SOURCE_ROOT).string());
    }
  }
  return found;
}

TEST(SettingsTable, EveryVariableTheSourceReadsHasARow) {
  std::map<std::string, std::string> read = names_read_in_source();
  ASSERT_TRUE(read.count("MEMGATE_HEAP_PROFILE")) << "the scan no longer sees app/main.cc's getenv";
  ASSERT_TRUE(read.count("ENABLE_KB_SERVICE")) << "the scan no longer sees the modules' FlagSpecs";
  std::set<std::string> names = table_names();
  for (const auto& [name, file] : read) {
    if (kNotSettings.count(name)) continue;
    EXPECT_TRUE(names.count(name)) << name << " is read in " << file
                                   << " but has no row in the settings table (add it to its module's settings())";
  }
}

TEST(SettingsTable, EveryNameTheModulesAskForHasARow) {
  // The modules read through a lookup; record every name they ask for, with
  // every optional module and branch on.
  std::set<std::string> asked;
  Config config;
  config.test_routes = true;
  EnvLookup recording = [&asked](const std::string& name) -> std::optional<std::string> {
    asked.insert(name);
    if (name == "MEMGATE_TEST_JOB_LOG") return std::string("/dev/null");
    return std::nullopt;
  };
  auto modules = builtin_modules(config, recording);
  ASSERT_TRUE(modules.ok()) << modules.status().to_string();
  for (const auto& m : *modules)
    if (!m->flag().env.empty()) asked.insert(m->flag().env);
  std::set<std::string> names = table_names();
  ASSERT_GT(asked.size(), 20u);
  for (const std::string& name : asked) EXPECT_TRUE(names.count(name)) << name << " is asked for but has no row";
}

TEST(SettingsTable, NamesAndFlagsAreUniqueAndEveryRowSaysWhatItDoes) {
  std::set<std::string> envs, flags;
  for (const SettingRow& r : whole_table()) {
    EXPECT_TRUE(envs.insert(r.env).second) << r.env << " twice";
    EXPECT_TRUE(flags.insert(r.flag).second) << "--" << r.flag << " twice";
    EXPECT_FALSE(r.help.empty()) << r.env;
    if (r.check && !r.default_text.empty()) {
      EXPECT_TRUE(r.check(r.default_text).ok()) << r.env << "'s default";
    }
  }
  Invocation inv = parse({});
  EXPECT_LT(inv.exit_code, 0) << inv.output;
}

TEST(SettingsTable, ModulesSettingsAreCountedAmongTheTable) {
  std::set<std::string> names = table_names();
  for (const char* name : {"KB_CORPUS_DIR", "KB_ARTIFACT_FILE", "KB_CHUNK_SIZE", "KB_QUERY_CONNECTIONS",
                           "KB_REFRESH_PERIOD", "KB_WATCH_INTERVAL", "MCP_AUTH_TOKEN", "MCP_ALLOWED_ORIGINS",
                           "MCP_RESOURCE_PAGE_SIZE", "MCP_AUTH_JWKS", "MCP_AUTH_ISSUER", "MCP_AUTH_AUDIENCE",
                           "MCP_AUTH_RESOURCE", "MCP_AUTH_SCOPES", "MCP_AUTH_TOOL_SCOPES", "MCP_AUTH_CLOCK_SKEW",
                           "MCP_AUTH_JWKS_RECHECK",
                           "LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL", "LLM_TLS_CA", "LLM_CONNECT_TIMEOUT",
                           "LLM_READ_TIMEOUT", "LLM_REQUEST_TIMEOUT", "LLM_MAX_RESPONSE", "LLM_MAX_TOKENS",
                           "LLM_TOKEN_PARAM", "COACH_MAX_INFLIGHT", "COACH_QUEUE", "COACH_MAX_QUESTION",
                           "COACH_MAX_BODY", "COACH_MAX_HISTORY", "COACH_PASSAGES", "COACH_PASSAGE_BYTES",
                           "COACH_ALLOWED_ORIGINS",
                           "ENABLE_EXAMPLE_MODULE", "EXAMPLE_PRIMES_LIMIT"})
    EXPECT_TRUE(names.count(name)) << name;
}

TEST(SettingsTable, HelpListsEverySettingAndEverySubcommand) {
  Invocation inv = parse({"--help"});
  ASSERT_EQ(inv.exit_code, 0);
  for (const SettingRow& r : whole_table()) {
    EXPECT_NE(inv.output.find("[" + r.env + "]"), std::string::npos) << r.env << " missing from --help";
    EXPECT_NE(inv.output.find("--" + r.flag), std::string::npos) << r.flag << " missing from --help";
  }
  for (const char* sub : {"check-config", "plan", "kb"})
    EXPECT_NE(inv.output.find(std::string("\n  ") + sub + " "), std::string::npos) << sub << "\n" << inv.output;
  EXPECT_NE(inv.output.find("default: 1200"), std::string::npos) << "KB_CHUNK_SIZE's default";
  EXPECT_NE(inv.output.find("default: gpt-4o-mini"), std::string::npos);
}

TEST(SettingsTable, AModuleSettingComesFromItsFlagItsVariableOrItsDefault) {
  Invocation inv = parse({"--kb-chunk-size", "800"}, {{"KB_CHUNK_SIZE", "600"}, {"COACH_PASSAGES", "6"}});
  ASSERT_LT(inv.exit_code, 0) << inv.output;
  EnvLookup lookup = settings_lookup(inv);
  EXPECT_EQ(lookup("KB_CHUNK_SIZE"), "800");
  EXPECT_EQ(lookup("COACH_PASSAGES"), "6");
  EXPECT_EQ(lookup("LLM_MODEL"), "gpt-4o-mini");
  EXPECT_EQ(lookup("PORT"), "8080") << "the runtime's rows resolve the same way";
  EXPECT_EQ(lookup("LLM_BASE_URL"), std::nullopt) << "unset, no default";
  EXPECT_EQ(lookup("NOT_A_SETTING"), std::nullopt) << "a name without a row is never read";
}

TEST(SettingsTable, ABadModuleValueExitsTwoWithOneLineNamingTheVariable) {
  struct Case {
    std::string name, value, expect;
  };
  for (const Case& c : std::vector<Case>{{"KB_CHUNK_SIZE", "10", "KB_CHUNK_SIZE='10' is not valid: expected"},
                                         {"COACH_QUEUE", "lots", "COACH_QUEUE='lots' is not valid: expected"},
                                         {"LLM_READ_TIMEOUT", "0", "LLM_READ_TIMEOUT='0' is not valid"},
                                         {"MCP_ALLOWED_ORIGINS", "evil", "MCP_ALLOWED_ORIGINS='evil'"},
                                         {"ENABLE_EXAMPLE_MODULE", "sure", "ENABLE_EXAMPLE_MODULE='sure'"},
                                         {"EXAMPLE_PRIMES_LIMIT", "1", "EXAMPLE_PRIMES_LIMIT='1'"}}) {
    Invocation inv = parse({"check-config"}, {{c.name, c.value}});
    EXPECT_EQ(inv.exit_code, 2) << c.name;
    EXPECT_EQ(inv.output.rfind("memgate: " + c.expect, 0), 0u) << inv.output;
    EXPECT_EQ(inv.output.find('\n'), std::string::npos) << inv.output;
  }
  Invocation flag = parse({"--coach-passages", "99"});
  EXPECT_EQ(flag.exit_code, 2);
  EXPECT_NE(flag.output.find("--coach-passages='99'"), std::string::npos) << flag.output;
}

TEST(SettingsTable, SecretsNeverReachAnErrorOrCheckConfig) {
  Invocation inv = parse({"check-config"}, {{"LLM_API_KEY", "sk-hunter2"},
                                            {"MCP_AUTH_TOKEN", "tok-hunter2"},
                                            {"LLM_BASE_URL", "https://llm.example/v1"}});
  ASSERT_LT(inv.exit_code, 0) << inv.output;
  std::string text = describe(inv);
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_NE(text.find("LLM_API_KEY=<redacted>\n"), std::string::npos) << text;
  EXPECT_NE(text.find("MCP_AUTH_TOKEN=<redacted>\n"), std::string::npos) << text;
  EXPECT_NE(text.find("LLM_BASE_URL=https://llm.example/v1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("KB_CHUNK_SIZE=1200\n"), std::string::npos) << text;
  EXPECT_NE(text.find("PORT=8080\n"), std::string::npos) << text;
  for (const SettingRow& r : whole_table())
    EXPECT_NE(text.find(r.env + "="), std::string::npos) << r.env << " missing from check-config";

  for (auto [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"MCP_AUTH_TOKEN", "tok hunter2"}, {"LLM_BASE_URL", "https://user:hunter2@llm.example/v1"}}) {
    Invocation bad = parse({"check-config"}, {{name, value}});
    EXPECT_EQ(bad.exit_code, 2) << name;
    EXPECT_NE(bad.output.find(name + "='"), std::string::npos) << bad.output;
    EXPECT_EQ(bad.output.find("hunter2"), std::string::npos) << bad.output;
  }
}

// docs/operations.md's rows: | `NAME` | `--flag` | default | what it does |
TEST(SettingsTable, OperationsDocListsEverySettingWithItsFlagAndDefault) {
  std::string doc = read(fs::path(MEMGATE_SOURCE_ROOT) / "docs" / "operations.md");
  ASSERT_FALSE(doc.empty());
  // A settings table's row has a flag column; other tables (systemd's own
  // variables, lock keys) are not settings.
  const std::regex line(R"(^\| `([A-Z][A-Z0-9_]*)` \| (`--[^|]*) \| ([^|]*) \| (.*) \|$)");
  struct DocRow {
    std::string flag, default_cell, what;
  };
  std::multimap<std::string, DocRow> rows;
  std::istringstream in(doc);
  for (std::string l; std::getline(in, l);) {
    std::smatch m;
    if (std::regex_match(l, m, line)) rows.emplace(m[1].str(), DocRow{m[2].str(), m[3].str(), m[4].str()});
  }
  std::set<std::string> names = table_names();
  for (const auto& [name, row] : rows)
    EXPECT_TRUE(names.count(name)) << name << " is in docs/operations.md but not in the settings table";
  for (const SettingRow& r : whole_table()) {
    auto [first, last] = rows.equal_range(r.env);
    ASSERT_NE(first, last) << r.env << " is missing from docs/operations.md";
    std::string want_default = !r.default_text.empty() ? "`" + r.default_text + "`"
                               : r.default_note.empty() ? "unset"
                                                        : r.default_note;
    for (auto it = first; it != last; ++it) {
      EXPECT_EQ(it->second.flag, "`--" + r.flag + "`") << r.env;
      EXPECT_EQ(it->second.default_cell, want_default) << r.env;
      EXPECT_FALSE(it->second.what.empty()) << r.env;
    }
  }
}

}  // namespace
}  // namespace memgate::server
