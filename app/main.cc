// memgate: parse the configuration, then serve (or print it with check-config).
#include <cstdio>
#include <string>
#include <vector>

#include "memgate/base/config.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  memgate::Invocation inv = memgate::parse_invocation(args, memgate::process_env());
  if (inv.exit_code >= 0) {
    std::fputs(inv.output.c_str(), inv.exit_code == 0 ? stdout : stderr);
    if (!inv.output.empty() && inv.output.back() != '\n') std::fputc('\n', inv.exit_code == 0 ? stdout : stderr);
    return inv.exit_code;
  }
  if (inv.command == memgate::Command::kCheckConfig) {
    std::fputs(memgate::describe(inv.config).c_str(), stdout);
    return 0;
  }
  std::fputs("memgate: the server is not wired yet\n", stderr);
  return 1;
}
