#include "memgate/server/app_options.h"

namespace memgate::server {

startup::LoaderOptions base_loader_options(const Config& config, const EnvLookup& env) {
  startup::LoaderOptions o;
  o.stage_delay = config.stage_delay;
  o.batch_size = config.stage_batch_size;
  o.gate_retries = config.gate_retries;
  o.gate_retry_interval = config.gate_retry_interval;
  o.instance_id = config.instance_id;
  // The built-in modules' flags were resolved by the config (flag, then
  // variable, then default); the loader must see that result, not only the
  // environment. Other modules' flags come from the environment.
  o.env = [env, ai = config.enable_ai_routes, kb = config.enable_kb_service](const std::string& name)
      -> std::optional<std::string> {
    if (name == "ENABLE_AI_ROUTES") return std::string(ai ? "true" : "false");
    if (name == "ENABLE_KB_SERVICE") return std::string(kb ? "true" : "false");
    return env(name);
  };
  o.eager = config.startup_eager;
  o.budgeted = config.startup_budgeted;
  o.startup_budget = config.startup_memory_budget;
  o.memory_margin = config.memory_margin;
  o.peer_wait = config.fleet_peer_wait;
  return o;
}

uint64_t heap_limit(const Config& config, uint64_t container_limit) {
  uint64_t limit = config.memory_limit.resolve(container_limit);
  return limit == 0 ? 4096ull << 20 : limit;
}

coord::CoordinatorOptions coordinator_options(const Config& config) {
  coord::CoordinatorOptions co;
  co.redis_url = config.redis_url;
  co.sentinel_password = config.redis_sentinel_password;
  co.wait_replicas = config.redis_wait_replicas;
  co.tls_ca = config.redis_tls_ca;
  co.tls_insecure = config.redis_tls_insecure;
  co.connect_timeout = config.redis_connect_timeout;
  co.command_timeout = config.redis_command_timeout;
  co.chunk_size = config.artifact_chunk_size;
  co.max_artifact_bytes = config.artifact_max_size;
  co.local_dir = config.coord_local_dir;
  co.instance_id = config.instance_id;
  return co;
}

}  // namespace memgate::server
