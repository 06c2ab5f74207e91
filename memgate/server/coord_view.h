// The coordination view: what /debug/coord on the admin listener answers.
//
// One JSON document for people (and the admin page): the backend in use and
// the Redis master it talks to (a Cluster's masters with their slot counts), the leases this process took lately with their
// fences (and which it holds now), its recent fleet_once outcomes and their
// totals, and, for each fleet-shared module, the artifact of its inputs as the
// fleet sees it (published?, by whom, size, the fleet's measured build and load
// peaks). Never a lease token, never a password: the Redis URL is redacted.
//
// coord_view_json() reads the coordination backend once per fleet-shared
// module (the artifacts' meta and peaks): blocking, so the route runs it on a
// worker. Thread-safe as the Coordinator and the loader are.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "memgate/coord/coordinator.h"
#include "memgate/startup/loader.h"

namespace memgate::server {

// `coordinator` may be null (before it is created): the view says "starting".
// `redis_url` is the configured REDIS_URL (secret; only its redacted form is used).
boost::json::object coord_view_json(coord::Coordinator* coordinator, startup::StagedLoader& loader,
                                    const std::string& redis_url, const std::string& instance_id);

// "host:port" (or a comma list) of a redacted Redis URL, "" when it has none.
std::string redis_address_of(const std::string& redacted_url);

}  // namespace memgate::server
