#include "memgate/server/modules.h"

#include "examples/prime_table_module.h"
#include "memgate/coach/coach_module.h"
#include "memgate/coach/retriever.h"
#include "memgate/kb/kb_module.h"
#include "memgate/mcp/registry.h"
#include "memgate/server/test_modules.h"

namespace memgate::server {

SettingRows module_settings() {
  SettingRows rows;
  for (SettingRows part : {examples::settings(), kb::settings(), coach::settings(), test_settings()})
    for (SettingRow& r : part) rows.push_back(std::move(r));
  return rows;
}

Result<startup::ModuleList> builtin_modules(const Config& config, const EnvLookup& env) {
  startup::ModuleList modules;

  auto primes = examples::make_prime_table_module(env);
  if (!primes.ok()) return primes.status();
  modules.push_back(*primes);

  // The coach retrieves from whatever index the knowledge base serves now,
  // through a registry the runtime makes and hands to both (no global). Both
  // add what they offer over MCP to one mcp::Registry: the kb, which serves
  // /mcp, its tools and documents; the coach its prompt.
  auto retrievers = std::make_shared<coach::RetrieverRegistry>();
  auto mcp_registry = std::make_shared<mcp::Registry>();
  auto kb = kb::make_kb_module(
      config, env,
      [retrievers](std::shared_ptr<const kb::Index> index) {
        retrievers->set(index ? std::make_shared<coach::KbRetriever>(index) : nullptr);
      },
      mcp_registry);
  if (!kb.ok()) return kb.status();
  modules.push_back(*kb);

  auto coach = coach::make_coach_module(config, env, [retrievers] { return retrievers->get(); }, mcp_registry);
  if (!coach.ok()) return coach.status();
  modules.push_back(*coach);

  auto tests = test_modules(config, env);
  if (!tests.ok()) return tests.status();
  for (auto& m : *tests) modules.push_back(m);

  // A module's flag must be a boolean: a typo must not silently disable it.
  for (auto& m : modules) {
    startup::FlagSpec flag = m->flag();
    if (flag.env.empty()) continue;
    if (auto text = env(flag.env); text && !parse_bool(*text).ok())
      return InvalidArgument(flag.env + "='" + *text + "' is not valid: expected " + std::string(kBoolForm));
  }
  return modules;
}

}  // namespace memgate::server
