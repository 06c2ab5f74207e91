// The modules compiled into this memgate, in one list.
//
// Adding a module: write a class deriving from startup::Module (see
// examples/prime_table_module.cc), then add its factory to builtin_modules() in
// modules.cc, and its settings() rows to module_settings(). Its flag, gate,
// stage, fleet lock, routes and jobs come from the module itself.
#pragma once

#include "memgate/base/config.h"
#include "memgate/startup/module.h"

namespace memgate::server {

// Every compiled-in module's rows of the settings table, to parse before any
// module is made (parse_invocation's module_rows). A module's settings are read
// only through these rows: memgate/server/settings_test.cc fails on a variable
// read anywhere without one.
SettingRows module_settings();

// Every compiled-in module (enabled or not: the loader reports disabled ones as
// skipped(flag)). Fails with a message naming the variable when a module's own
// setting, or its flag variable, has a bad value.
Result<startup::ModuleList> builtin_modules(const Config& config, const EnvLookup& env);

}  // namespace memgate::server
