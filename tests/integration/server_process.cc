#include "tests/integration/server_process.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/integration/http_client.h"

namespace memgate::testing {

std::string memgate_binary() {
  const char* path = std::getenv("MEMGATE_BINARY");
  return path ? path : "memgate";
}

std::unique_ptr<ServerProcess> ServerProcess::start(Env env, std::vector<std::string> args,
                                                    const MemoryCgroup* cgroup) {
  auto server = std::make_unique<ServerProcess>();
  server->port_ = free_port();
  do {
    server->admin_port_ = free_port();
  } while (server->admin_port_ == server->port_);
  server->log_path_ = temp_dir("memgate-server") + "/server.log";
  env.emplace_back("PORT", std::to_string(server->port_));
  env.emplace_back("ADMIN_PORT", std::to_string(server->admin_port_));
  args.insert(args.begin(), memgate_binary());
  auto proc = Subprocess::start(args, env, server->log_path_, cgroup ? cgroup->procs_path() : std::string());
  if (!proc.ok()) {
    ADD_FAILURE() << "could not start memgate" << (cgroup ? " in cgroup " + cgroup->path() : std::string()) << ": "
                  << proc.status().to_string();
    return nullptr;
  }
  server->process_ = std::move(*proc);
  if (!wait_for_status(server->port_, "/healthz", 200, std::chrono::seconds(10))) {
    ADD_FAILURE() << "memgate did not answer /healthz within 10 s; log:\n" << server->log();
    return nullptr;
  }
  return server;
}

ServerProcess::~ServerProcess() {
  process_.reset();  // killed and reaped before its folder goes
  if (log_path_.empty()) return;
  std::string dir = log_path_.substr(0, log_path_.rfind('/'));
  if (::testing::Test::HasFailure())
    std::cout << "memgate's log kept at " << log_path_ << "\n";
  else
    remove_tree(dir);
}

std::string ServerProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RunResult run_memgate(const ServerProcess::Env& env, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout) {
  RunResult result;
  std::string log = temp_dir("memgate-run") + "/out.log";
  std::vector<std::string> argv = args;
  argv.insert(argv.begin(), memgate_binary());
  auto proc = Subprocess::start(argv, env, log);
  if (!proc.ok()) {
    result.output = proc.status().to_string();
    return result;
  }
  auto code = (*proc)->wait_for(timeout);
  result.exit_code = code.value_or(-1);
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  result.output = ss.str();
  remove_tree(log.substr(0, log.rfind('/')));
  return result;
}

}  // namespace memgate::testing
