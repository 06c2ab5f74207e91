// The settings table. Each row names a setting once: its variable, its flag, its
// default as text, what it does, and how its text becomes a field of Config. The
// same table drives --help, parsing, validation, and check-config, so the four can
// never disagree. The defaults are written as text and parsed by the same code as
// user input, which keeps "what --help says" and "what runs" the same thing.
#include "memgate/base/config.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <sstream>

#include "memgate/base/units.h"

namespace memgate {
namespace {

struct Setting {
  const char* env;
  const char* flag;          // without the leading dashes
  const char* default_text;  // "" means unset
  const char* help;
  const char* form;          // accepted form, for errors
  bool secret;
  // Applies the text to the config; returns an error detail, or an OK status.
  std::function<Status(const std::string&, Config&)> apply;
};

Status with_form(Status s, std::string_view form) {
  if (s.ok()) return s;
  return InvalidArgument("expected " + std::string(form) + " (" + s.message() + ")");
}

template <typename Field>
std::function<Status(const std::string&, Config&)> size_field(Field field) {
  return [field](const std::string& t, Config& c) {
    auto r = parse_size(t);
    if (!r) return with_form(r.status(), kSizeForm);
    c.*field = *r;
    return Status::Ok();
  };
}

template <typename Field>
std::function<Status(const std::string&, Config&)> duration_field(Field field) {
  return [field](const std::string& t, Config& c) {
    auto r = parse_duration(t);
    if (!r) return with_form(r.status(), kDurationForm);
    c.*field = *r;
    return Status::Ok();
  };
}

template <typename Field>
std::function<Status(const std::string&, Config&)> bool_field(Field field) {
  return [field](const std::string& t, Config& c) {
    auto r = parse_bool(t);
    if (!r) return with_form(r.status(), kBoolForm);
    c.*field = *r;
    return Status::Ok();
  };
}

template <typename Field>
std::function<Status(const std::string&, Config&)> int_field(Field field, int64_t min, int64_t max) {
  return [field, min, max](const std::string& t, Config& c) {
    auto r = parse_int(t, min, max);
    if (!r)
      return with_form(r.status(),
                       "a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    c.*field = static_cast<std::remove_reference_t<decltype(c.*field)>>(*r);
    return Status::Ok();
  };
}

template <typename Field>
std::function<Status(const std::string&, Config&)> byte_field(Field field, uint64_t max) {
  return [field, max](const std::string& t, Config& c) {
    auto r = parse_size(t);
    if (!r) return with_form(r.status(), "a size such as 16KB or 1MB");
    if (r->is_share) return InvalidArgument("expected a size such as 16KB or 1MB (a share makes no sense here)");
    if (r->bytes == 0 || r->bytes > max)
      return InvalidArgument("expected a size from 1 byte to " + format_bytes(max));
    c.*field = r->bytes;
    return Status::Ok();
  };
}

Status host_check(const std::string& t) {
  if (t.empty() || t.find_first_of(" /\t") != std::string::npos)
    return InvalidArgument("expected an IP address such as 127.0.0.1, 0.0.0.0 or ::1");
  return Status::Ok();
}

std::function<Status(const std::string&, Config&)> text_field(std::string Config::*field) {
  return [field](const std::string& t, Config& c) {
    c.*field = t;
    return Status::Ok();
  };
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table = {
      {"HOST", "host", "127.0.0.1", "Address of the public listener", "an IP address", false,
       [](const std::string& t, Config& c) {
         if (auto s = host_check(t); !s.ok()) return s;
         c.host = t;
         return Status::Ok();
       }},
      {"PORT", "port", "8080", "Port of the public listener (0 picks a free one)", "", false,
       int_field(&Config::port, 0, 65535)},
      {"ADMIN_HOST", "admin-host", "127.0.0.1",
       "Address of the admin listener (/metrics, /debug); keep it on loopback or set ADMIN_TOKEN",
       "an IP address", false,
       [](const std::string& t, Config& c) {
         if (auto s = host_check(t); !s.ok()) return s;
         c.admin_host = t;
         return Status::Ok();
       }},
      {"ADMIN_PORT", "admin-port", "9090", "Port of the admin listener (0 picks a free one)", "", false,
       int_field(&Config::admin_port, 0, 65535)},
      {"ADMIN_TOKEN", "admin-token", "",
       "Bearer token the admin listener requires; required when ADMIN_HOST is not loopback", "", true,
       text_field(&Config::admin_token)},
      {"IO_THREADS", "io-threads", "1", "Threads serving HTTP, one io_context each", "", false,
       int_field(&Config::io_threads, 1, 256)},
      {"WORKER_THREADS", "worker-threads", "4",
       "Threads for blocking and heavy work (like UV_THREADPOOL_SIZE)", "", false,
       int_field(&Config::worker_threads, 1, 256)},
      {"WORKER_QUEUE_LIMIT", "worker-queue-limit", "0",
       "Request tasks (kb, MCP) waiting for a worker; above it 503 + Retry-After (0: WORKER_THREADS * 64)", "",
       false, int_field(&Config::worker_queue_limit, 0, 1 << 20)},
      {"HTTP_HEADER_LIMIT", "http-header-limit", "16KB", "Largest request head accepted (431 above)", "",
       false, byte_field(&Config::http_header_limit, 1ull << 20)},
      {"HTTP_BODY_LIMIT", "http-body-limit", "1MB", "Largest request body accepted (413 above)", "",
       false, byte_field(&Config::http_body_limit, 1ull << 30)},
      {"HTTP_READ_TIMEOUT", "http-read-timeout", "10s",
       "Time a client has to send a whole request once it starts (408 after)", "", false,
       duration_field(&Config::http_read_timeout)},
      {"HTTP_IDLE_TIMEOUT", "http-idle-timeout", "60s", "Time an idle keep-alive connection is kept",
       "", false, duration_field(&Config::http_idle_timeout)},
      {"MAX_CONNECTIONS", "max-connections", "0",
       "Open connections the public listener keeps at most (0: the open-file limit less 256 kept for Redis, files "
       "and the admin listener's own 64); at the cap the oldest idle keep-alive connection is closed first, else a "
       "new one gets 503",
       "", false, int_field(&Config::max_connections, 0, 1'000'000)},
      {"SHUTDOWN_TIMEOUT", "shutdown-timeout", "10s",
       "On SIGTERM/SIGINT, how long requests in flight may take to finish", "", false,
       duration_field(&Config::shutdown_timeout)},
      {"LOG_LEVEL", "log-level", "info", "trace, debug, info, warn, error or off", "", false,
       [](const std::string& t, Config& c) {
         static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
         for (const char* l : kLevels)
           if (t == l) {
             c.log_level = t;
             return Status::Ok();
           }
         return InvalidArgument("expected one of trace, debug, info, warn, error, critical, off");
       }},
      {"LOG_FORMAT", "log-format", "text", "text (for people) or json (one object a line)", "", false,
       [](const std::string& t, Config& c) {
         if (t == "text") c.log_format = LogFormat::kText;
         else if (t == "json") c.log_format = LogFormat::kJson;
         else return InvalidArgument("expected text or json");
         return Status::Ok();
       }},
      {"INSTANCE_ID", "instance-id", "", "Name of this instance in the fleet (default: hostname-pid)",
       "", false, text_field(&Config::instance_id)},
      {"REDIS_URL", "redis-url", "",
       "redis://[user][:password]@host:port[/db], rediss://..., unix:///path, or "
       "redis-sentinel://[user:password@]h1:26379,h2:26379/MASTER[?db=N] (rediss-sentinel:// for TLS), or "
       "redis-cluster://[user:password@]h1:6379,h2:6379 (Redis Cluster; rediss-cluster:// for TLS); "
       "unset: local coordination",
       "", true,
       [](const std::string& t, Config& c) {
         if (!t.empty() && t.rfind("redis://", 0) != 0 && t.rfind("rediss://", 0) != 0 &&
             t.rfind("unix://", 0) != 0 && t.rfind("redis-sentinel://", 0) != 0 &&
             t.rfind("rediss-sentinel://", 0) != 0 && t.rfind("redis-cluster://", 0) != 0 &&
             t.rfind("rediss-cluster://", 0) != 0)
           return InvalidArgument(
               "expected redis://..., rediss://..., unix:///path, redis-sentinel://h1:26379,h2:26379/MASTER or "
               "redis-cluster://h1:6379,h2:6379");
         c.redis_url = t;
         return Status::Ok();
       }},
      {"REDIS_SENTINEL_PASSWORD", "redis-sentinel-password", "",
       "Password of the Redis Sentinels (redis-sentinel:// URLs; the master's is in the URL)", "", true,
       text_field(&Config::redis_sentinel_password)},
      {"REDIS_WAIT_REPLICAS", "redis-wait-replicas", "0",
       "After taking a lock and after publishing an artifact, WAIT for this many Redis replicas to acknowledge "
       "(within half of REDIS_COMMAND_TIMEOUT); fewer: the lock is not taken, the artifact not published",
       "", false, int_field(&Config::redis_wait_replicas, 0, 16)},
      {"REDIS_TLS_CA", "redis-tls-ca", "", "CA certificate file for rediss:// servers with a private CA", "",
       false, text_field(&Config::redis_tls_ca)},
      {"REDIS_TLS_INSECURE", "redis-tls-insecure", "false",
       "Skip Redis TLS certificate checks (development only; logged as a warning)", "", false,
       bool_field(&Config::redis_tls_insecure)},
      {"REDIS_CONNECT_TIMEOUT", "redis-connect-timeout", "2s", "How long to wait for Redis to answer", "",
       false, duration_field(&Config::redis_connect_timeout)},
      {"REDIS_COMMAND_TIMEOUT", "redis-command-timeout", "2s", "How long one Redis command may take", "",
       false, duration_field(&Config::redis_command_timeout)},
      {"COORD_LOCAL_DIR", "coord-local-dir", "/tmp/memgate-coord",
       "Where local coordination (no Redis) keeps its lock files and artifacts", "", false,
       text_field(&Config::coord_local_dir)},
      {"ARTIFACT_CHUNK_SIZE", "artifact-chunk-size", "512KB", "Artifacts larger than this are stored in chunks",
       "", false, byte_field(&Config::artifact_chunk_size, 512ull << 20)},
      {"FLEET_WAIT_BOUND", "fleet-wait-bound", "5m",
       "How long an instance waits for another instance's build before giving up", "", false,
       duration_field(&Config::fleet_wait_bound)},
      {"FLEET_PEER_WAIT", "fleet-peer-wait", "30s",
       "How long an instance without the headroom to build waits for another instance's artifact before it builds "
       "within a budget or is skipped(memory)",
       "", false, duration_field(&Config::fleet_peer_wait)},
      {"ARTIFACT_MAX_SIZE", "artifact-max-size", "4GB",
       "An artifact whose metadata declares more than this is refused (rebuilt) before anything is allocated", "",
       false, byte_field(&Config::artifact_max_size, 64ull << 30)},
      {"ENABLE_AI_ROUTES", "enable-ai-routes", "true", "Load the AI routes (the coach)", "", false,
       bool_field(&Config::enable_ai_routes)},
      {"ENABLE_KB_SERVICE", "enable-kb-service", "false", "Load the knowledge-base (MCP) service", "",
       false, bool_field(&Config::enable_kb_service)},
      {"ENABLE_SCHEDULED_JOBS", "enable-scheduled-jobs", "false", "Start the job scheduler", "", false,
       bool_field(&Config::enable_scheduled_jobs)},
      {"MEMORY_LIMIT", "memory-limit", "4096MB",
       "Heap limit (the old --max-old-space-size); shares are of the container limit", "", false,
       size_field(&Config::memory_limit)},
      {"SCHEDULER_HEAP_GATE", "scheduler-heap-gate", "2GB", "The scheduler starts only below this heap",
       "", false, size_field(&Config::scheduler_heap_gate)},
      {"KB_HEAP_GATE", "kb-heap-gate", "1.5GB", "The knowledge base initialises only below this heap", "",
       false, size_field(&Config::kb_heap_gate)},
      {"HEAP_ALERT_THRESHOLD", "heap-alert-threshold", "3GB", "Above this heap: alert and purge", "",
       false, size_field(&Config::heap_alert_threshold)},
      {"MONITOR_INTERVAL", "monitor-interval", "30s", "How often the memory monitor samples", "", false,
       duration_field(&Config::monitor_interval)},
      {"HEAP_SHED_THRESHOLD", "heap-shed-threshold", "3.5GB",
       "Above this heap: shed heavy routes, refuse optional init, no keep-alive, purge", "", false,
       size_field(&Config::heap_shed_threshold)},
      {"CGROUP_PRESSURE_THRESHOLD", "cgroup-pressure-threshold", "90%",
       "Above this share (or size) of the container limit in use: purge, shed, refuse optional init, alert", "",
       false, size_field(&Config::cgroup_pressure_threshold)},
      {"GUARD_HYSTERESIS", "guard-hysteresis", "10%",
       "A memory trigger clears only this far below its threshold", "", false,
       [](const std::string& t, Config& c) {
         auto r = parse_size(t);
         if (!r || !r->is_share || r->share >= 1.0)
           return InvalidArgument("expected a share below 100% such as 10%");
         c.guard_hysteresis = r->share;
         return Status::Ok();
       }},
      {"SNAPSHOT_STREAM", "snapshot-stream", "memgate:memory:snapshots",
       "Redis stream that keeps alert snapshots across the fleet", "", false, text_field(&Config::snapshot_stream)},
      {"SNAPSHOT_STREAM_MAXLEN", "snapshot-stream-maxlen", "1000", "Approximate cap of that stream's length", "",
       false, int_field(&Config::snapshot_stream_maxlen, 1, 1'000'000)},
      {"MEMGATE_HEAP_PROFILE", "heap-profile", "false",
       "Turn jemalloc heap profiling on (GET /debug/pprof/heap; alerts dump profiles)", "", false,
       bool_field(&Config::heap_profile)},
      {"HEAP_PROFILE_INTERVAL", "heap-profile-interval", "10m", "At most one alert heap profile per this much time",
       "", false, duration_field(&Config::heap_profile_interval)},
      {"PROFILE_DIR", "profile-dir", "/tmp", "Where heap profiles are written", "", false,
       text_field(&Config::profile_dir)},
      {"ALLOCATION_ACCOUNTING", "allocation-accounting", "true",
       "Account bytes allocated per request by route (jemalloc thread counters)", "", false,
       bool_field(&Config::allocation_accounting)},
      {"STAGE_DELAY", "stage-delay", "1s", "Pause between start-up stages", "", false,
       duration_field(&Config::stage_delay)},
      {"STAGE_BATCH_SIZE", "stage-batch-size", "1", "Modules loaded at once inside a stage", "", false,
       int_field(&Config::stage_batch_size, 1, 64)},
      {"GATE_RETRIES", "gate-retries", "10",
       "How many times a memory-gated module is retried before it is skipped(memory)", "", false,
       int_field(&Config::gate_retries, 0, 1000)},
      {"GATE_RETRY_INTERVAL", "gate-retry-interval", "30s", "Pause between retries of a memory-gated module", "",
       false, duration_field(&Config::gate_retry_interval)},
      {"STARTUP_MODE", "startup-mode", "staged",
       "staged (stage by stage, purged between), budgeted (stage order without delays, modules together while "
       "their predicted peaks fit STARTUP_MEMORY_BUDGET) or eager (every module at once, for comparison)",
       "", false,
       [](const std::string& t, Config& c) {
         c.startup_eager = t == "eager";
         c.startup_budgeted = t == "budgeted";
         if (t != "staged" && t != "eager" && t != "budgeted") return InvalidArgument("expected staged, budgeted or eager");
         return Status::Ok();
       }},
      {"STARTUP_MEMORY_BUDGET", "startup-memory-budget", "50%",
       "The RSS the process may reach while modules load together: what it holds plus their predicted peaks "
       "(shares are of the container limit, else MEMORY_LIMIT)",
       "", false, size_field(&Config::startup_memory_budget)},
      {"MEMORY_MARGIN", "memory-margin", "5%",
       "Kept free below both the heap limit and the container limit when deciding whether a build or load fits",
       "", false, size_field(&Config::memory_margin)},
      {"REQUEST_METRICS", "request-metrics", "true",
       "Count requests and their latency by route and status", "", false,
       bool_field(&Config::request_metrics)},
      {"MEMGATE_TEST_ROUTES", "test-routes", "false",
       "Serve the test-only routes /test/sleep and /test/alloc (never in production)", "", false,
       bool_field(&Config::test_routes)},
  };
  return table;
}

// The value as it may appear in a one-line error: control bytes become \xNN, and
// a very long value is cut.
std::string printable(const std::string& text, size_t max = 200) {
  std::string out;
  for (unsigned char c : text.substr(0, max)) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max) out += "...";
  return out;
}

bool is_secret_setting(std::string_view env) {
  for (const Setting& s : settings())
    if (env == s.env) return s.secret;
  return false;
}

// A query parameter whose value is a credential: password=, token=, key= and
// their kin (pass, pwd, secret, auth, api_key, access_token, ...).
bool is_secret_parameter(std::string_view name) {
  std::string n(name);
  for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word : {"pass", "pwd", "token", "key", "secret", "auth", "credential", "signature", "sig"})
    if (n.find(word) != std::string::npos) return true;
  return false;
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}

std::string default_instance_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
  return std::string(host) + "-" + std::to_string(getpid());
}

}  // namespace

