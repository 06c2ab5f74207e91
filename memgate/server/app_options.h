// The options the configuration gives the loader and the coordinator, shared
// by the server (App::start) and the commands that only look (plan, probes).
#pragma once

#include <cstdint>

#include "memgate/base/config.h"
#include "memgate/coord/coordinator.h"
#include "memgate/startup/loader.h"

namespace memgate::server {

// The loader's options as the configuration sets them (what `serve` and `plan`
// share; serve adds the live memory limit and the guard's refusal).
startup::LoaderOptions base_loader_options(const Config& config, const EnvLookup& env);

// MEMORY_LIMIT in bytes: a share is of the container's limit; a share with no
// container limit to take it of falls back to the guide's 4096 MB.
uint64_t heap_limit(const Config& config, uint64_t container_limit);

coord::CoordinatorOptions coordinator_options(const Config& config);

}  // namespace memgate::server
