// A redis-server per test. Readiness is read from the server's own log ("Ready to
// accept connections"), which works for plain and TLS ports alike; a new log file
// per start keeps a restart from reading the previous run's line.
#include "tests/support/redis_server.h"

#include <signal.h>

#include <chrono>
#include <fstream>

namespace memgate::testing {
namespace {

Status run_quiet(const std::vector<std::string>& argv, const std::string& log) {
  auto proc = Subprocess::start(argv, {}, log);
  if (!proc.ok()) return proc.status();
  auto code = (*proc)->wait_for(std::chrono::seconds(30));
  if (!code || *code != 0) {
    return Internal(argv[0] + " " + argv[1] + " failed; see " + log);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<RedisServer>> RedisServer::start(RedisOptions options) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->options_ = options;
  if (options.dir.empty()) {
    server->dir_ = temp_dir("memgate-redis");
    server->own_dir_ = true;
    if (server->dir_.empty()) return Internal("cannot make a temp dir for redis-server");
  } else {
    server->dir_ = options.dir;
  }
  if (options.tls) {
    const std::string& d = server->dir_;
    server->ca_file_ = d + "/ca.crt";
    server->cert_file_ = d + "/server.crt";
    server->key_file_ = d + "/server.key";
    std::ofstream(d + "/san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    std::string log = d + "/openssl.log";
    Status st = run_quiet({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", d + "/ca.key", "-out", server->ca_file_, "-days", "2", "-subj",
                           "/CN=memgate test CA"},
                          log);
    if (st.ok()) {
      st = run_quiet({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", server->key_file_, "-out", d + "/server.csr", "-subj", "/CN=localhost"},
                     log);
    }
    if (st.ok()) {
      st = run_quiet({"openssl", "x509", "-req", "-in", d + "/server.csr", "-CA", server->ca_file_, "-CAkey",
                      d + "/ca.key", "-CAcreateserial", "-out", server->cert_file_, "-days", "2", "-extfile",
                      d + "/san.ext"},
                     log);
    }
    if (!st.ok()) return st;
  }
  server->port_ = free_port();
  if (server->port_ == 0) return Internal("no free port for redis-server");
  Status st = server->launch();
  if (!st.ok()) return st;
  return server;
}

Status RedisServer::launch() {
  ++generation_;
  std::string log = dir_ + "/redis-" + std::to_string(generation_) + ".log";
  std::vector<std::string> argv = {"redis-server", "--bind", "127.0.0.1", "--dir", dir_, "--save", "",
                                   "--appendonly", "no", "--logfile", log, "--daemonize", "no"};
  std::string port = std::to_string(port_);
  if (options_.tls) {
    argv.insert(argv.end(), {"--port", "0", "--tls-port", port, "--tls-cert-file", cert_file_, "--tls-key-file",
                             key_file_, "--tls-ca-cert-file", ca_file_, "--tls-auth-clients", "no"});
  } else {
    argv.insert(argv.end(), {"--port", port});
  }
  if (!options_.password.empty()) argv.insert(argv.end(), {"--requirepass", options_.password});
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  auto proc = Subprocess::start(argv, {}, dir_ + "/redis-" + std::to_string(generation_) + ".out");
  if (!proc.ok()) return proc.status();
  process_ = std::move(*proc);
  bool ready = wait_until(
      [&] {
        return !process_->running() || read_file(log).find("Ready to accept connections") != std::string::npos;
      },
      std::chrono::seconds(10));
  if (!ready || !process_->running()) {
    return Unavailable("redis-server did not start on port " + port + "; see " + log);
  }
  return Status::Ok();
}

std::string RedisServer::url() const {
  std::string url = options_.tls ? "rediss://" : "redis://";
  if (!options_.password.empty()) url += ":" + options_.password + "@";
  url += "127.0.0.1:" + std::to_string(port_);
  return url;
}

void RedisServer::kill() {
  if (process_) {
    process_->signal(SIGKILL);
    process_->wait_for(std::chrono::seconds(10));
  }
}

void RedisServer::signal(int sig) {
  if (process_) process_->signal(sig);
}

Status RedisServer::restart() {
  kill();
  process_.reset();
  return launch();
}

RedisServer::~RedisServer() {
  kill();
  process_.reset();
  if (own_dir_) remove_tree(dir_);
}

}  // namespace memgate::testing
