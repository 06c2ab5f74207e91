// Config: every setting memgate reads, from command-line flags and the environment.
//
// Each setting has an environment variable (PORT) and a flag (--port); a flag wins
// over the variable, the variable over the default. Values are validated here, once:
// a bad one is reported as a single line that names the variable (or flag), the
// value, and the form it accepts, and the process exits with code 2. Secrets
// are never printed: describe() shows every setting the table marks secret as
// <redacted> (a URL with its credentials hidden), and redact_url() hides the
// credentials of any URL it prints.
//
// Not thread-safe to build; a built Config is an immutable value.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/base/units.h"

namespace memgate {

enum class LogFormat { kText, kJson };

struct Config {
  // Listeners.
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 9090;
  std::string admin_token;  // secret; when set, admin routes require "Authorization: Bearer <token>"
  int io_threads = 1;
  int worker_threads = 4;
  int worker_queue_limit = 0;  // WORKER_QUEUE_LIMIT: request tasks waiting for a worker; 0: WORKER_THREADS * 64

  // HTTP limits.
  uint64_t http_header_limit = 16 * 1024;
  uint64_t http_body_limit = 1024 * 1024;
  std::chrono::milliseconds http_read_timeout{10'000};
  std::chrono::milliseconds http_idle_timeout{60'000};
  int max_connections = 0;  // MAX_CONNECTIONS; 0: from RLIMIT_NOFILE
  std::chrono::milliseconds shutdown_timeout{10'000};

  // Logging.
  std::string log_level = "info";
  LogFormat log_format = LogFormat::kText;

  // Identity and coordination.
  std::string instance_id;  // default: hostname-pid
  std::string redis_url;    // secret (may hold a password); empty: local coordination
  std::string redis_sentinel_password;  // secret: AUTH to the sentinels of a redis-sentinel:// URL
  int redis_wait_replicas = 0;          // WAIT for this many replicas after an acquire and a publish
  std::string redis_tls_ca;          // CA file for rediss:// with a private CA
  bool redis_tls_insecure = false;   // skip certificate checks (development only)
  std::chrono::milliseconds redis_connect_timeout{2'000};
  std::chrono::milliseconds redis_command_timeout{2'000};
  std::string coord_local_dir = "/tmp/memgate-coord";  // lock files without Redis
  uint64_t artifact_chunk_size = 512 * 1024;
  std::chrono::milliseconds fleet_wait_bound{300'000};
  std::chrono::milliseconds fleet_peer_wait{30'000};  // FLEET_PEER_WAIT
  uint64_t artifact_max_size = 4ull << 30;            // ARTIFACT_MAX_SIZE

  // Modules and gates (defaults from the original guide).
  bool enable_ai_routes = true;
  bool enable_kb_service = false;
  bool enable_scheduled_jobs = false;
  SizeSpec memory_limit = SizeSpec::Bytes(4096ull << 20);
  SizeSpec scheduler_heap_gate = SizeSpec::Bytes(2ull << 30);
  SizeSpec kb_heap_gate = SizeSpec::Bytes(1536ull << 20);
  SizeSpec heap_alert_threshold = SizeSpec::Bytes(3ull << 30);
  std::chrono::milliseconds monitor_interval{30'000};
  SizeSpec heap_shed_threshold = SizeSpec::Bytes(3584ull << 20);
  SizeSpec cgroup_pressure_threshold = SizeSpec::Share(0.9);
  double guard_hysteresis = 0.1;
  std::string snapshot_stream = "memgate:memory:snapshots";
  int snapshot_stream_maxlen = 1000;
  bool heap_profile = false;  // MEMGATE_HEAP_PROFILE
  std::chrono::milliseconds heap_profile_interval{600'000};
  std::string profile_dir = "/tmp";
  bool allocation_accounting = true;
  std::chrono::milliseconds stage_delay{1'000};
  int stage_batch_size = 1;
  int gate_retries = 10;
  std::chrono::milliseconds gate_retry_interval{30'000};
  bool startup_eager = false;  // STARTUP_MODE=eager: every module at once (for comparison)
  bool startup_budgeted = false;  // STARTUP_MODE=budgeted: no stage delays, together while peaks fit
  SizeSpec startup_memory_budget = SizeSpec::Share(0.5);
  SizeSpec memory_margin = SizeSpec::Share(0.05);

  // Metrics.
  bool request_metrics = true;

  // Test-only routes (/test/sleep, /test/alloc): off unless a test turns them on.
  bool test_routes = false;
};

// What the command line asked for.
enum class Command { kServe, kCheckConfig, kPlan };

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// One row of the settings table: a setting named once, with its variable, its
// flag, its default as text (parsed by the same code as user input), a line of
// help, whether it is secret, and the check its text must pass. The runtime's
// own rows (runtime_settings(), written into Config) and the rows each module
// contributes (its folder's settings(), read back by the module through the
// lookup the runtime hands it) form the one table that drives --help, parsing,
// check-config and docs/operations.md.
struct SettingRow {
  std::string env;           // PORT
  std::string flag;          // port (without the dashes)
  std::string default_text;  // "" means unset
  std::string help;          // one line, for --help and the docs
  bool secret = false;       // never printed: <redacted> (a *_URL: its credentials hidden)
  std::string section;       // the --help group; "" for the runtime's own rows
  std::string default_note;  // when the default is computed (default_text ""): how, e.g. "WORKER_THREADS"
  // Checks the text; fails with the accepted form ("expected ..."), never quoting the value.
  std::function<Status(const std::string&)> check;
};
using SettingRows = std::vector<SettingRow>;

// A module's row in its --help `section` (no check yet: to_rows() adds it).
inline SettingRow module_row(std::string section, std::string env, std::string flag, std::string default_text,
                             std::string help, bool secret = false) {
  SettingRow r;
  r.env = std::move(env);
  r.flag = std::move(flag);
  r.default_text = std::move(default_text);
  r.help = std::move(help);
  r.secret = secret;
  r.section = std::move(section);
  return r;
}

// The runtime's own rows, in --help order (each one a field of Config).
const SettingRows& runtime_settings();

// A row that also knows how its text becomes a field of a module's options (T):
// a module keeps a list of these, hands the runtime to_rows() of it, and reads
// its options with apply_rows(), so its defaults and checks are written once.
template <typename T>
struct OptionRow {
  SettingRow row;  // row.check is filled in by to_rows()
  std::function<Status(const std::string&, T&)> apply;  // fails with "expected ..."
};

// One error line for a bad value: "NAME='value' is not valid: <detail>", with a
// secret's value shown as <redacted> (a *_URL's with its credentials hidden)
// and control bytes escaped. `source` is the variable or the flag it came from.
std::string setting_error(const SettingRow& row, const std::string& source, const std::string& text,
                          const std::string& detail);

template <typename T>
SettingRows to_rows(const std::vector<OptionRow<T>>& rows) {
  SettingRows out;
  for (const OptionRow<T>& r : rows) {
    SettingRow row = r.row;
    row.check = [apply = r.apply](const std::string& text) {
      T scratch{};
      return apply(text, scratch);
    };
    out.push_back(std::move(row));
  }
  return out;
}

// Applies each row's text, from `lookup` or else its default, to `options`; an
// unset row with no default is left alone. Fails with kInvalidArgument and
// setting_error()'s line for the first bad value.
template <typename T>
Status apply_rows(const std::vector<OptionRow<T>>& rows, const EnvLookup& lookup, T& options) {
  for (const OptionRow<T>& r : rows) {
    std::optional<std::string> given = lookup ? lookup(r.row.env) : std::nullopt;
    std::string text = given ? *given : r.row.default_text;
    if (text.empty() && r.row.default_text.empty()) continue;
    Status st = r.apply(text, options);
    if (!st.ok()) return InvalidArgument(setting_error(r.row, r.row.env, text, st.message()));
  }
  return Status::Ok();
}

struct Invocation {
  Command command = Command::kServe;
  Config config;
  int exit_code = -1;   // >= 0: stop now with this code (after --help, or an error)
  std::string output;   // what to print before stopping (help text, or the error line)
  // The modules' rows this invocation was parsed with, and the resolved text of
  // every row of the table (flag, else variable, else default; absent: unset).
  SettingRows module_rows;
  std::map<std::string, std::string> values;
};

// Parses argv (argv[0] is the program name) and the environment against the
// runtime's rows and the modules' rows. Never exits and never prints: the
// caller prints `output` and exits with `exit_code` when it is set.
// Errors give exit code 2 and a one-line `output` such as
//   memgate: PORT='80a' is not valid: expected a port number 1-65535 (not a whole number)
// A module row's name clashing with another row's is a programming error
// reported the same way.
Invocation parse_invocation(const std::vector<std::string>& args, const EnvLookup& env,
                            const SettingRows& module_rows = {});

// What the modules read their settings through: the resolved text of a row of
// the table (flag, else variable, else default); nullopt for an unset row and
// for a name that is not in the table (a setting must have a row).
EnvLookup settings_lookup(const Invocation& invocation);

// One line per runtime setting, "NAME=value", with secrets shown as "<redacted>".
std::string describe(const Config& config);
// The same, followed by one line per module row (what check-config prints).
std::string describe(const Invocation& invocation);

// Returns the URL with its credentials replaced by "***": safe to log. Hides the
// password of user:password@ (the user name stays), a userinfo without a
// password as a whole (it is often a token), and the value of every query
// parameter that names a credential (password=, token=, key=, secret=, auth=,
// and names containing them such as api_key or access_token). Passwords that
// were not percent-encoded ('/', '?', '@' in them) are still hidden. A text
// without "://" is returned as it is.
std::string redact_url(const std::string& url);

// Compares a secret the caller was given with the one expected (ADMIN_TOKEN),
// in a time that depends only on the two lengths, never on their contents: no
// early exit at the first difference, so response times reveal nothing of the
// token's prefix.
bool secret_equals(std::string_view given, std::string_view expected);

}  // namespace memgate
