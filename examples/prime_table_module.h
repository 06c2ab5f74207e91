// An example of a custom heavy module: a table of primes.
//
// It shows everything a module declares in a few lines: stage 2, the flag
// ENABLE_EXAMPLE_MODULE (off by default), a memory gate (half the limit), a
// fleet-wide build under the lock "init:example-primes", and a route that
// answers 503 until the table is ready. Its build sieves every number up to
// EXAMPLE_PRIMES_LIMIT (a large temporary bitmap) and keeps only the primes, so
// its peak is well above what it keeps: the shape the staged loader exists for.
//
//   GET /api/example/primes?below=N  -> {"below":N,"count":...,"largest":...}
#pragma once

#include <memory>

#include "memgate/startup/module.h"

namespace memgate::examples {

// Its rows of the settings table: ENABLE_EXAMPLE_MODULE and EXAMPLE_PRIMES_LIMIT.
SettingRows settings();

// Reads EXAMPLE_PRIMES_LIMIT (default 20000000); a bad value is an error naming it.
Result<std::shared_ptr<startup::Module>> make_prime_table_module(const EnvLookup& env);

}  // namespace memgate::examples
