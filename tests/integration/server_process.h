// Starts the real memgate binary on free loopback ports for an integration test,
// optionally inside a memory cgroup from its first byte, waits until /healthz
// answers, and stops it (SIGKILL) by its pid when destroyed; its log's folder is
// removed then, unless the test has failed (the path is printed to keep it at
// hand). One thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/memory_cgroup.h"
#include "tests/support/process.h"

namespace memgate::testing {

class ServerProcess {
 public:
  using Env = std::vector<std::pair<std::string, std::string>>;
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  // Starts memgate (the binary named by MEMGATE_BINARY) with PORT and ADMIN_PORT set to
  // free ports plus `env`, and waits up to 10 s for /healthz. With `cgroup` set, the
  // process joins it between fork and exec, so all it allocates is charged there;
  // the cgroup must outlive the returned ServerProcess. Fails the test (ADD_FAILURE)
  // and returns null on error.
  static std::unique_ptr<ServerProcess> start(Env env = {}, std::vector<std::string> args = {},
                                              const MemoryCgroup* cgroup = nullptr);
  // The same, inside `cgroup` (not null).
  static std::unique_ptr<ServerProcess> start_in(const MemoryCgroup& cgroup, Env env = {},
                                                 std::vector<std::string> args = {}) {
    return start(std::move(env), std::move(args), &cgroup);
  }

  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }
  Subprocess& process() { return *process_; }
  const std::string& log_path() const { return log_path_; }
  std::string log() const;  // what the server printed so far

 private:
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  std::string log_path_;
  std::unique_ptr<Subprocess> process_;
};

// The path of the memgate binary under test.
std::string memgate_binary();

// Runs memgate to completion with `env` and `args`; returns exit code and output.
struct RunResult {
  int exit_code = -1;
  std::string output;
};
RunResult run_memgate(const ServerProcess::Env& env, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace memgate::testing
