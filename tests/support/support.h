// Test support, all of it: free_port(), temp_dir(), Subprocess (process.h),
// RedisServer (redis_server.h) and MemoryCgroup (memory_cgroup.h). Link
// memgate_test_support.
#pragma once

#include "tests/support/memory_cgroup.h"
#include "tests/support/process.h"
#include "tests/support/redis_server.h"
