// memgate: parse the configuration, then serve (or print it with check-config).
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "memgate/base/config.h"
#include "memgate/base/logging.h"
#include "memgate/server/app.h"

namespace {

void print(const std::string& text, FILE* to) {
  std::fputs(text.c_str(), to);
  if (!text.empty() && text.back() != '\n') std::fputc('\n', to);
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists, so every thread inherits the
  // mask and App::run() receives them with sigwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args(argv, argv + argc);
  memgate::Invocation inv = memgate::parse_invocation(args, memgate::process_env());
  if (inv.exit_code >= 0) {
    print(inv.output, inv.exit_code == 0 ? stdout : stderr);
    return inv.exit_code;
  }
  if (inv.command == memgate::Command::kCheckConfig) {
    print(memgate::describe(inv.config), stdout);
    return 0;
  }
  memgate::setup_logging(inv.config.log_level, inv.config.log_format);
  if (inv.command == memgate::Command::kPlan) {
    auto plan = memgate::server::App::plan(inv.config, memgate::process_env());
    if (!plan.ok()) {
      print("memgate: " + plan.status().message(), stderr);
      return 2;
    }
    print(*plan, stdout);
    return 0;
  }
  memgate::server::App app(inv.config, memgate::process_env());
  return app.run();
}
