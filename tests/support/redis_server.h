// Test support: a real redis-server on a free loopback port, in a temp directory.
//
// RedisServer::start() runs `redis-server` (from PATH) with no persistence, on a
// port found by free_port(), and returns once its log says it accepts
// connections. With tls=true the harness first makes a CA and a server
// certificate (for 127.0.0.1 and localhost) with the openssl command line tool,
// and the server listens with TLS only; ca_file() is the CA to trust. kill()
// sends SIGKILL to that server's pid; restart() starts it again on the same port
// (with an empty data set). The destructor kills the server and removes the
// directory unless it was given in RedisOptions::dir. One thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "memgate/base/status.h"
#include "tests/support/process.h"

namespace memgate::testing {

// Note: g++ -Wextra warns on designated initializers that omit fields
// ({.tls = true}); set fields one by one, or use the helpers below.
struct RedisOptions {
  bool tls = false;
  std::string password;  // requirepass, when set
  std::string dir;       // working directory; a fresh temp dir when empty
  std::vector<std::string> extra_args;  // more redis-server arguments ("--cluster-enabled", "yes", ...)

  static RedisOptions with_tls() {
    RedisOptions o;
    o.tls = true;
    return o;
  }
  static RedisOptions with_password(std::string password) {
    RedisOptions o;
    o.password = std::move(password);
    return o;
  }
};

class RedisServer {
 public:
  static Result<std::unique_ptr<RedisServer>> start(RedisOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  uint16_t port() const { return port_; }
  // redis://127.0.0.1:port, or rediss://..., with ":password@" when one is set.
  std::string url() const;
  // The CA certificate (PEM) that signed the server certificate; empty without TLS.
  std::string ca_file() const { return ca_file_; }
  std::string dir() const { return dir_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  // SIGKILL the server (by pid) and reap it.
  void kill();
  // Sends `sig` (SIGSTOP, SIGCONT) to the server's pid, if it is running.
  void signal(int sig);
  // kill() if still running, then start again on the same port.
  Status restart();

 private:
  RedisServer() = default;
  Status launch();

  RedisOptions options_;
  std::string dir_;
  bool own_dir_ = false;
  uint16_t port_ = 0;
  std::string ca_file_, cert_file_, key_file_;
  int generation_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace memgate::testing
