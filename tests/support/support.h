// Test support, all of it: free_port(), temp_dir(), Subprocess (process.h) and
// RedisServer (redis_server.h). Link memgate_test_support.
#pragma once

#include "tests/support/process.h"
#include "tests/support/redis_server.h"
