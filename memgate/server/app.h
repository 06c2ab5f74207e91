// App: the whole memgate process, wired from a Config.
//
// Owns the memory probe, the metrics registry, the public listener (/healthz,
// /readyz, /startupz and, later, the modules' routes) and the admin listener
// (/metrics, /debug/memory), plus the worker pool for blocking work. start()
// brings the listeners up; run() also waits for SIGTERM/SIGINT and stops
// gracefully. Not thread-safe: one owner thread calls start/stop/run; the
// accessors are safe from any thread once started.
#pragma once

#include <cstdint>
#include <memory>

#include "memgate/base/config.h"
#include "memgate/base/status.h"

namespace memgate::server {

class App {
 public:
  // env: where modules read their own variables (flags, module settings).
  App(Config config, EnvLookup env);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Binds both listeners and starts serving. Fails (and leaves nothing running)
  // when a port is taken or an address is bad; the Status names which listener.
  Status start();

  // Stops accepting, lets requests in flight finish up to SHUTDOWN_TIMEOUT, stops.
  void stop();

  // start(), then serve until SIGTERM or SIGINT, then stop(). Returns the process
  // exit code: 0 after a signal, 1 when start() failed (after logging why).
  int run();

  uint16_t port() const;
  uint16_t admin_port() const;

  // The start-up plan `memgate plan` prints: what would run, without running it.
  static Result<std::string> plan(const Config& config, const EnvLookup& env);
  // `memgate plan --probes`: Kubernetes probe settings for this configuration
  // (YAML to paste into a container spec), with the startup probe's failure
  // budget derived from the expected start-up and the sum that gives it.
  static Result<std::string> probes(const Config& config, const EnvLookup& env);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace memgate::server
