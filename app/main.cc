// memgate: parse the configuration, then serve (or print it with check-config).
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include <cstdlib>

#include "memgate/base/config.h"
#include "memgate/base/units.h"
#include "memgate/base/logging.h"
#include "memgate/coord/redis_settings.h"
#include "memgate/kb/kb_cli.h"
#include "memgate/server/app.h"
#include "memgate/server/modules.h"

namespace {

// jemalloc reads its options once, before main, so heap profiling cannot be
// switched on later in a running process. With MEMGATE_HEAP_PROFILE=1 and
// profiling not compiled into the allocator's start-up options, memgate execs
// itself once with MALLOC_CONF asking for it (prof:true; a sample every 512 KiB
// on average). Without the variable nothing changes and profiling costs nothing.
void reexec_for_heap_profiling(char** argv) {
#ifdef MEMGATE_WITH_JEMALLOC
  const char* want = std::getenv("MEMGATE_HEAP_PROFILE");
  if (!want || !memgate::parse_bool(want).value_or(false)) return;
  if (std::getenv("MEMGATE_HEAP_PROFILE_EXECED")) return;  // once
  std::string conf = "prof:true,prof_active:true,lg_prof_sample:19";
  if (const char* existing = std::getenv("MALLOC_CONF")) conf = std::string(existing) + "," + conf;
  setenv("MALLOC_CONF", conf.c_str(), 1);
  setenv("MEMGATE_HEAP_PROFILE_EXECED", "1", 1);
  execv("/proc/self/exe", argv);
  // If exec fails, carry on without profiling; the server says so in its log.
#else
  (void)argv;
#endif
}

void print(const std::string& text, FILE* to) {
  std::fputs(text.c_str(), to);
  if (!text.empty() && text.back() != '\n') std::fputc('\n', to);
}

}  // namespace

int main(int argc, char** argv) {
  // `memgate kb ...` is an offline tool with its own options.
  if (argc > 1 && std::string(argv[1]) == "kb") return memgate::kb::run_kb_cli(argc, argv);
  reexec_for_heap_profiling(argv);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args(argv, argv + argc);
  // `memgate plan --probes`: the probe settings instead of the plan. Read here,
  // before the settings table parses the rest (it knows no such option).
  bool probes = false;
  if (auto plan = std::find(args.begin(), args.end(), "plan"); plan != args.end()) {
    if (auto flag = std::find(plan, args.end(), "--probes"); flag != args.end()) {
      args.erase(flag);
      probes = true;
    }
  }
  memgate::Invocation inv =
      memgate::parse_invocation(args, memgate::process_env(), memgate::server::module_settings());
  if (inv.exit_code >= 0) {
    print(inv.output, inv.exit_code == 0 ? stdout : stderr);
    return inv.exit_code;
  }
  // The settings table checks REDIS_URL's scheme only (base/ cannot reach
  // coord/'s parser); its whole form, seeds, ports and master name, is judged
  // here, so check-config and plan refuse a bad one as start-up does.
  if (!inv.config.redis_url.empty()) {
    if (auto redis = memgate::coord::parse_redis_url(inv.config.redis_url); !redis.ok()) {
      print("memgate: " + redis.status().message(), stderr);
      return 2;
    }
  }
  if (inv.command == memgate::Command::kCheckConfig) {
    print(memgate::describe(inv), stdout);
    return 0;
  }
  memgate::setup_logging(inv.config.log_level, inv.config.log_format);
  if (inv.command == memgate::Command::kPlan) {
    auto plan = probes ? memgate::server::App::probes(inv.config, memgate::settings_lookup(inv))
                       : memgate::server::App::plan(inv.config, memgate::settings_lookup(inv));
    if (!plan.ok()) {
      print("memgate: " + plan.status().message(), stderr);
      return 2;
    }
    print(*plan, stdout);
    return 0;
  }
  // Modules read their settings as the table resolved them (flag, variable, default).
  memgate::server::App app(inv.config, memgate::settings_lookup(inv));
  return app.run();
}
