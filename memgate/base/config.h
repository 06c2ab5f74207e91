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
#include <optional>
#include <string>
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

struct Invocation {
  Command command = Command::kServe;
  Config config;
  int exit_code = -1;   // >= 0: stop now with this code (after --help, or an error)
  std::string output;   // what to print before stopping (help text, or the error line)
};

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// Parses argv (argv[0] is the program name) and the environment. Never exits and
// never prints: the caller prints `output` and exits with `exit_code` when it is set.
// Errors give exit code 2 and a one-line `output` such as
//   memgate: PORT='80a' is not valid: expected a port number 1-65535 (not a whole number)
Invocation parse_invocation(const std::vector<std::string>& args, const EnvLookup& env);

// One line per setting, "NAME=value  (source)", with secrets shown as "<redacted>".
std::string describe(const Config& config);

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
