// Child processes for tests: fork/exec with the environment and the output file
// prepared before the fork, so the child only calls async-signal-safe functions
// between fork and exec. Every child is tracked by its pid alone; nothing here
// looks processes up by name.
#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace memgate::testing {

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

std::string temp_dir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return "";
  return std::string(buf.data());
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  if (!path.empty()) std::filesystem::remove_all(path, ec);
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  return {};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

Result<std::unique_ptr<Subprocess>> Subprocess::start(
    std::vector<std::string> argv, std::vector<std::pair<std::string, std::string>> extra_env,
    std::string log_path, std::string cgroup_procs_path) {
  if (argv.empty()) return InvalidArgument("Subprocess::start: empty argv");

  // Environment: the parent's, with extra_env added or replaced.
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto& [k, v] : extra_env) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (auto& s : argv) args.push_back(s.data());
  args.push_back(nullptr);

  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return Internal("cannot open " + log_path + ": " + std::strerror(errno));
  }
  // A pipe that exec closes: the parent learns whether (and where) the child
  // failed before exec: {stage, errno}.
  enum : int { kStageExec = 0, kStageCgroup = 1 };
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    if (log_fd >= 0) ::close(log_fd);
    return Internal(std::string("pipe2: ") + std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    if (log_fd >= 0) ::close(log_fd);
    ::close(status_pipe[0]);
    ::close(status_pipe[1]);
    return Internal(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (!cgroup_procs_path.empty()) {
      // Join the cgroup first, before this child touches any more memory. Only
      // open/write/close here, and the pid is formatted by hand on the stack.
      char digits[24];
      char* end = digits + sizeof digits;
      char* p = end;
      for (long v = ::getpid(); p == end || v > 0; v /= 10) *--p = static_cast<char>('0' + v % 10);
      int fd = ::open(cgroup_procs_path.c_str(), O_WRONLY | O_CLOEXEC);
      bool joined = fd >= 0 && ::write(fd, p, end - p) == end - p;
      int failure[2] = {kStageCgroup, errno};
      if (fd >= 0) ::close(fd);
      if (!joined) {
        ssize_t ignored = ::write(status_pipe[1], failure, sizeof failure);
        (void)ignored;
        ::_exit(127);
      }
    }
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    // Reset the signal mask and dispositions a test runner may have changed.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execvpe(args[0], args.data(), envp.data());
    int failure[2] = {kStageExec, errno};
    ssize_t ignored = ::write(status_pipe[1], failure, sizeof failure);
    (void)ignored;
    ::_exit(127);
  }
  ::close(status_pipe[1]);
  if (log_fd >= 0) ::close(log_fd);
  int failure[2] = {kStageExec, 0};
  ssize_t n;
  do {
    n = ::read(status_pipe[0], failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  std::unique_ptr<Subprocess> proc(new Subprocess(pid));
  if (n == static_cast<ssize_t>(sizeof failure)) {
    proc->wait_for(std::chrono::seconds(5));
    if (failure[0] == kStageCgroup) {
      return Internal("cannot start " + argv[0] + ": joining the cgroup via " + cgroup_procs_path +
                      " failed: " + std::strerror(failure[1]));
    }
    return Internal("cannot start " + argv[0] + ": " + std::strerror(failure[1]));
  }
  return proc;
}

Subprocess::~Subprocess() {
  if (!exit_code_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

bool Subprocess::reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    if (WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) exit_code_ = 128 + WTERMSIG(status);
    else return false;  // stopped or continued: still alive
    return true;
  }
  if (r < 0 && errno == ECHILD) {
    exit_code_ = -1;
    return true;
  }
  return false;
}

bool Subprocess::running() { return !reap(false); }

void Subprocess::signal(int sig) {
  if (!exit_code_ && !reap(false)) ::kill(pid_, sig);
}

std::optional<int> Subprocess::wait_for(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return exit_code_;
}

}  // namespace memgate::testing
