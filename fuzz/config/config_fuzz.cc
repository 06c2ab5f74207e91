// libFuzzer target: configuration parsing. The input is split into a setting name
// index and a value; the value is fed as that setting's environment variable, and
// also as its flag. Whatever the bytes, parsing must return an Invocation (never
// crash, never throw), an error must be one line with exit code 2, and a secret
// value must never appear in the error text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "memgate/base/config.h"
#include "memgate/base/units.h"

namespace {

const char* kNames[] = {"HOST", "PORT", "ADMIN_HOST", "ADMIN_PORT", "ADMIN_TOKEN", "IO_THREADS",
                        "WORKER_THREADS", "HTTP_HEADER_LIMIT", "HTTP_BODY_LIMIT", "HTTP_READ_TIMEOUT",
                        "LOG_LEVEL", "LOG_FORMAT", "REDIS_URL", "ENABLE_KB_SERVICE", "MEMORY_LIMIT",
                        "KB_HEAP_GATE", "MONITOR_INTERVAL", "STAGE_DELAY", "STAGE_BATCH_SIZE"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const char* name = kNames[data[0] % (sizeof kNames / sizeof kNames[0])];
  std::string value(reinterpret_cast<const char*>(data + 1), size - 1);

  // The unit parsers on their own.
  (void)memgate::parse_size(value);
  (void)memgate::parse_duration(value);
  (void)memgate::parse_bool(value);
  (void)memgate::parse_int(value, -5, 5);
  (void)memgate::redact_url(value);

  std::map<std::string, std::string> env{{name, value}};
  auto lookup = [&env](const std::string& n) -> std::optional<std::string> {
    auto it = env.find(n);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  memgate::Invocation inv = memgate::parse_invocation({"memgate"}, lookup);
  if (inv.exit_code == 2) {
    if (inv.output.find('\n') != std::string::npos) std::abort();
    bool secret = std::string(name) == "REDIS_URL" || std::string(name) == "ADMIN_TOKEN";
    if (secret && !value.empty() && inv.output.find("='" + value + "'") != std::string::npos) std::abort();
  } else if (inv.exit_code < 0) {
    (void)memgate::describe(inv.config);
  }
  return 0;
}