std::string setting_error(const SettingRow& row, const std::string& source, const std::string& text,
                          const std::string& detail) {
  std::string shown;
  if (!row.secret) shown = redact_url(printable(text));
  else if (std::string_view(row.env).ends_with("_URL")) shown = redact_url(printable(text));
  else shown = "<redacted>";
  // The parser's detail may quote part of the value: keep the line one line,
  // and a secret's detail to its accepted form.
  std::string why = row.secret ? detail.substr(0, detail.find(" (")) : printable(detail, 400);
  return source + "='" + shown + "' is not valid: " + why;
}

const SettingRows& runtime_settings() {
  static const SettingRows rows = [] {
    SettingRows out;
    for (const Setting& s : settings()) {
      SettingRow row;
      row.env = s.env;
      row.flag = s.flag;
      row.default_text = s.default_text;
      row.help = s.help;
      row.secret = s.secret;
      row.check = [apply = s.apply](const std::string& text) {
        Config scratch;
        return apply(text, scratch);
      };
      out.push_back(std::move(row));
    }
    return out;
  }();
  return rows;
}

EnvLookup settings_lookup(const Invocation& inv) {
  return [values = inv.values](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

Invocation parse_invocation(const std::vector<std::string>& args, const EnvLookup& env,
                            const SettingRows& module_rows) {
  Invocation inv;
  inv.module_rows = module_rows;
  CLI::App app{"memgate: a backend that boots heavy modules without memory spikes.\n"
               "Every option is also read from the environment variable named in brackets;\n"
               "a flag wins over the variable, the variable over the default.",
               "memgate"};
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.get_formatter()->column_width(34);

  const auto& table = settings();
  std::vector<std::string> flag_values(table.size());
  std::vector<CLI::Option*> options(table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    const Setting& s = table[i];
    std::string desc = std::string(s.help) + " [" + s.env + "]";
    if (*s.default_text) desc += " (default: " + std::string(s.default_text) + ")";
    options[i] = app.add_option(std::string("--") + s.flag, flag_values[i], desc)->type_name("");
  }
  // The modules' rows, each in its module's group of --help. A name or flag
  // given twice is a bug in a module's table: refuse it before anything runs.
  std::vector<std::string> module_values(module_rows.size());
  std::vector<CLI::Option*> module_options(module_rows.size());
  std::map<std::string, int> seen;
  for (const Setting& s : table) seen[s.env] = seen[std::string("--") + s.flag] = 1;
  for (size_t i = 0; i < module_rows.size(); ++i) {
    const SettingRow& r = module_rows[i];
    if (seen[r.env]++ || seen["--" + r.flag]++) {
      inv.output = "memgate: the setting " + r.env + " (--" + r.flag + ") is declared twice in the settings table";
      inv.exit_code = 2;
      return inv;
    }
    std::string desc = r.help + " [" + r.env + "]";
    if (!r.default_text.empty()) desc += " (default: " + r.default_text + ")";
    else if (!r.default_note.empty()) desc += " (default: " + r.default_note + ")";
    module_options[i] = app.add_option("--" + r.flag, module_values[i], desc)->type_name("");
    if (!r.section.empty()) module_options[i]->group(r.section);
  }
  auto* check = app.add_subcommand("check-config", "Print the resolved configuration (secrets redacted) and exit");
  auto* plan = app.add_subcommand("plan", "Print the start-up plan this configuration would run, without running it");
  // `memgate kb ...` is dispatched before this parser runs (it has options of
  // its own); it is declared here so that --help lists every subcommand.
  app.add_subcommand("kb",
                     "Offline knowledge-base tools: kb build DIR -o FILE, kb info FILE, kb export FILE -o DB, "
                     "kb search FILE QUERY (see memgate kb --help)")
      ->allow_extras()
      ->prefix_command();

  std::vector<std::string> reversed(args.rbegin(), args.rend() - (args.empty() ? 0 : 1));
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    inv.output = app.help();
    inv.exit_code = 0;
    return inv;
  } catch (const CLI::ParseError& e) {
    inv.output = "memgate: " + printable(e.what()) + " (see memgate --help)";
    inv.exit_code = 2;
    return inv;
  }

  for (size_t i = 0; i < table.size(); ++i) {
    const Setting& s = table[i];
    std::string text;
    std::string source_name;
    if (options[i]->count() > 0) {
      text = flag_values[i];
      source_name = std::string("--") + s.flag;
    } else if (auto v = env(s.env)) {
      text = *v;
      source_name = s.env;
    } else {
      text = s.default_text;
      source_name = std::string("default of ") + s.env;
    }
    if (text.empty() && !*s.default_text) continue;  // unset optional setting
    Status st = s.apply(text, inv.config);
    if (!st.ok()) {
      inv.output = "memgate: " + setting_error(runtime_settings()[i], source_name, text, st.message());
      inv.exit_code = 2;
      return inv;
    }
    inv.values[s.env] = text;
  }
  for (size_t i = 0; i < module_rows.size(); ++i) {
    const SettingRow& r = module_rows[i];
    std::string text;
    std::string source_name;
    if (module_options[i]->count() > 0) {
      text = module_values[i];
      source_name = "--" + r.flag;
    } else if (auto v = env(r.env)) {
      text = *v;
      source_name = r.env;
    } else {
      text = r.default_text;
      source_name = "default of " + r.env;
    }
    if (text.empty() && r.default_text.empty()) continue;  // unset optional setting
    if (r.check) {
      if (Status st = r.check(text); !st.ok()) {
        inv.output = "memgate: " + setting_error(r, source_name, text, st.message());
        inv.exit_code = 2;
        return inv;
      }
    }
    inv.values[r.env] = text;
  }

  Config& c = inv.config;
  if (c.instance_id.empty()) c.instance_id = default_instance_id();
  if (!is_loopback(c.admin_host) && c.admin_token.empty()) {
    inv.output = "memgate: ADMIN_HOST='" + printable(c.admin_host) +
                 "' is not valid: the admin listener serves heap profiles and metrics; off loopback it "
                 "needs ADMIN_TOKEN";
    inv.exit_code = 2;
    return inv;
  }
  if (c.port != 0 && c.port == c.admin_port && c.host == c.admin_host) {
    inv.output = "memgate: ADMIN_PORT='" + std::to_string(c.admin_port) +
                 "' is not valid: it must differ from PORT on the same host";
    inv.exit_code = 2;
    return inv;
  }
  if (check->parsed()) inv.command = Command::kCheckConfig;
  if (plan->parsed()) inv.command = Command::kPlan;
  return inv;
}

std::string describe(const Config& c) {
  std::ostringstream out;
  // The one place values are made safe to print: a setting marked secret in the
  // table shows as <redacted> (a URL: with its credentials hidden), and any
  // other value that is a URL loses its credentials too.
  auto row = [&](const char* name, const std::string& value) {
    std::string shown = value;
    // A secret URL setting (REDIS_URL) stays readable with its credentials hidden;
    // any other secret (a token) is hidden whole, whatever it looks like.
    if (is_secret_setting(name) && !value.empty())
      shown = std::string_view(name).ends_with("_URL") ? redact_url(value) : "<redacted>";
    else
      shown = redact_url(value);
    out << name << "=" << shown << "\n";
  };
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  auto d = [](std::chrono::milliseconds v) { return format_duration(v); };
  row("HOST", c.host);
  row("PORT", std::to_string(c.port));
  row("ADMIN_HOST", c.admin_host);
  row("ADMIN_PORT", std::to_string(c.admin_port));
  row("ADMIN_TOKEN", c.admin_token);
  row("IO_THREADS", std::to_string(c.io_threads));
  row("WORKER_THREADS", std::to_string(c.worker_threads));
  row("WORKER_QUEUE_LIMIT", std::to_string(c.worker_queue_limit));
  row("HTTP_HEADER_LIMIT", SizeSpec::Bytes(c.http_header_limit).to_string());
  row("HTTP_BODY_LIMIT", SizeSpec::Bytes(c.http_body_limit).to_string());
  row("HTTP_READ_TIMEOUT", d(c.http_read_timeout));
  row("HTTP_IDLE_TIMEOUT", d(c.http_idle_timeout));
  row("MAX_CONNECTIONS", std::to_string(c.max_connections));
  row("SHUTDOWN_TIMEOUT", d(c.shutdown_timeout));
  row("LOG_LEVEL", c.log_level);
  row("LOG_FORMAT", c.log_format == LogFormat::kJson ? "json" : "text");
  row("INSTANCE_ID", c.instance_id);
  row("REDIS_URL", redact_url(c.redis_url));
  row("REDIS_SENTINEL_PASSWORD", c.redis_sentinel_password);
  row("REDIS_WAIT_REPLICAS", std::to_string(c.redis_wait_replicas));
  row("REDIS_TLS_CA", c.redis_tls_ca);
  row("REDIS_TLS_INSECURE", b(c.redis_tls_insecure));
  row("REDIS_CONNECT_TIMEOUT", d(c.redis_connect_timeout));
  row("REDIS_COMMAND_TIMEOUT", d(c.redis_command_timeout));
  row("COORD_LOCAL_DIR", c.coord_local_dir);
  row("ARTIFACT_CHUNK_SIZE", SizeSpec::Bytes(c.artifact_chunk_size).to_string());
  row("FLEET_WAIT_BOUND", d(c.fleet_wait_bound));
  row("FLEET_PEER_WAIT", d(c.fleet_peer_wait));
  row("ARTIFACT_MAX_SIZE", SizeSpec::Bytes(c.artifact_max_size).to_string());
  row("ENABLE_AI_ROUTES", b(c.enable_ai_routes));
  row("ENABLE_KB_SERVICE", b(c.enable_kb_service));
  row("ENABLE_SCHEDULED_JOBS", b(c.enable_scheduled_jobs));
  row("MEMORY_LIMIT", c.memory_limit.to_string());
  row("SCHEDULER_HEAP_GATE", c.scheduler_heap_gate.to_string());
  row("KB_HEAP_GATE", c.kb_heap_gate.to_string());
  row("HEAP_ALERT_THRESHOLD", c.heap_alert_threshold.to_string());
  row("MONITOR_INTERVAL", d(c.monitor_interval));
  row("HEAP_SHED_THRESHOLD", c.heap_shed_threshold.to_string());
  row("CGROUP_PRESSURE_THRESHOLD", c.cgroup_pressure_threshold.to_string());
  row("GUARD_HYSTERESIS", SizeSpec::Share(c.guard_hysteresis).to_string());
  row("SNAPSHOT_STREAM", c.snapshot_stream);
  row("SNAPSHOT_STREAM_MAXLEN", std::to_string(c.snapshot_stream_maxlen));
  row("MEMGATE_HEAP_PROFILE", b(c.heap_profile));
  row("HEAP_PROFILE_INTERVAL", d(c.heap_profile_interval));
  row("PROFILE_DIR", c.profile_dir);
  row("ALLOCATION_ACCOUNTING", b(c.allocation_accounting));
  row("STAGE_DELAY", d(c.stage_delay));
  row("STAGE_BATCH_SIZE", std::to_string(c.stage_batch_size));
  row("GATE_RETRIES", std::to_string(c.gate_retries));
  row("GATE_RETRY_INTERVAL", d(c.gate_retry_interval));
  row("STARTUP_MODE", c.startup_eager ? "eager" : (c.startup_budgeted ? "budgeted" : "staged"));
  row("STARTUP_MEMORY_BUDGET", c.startup_memory_budget.to_string());
  row("MEMORY_MARGIN", c.memory_margin.to_string());
  row("REQUEST_METRICS", b(c.request_metrics));
  row("MEMGATE_TEST_ROUTES", b(c.test_routes));
  return out.str();
}

std::string describe(const Invocation& inv) {
  std::string out = describe(inv.config);
  for (const SettingRow& r : inv.module_rows) {
    auto it = inv.values.find(r.env);
    std::string value = it == inv.values.end() ? std::string() : it->second;
    std::string shown;
    if (r.secret && !value.empty())
      shown = std::string_view(r.env).ends_with("_URL") ? redact_url(value) : "<redacted>";
    else
      shown = redact_url(value);
    if (value.empty() && !r.default_note.empty()) shown = "(" + r.default_note + ")";
    out += r.env + "=" + shown + "\n";
  }
  return out;
}

std::string redact_url(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  size_t auth_start = scheme_end + 3;
  std::string out = url.substr(0, auth_start);
  size_t rest = auth_start;
  // The userinfo ends at an '@'. Passwords are not always percent-encoded (a '/',
  // a '?' or an '@' in them happens), so: the last '@' before the first '?',
  // else the last '@' at all. When unsure this hides too much, never too little.
  // "unix:///path" has no authority, so no userinfo.
  if (url.size() > auth_start && url[auth_start] != '/') {
    size_t query = url.find('?', auth_start);
    size_t at = url.rfind('@', query == std::string::npos ? std::string::npos : query);
    if (at == std::string::npos || at < auth_start) at = url.rfind('@');
    if (at != std::string::npos && at >= auth_start) {
      size_t colon = url.find(':', auth_start);
      if (colon != std::string::npos && colon < at)
        out += url.substr(auth_start, colon + 1 - auth_start) + "***";  // user:password: the user name stays
      else
        out += "***";  // a user alone is often a token (https://TOKEN@host)
      rest = at;
    }
  }
  // Query parameters that carry credentials: ?password=..., &token=..., key=...
  size_t query = url.find('?', rest);
  if (query == std::string::npos) return out + url.substr(rest);
  out += url.substr(rest, query + 1 - rest);
  size_t fragment = url.find('#', query);
  std::string_view params(url.data() + query + 1,
                          (fragment == std::string::npos ? url.size() : fragment) - query - 1);
  size_t start = 0;
  while (start <= params.size()) {
    size_t amp = params.find('&', start);
    std::string_view p = params.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    size_t eq = p.find('=');
    if (eq != std::string_view::npos && is_secret_parameter(p.substr(0, eq)))
      out += std::string(p.substr(0, eq + 1)) + "***";
    else
      out += std::string(p);
    if (amp == std::string_view::npos) break;
    out += '&';
    start = amp + 1;
  }
  if (fragment != std::string::npos) out += url.substr(fragment);
  return out;
}

bool secret_equals(std::string_view given, std::string_view expected) {
  // No early exit: the time depends on the lengths only, never on where the
  // first difference is. volatile keeps the compiler from adding one.
  size_t n = std::max(given.size(), expected.size());
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    unsigned char b = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0;
    diff = diff | static_cast<unsigned char>(a ^ b);
  }
  return diff == 0;
}

}  // namespace memgate
