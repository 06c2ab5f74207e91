// Test support: free loopback ports, temporary directories and child processes.
//
// Subprocess starts a program with fork/exec, optionally sending its stdout and
// stderr to a file, and kills (SIGKILL) and reaps it by its pid when destroyed if
// it is still running. It never signals anything but its own child. A Subprocess
// object is used from one thread at a time. The child also gets PR_SET_PDEATHSIG
// = SIGKILL, so it does not outlive a test binary that crashes (start children
// from a thread that lives as long as they do, usually the test's main thread).
// With cgroup_procs_path set, the child writes its own pid to that file (a
// cgroup's cgroup.procs) before anything else, so it runs inside that cgroup
// from its first allocation (see memory_cgroup.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
uint16_t free_port();

// A fresh directory under $TMPDIR (or /tmp), named prefix-XXXXXX. The caller may
// remove it with remove_tree() when done.
std::string temp_dir(const std::string& prefix);

// Removes a directory tree; errors are ignored.
void remove_tree(const std::string& path);

// The path of the executable `name` found on PATH (/usr/bin:/bin when PATH is
// unset); empty when there is none, for a test to skip and say so.
std::string find_on_path(const std::string& name);

// Reads a whole file; empty string when it cannot be read.
std::string read_file(const std::string& path);

// Waits until `pred()` is true, checking every few milliseconds; false on timeout.
// For conditions outside the process (a child's log line, a server's port).
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

class Subprocess {
 public:
  // Starts argv[0] (looked up in PATH when it has no slash) with argv. extra_env is
  // added to (or overrides) the parent's environment. When log_path is set, stdout
  // and stderr are appended to it. When cgroup_procs_path is set, the child
  // joins that cgroup between fork and exec (open/write/close of its pid) and
  // start fails if it cannot. Fails when the program cannot be started.
  static Result<std::unique_ptr<Subprocess>> start(
      std::vector<std::string> argv,
      std::vector<std::pair<std::string, std::string>> extra_env = {},
      std::string log_path = "",
      std::string cgroup_procs_path = "");

  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it when it has).
  bool running();
  // Sends sig to the child, if it is still running.
  void signal(int sig);
  // Waits for the child to exit: its exit code, or 128 + signal number when a
  // signal ended it; nullopt when the timeout passes first.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  // The exit code once known.
  std::optional<int> exit_code() const { return exit_code_; }

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  bool reap(bool block);

  pid_t pid_;
  std::optional<int> exit_code_;
};

}  // namespace memgate::testing
