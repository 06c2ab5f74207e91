// The memory probe's figures as JSON, for /debug/memory and snapshots.
#pragma once

#include <boost/json/object.hpp>

#include "memgate/memory/memory_probe.h"

namespace memgate::guard {

// {"allocator":{...},"process":{...},"cgroup":{...}}; absent figures are null.
boost::json::object memory_sample_json(const memory::MemorySample& sample);

}  // namespace memgate::guard
