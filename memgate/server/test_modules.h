// Modules and jobs that exist only for tests and benchmarks (MEMGATE_TEST_ROUTES=1).
//
// test-heavy-1..N (MEMGATE_TEST_HEAVY_MODULES=N, one per stage): each build
// allocates and touches MEMGATE_TEST_BUILD_MB of scratch memory, waits
// MEMGATE_TEST_BUILD_MS, and keeps MEMGATE_TEST_KEEP_MB as its artifact; shared
// through the fleet lock "init:test-heavy-<i>". GET /api/test-heavy-<i> answers
// once it is ready.
// test-tick (MEMGATE_TEST_JOB_LOG=path): a job every MEMGATE_TEST_JOB_PERIOD
// (default 1s) that appends "<period index> <instance>" to that file.
#pragma once

#include "memgate/base/config.h"
#include "memgate/startup/module.h"

namespace memgate::server {

// Their rows of the settings table (MEMGATE_TEST_*, read only with MEMGATE_TEST_ROUTES).
SettingRows test_settings();

// The test modules the environment asks for; an error names the bad variable.
Result<startup::ModuleList> test_modules(const Config& config, const EnvLookup& env);

}  // namespace memgate::server
