#include "memgate/server/coord_view.h"

#include <boost/json.hpp>

#include "memgate/base/config.h"

namespace memgate::server {

namespace json = boost::json;

std::string redis_address_of(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  std::string rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  size_t at = rest.rfind('@');
  if (at != std::string::npos) rest = rest.substr(at + 1);
  return rest;
}

namespace {

std::string_view connection_state_name(int s) {
  switch (static_cast<coord::ConnectionState>(s)) {
    case coord::ConnectionState::kDisconnected: return "disconnected";
    case coord::ConnectionState::kConnecting: return "connecting";
    case coord::ConnectionState::kConnected: return "connected";
  }
  return "unknown";
}

json::object lease_json(const coord::LeaseRecord& r, int64_t now) {
  bool held = r.released_unix_ms == 0 && r.expires_unix_ms > now;
  return json::object{{"key", r.key},
                      {"fence", r.fence},
                      {"backend", r.backend},
                      {"ttl_ms", r.ttl_ms},
                      {"acquired_unix_ms", r.acquired_unix_ms},
                      {"expires_unix_ms", r.expires_unix_ms},
                      {"released_unix_ms", r.released_unix_ms},
                      {"extensions", r.extensions},
                      {"held", held},
                      {"held_ms", (r.released_unix_ms ? r.released_unix_ms : now) - r.acquired_unix_ms}};
}

}  // namespace

json::object coord_view_json(coord::Coordinator* coordinator, startup::StagedLoader& loader,
                             const std::string& redis_url, const std::string& instance_id) {
  json::object doc;
  doc["instance"] = instance_id;
  std::string redacted = redis_url.empty() ? std::string() : redact_url(redis_url);
  doc["redis_configured"] = !redis_url.empty();
  doc["redis_url"] = redacted;
  if (!coordinator) {
    doc["backend"] = "starting";
    return doc;
  }
  coord::CoordMetrics& m = coordinator->metrics();
  doc["backend"] = std::string(coordinator->backend());
  // A Sentinel names its master as it resolves it, a Cluster its slot map's
  // masters; a plain URL is its own.
  std::string master = m.master_address();
  json::array cluster;
  for (const coord::CoordMetrics::ClusterNode& n : m.cluster_nodes()) {
    cluster.push_back(json::object{{"address", n.address}, {"slots", n.slots}});
    if (master.empty() || master.find(n.address) == std::string::npos)
      master += (master.empty() ? "" : ",") + n.address;
  }
  if (master.empty() && coordinator->backend() == "redis") master = redis_address_of(redacted);
  doc["master"] = master;
  doc["cluster_nodes"] = std::move(cluster);
  doc["connection_state"] = redis_url.empty() ? "local" : connection_state_name(m.connection_state.load());
  doc["reconnects"] = m.reconnects.load();
  doc["lost_leases"] = m.lost_leases.load();
  doc["sentinel_failovers"] = m.sentinel_failovers.load();
  if (coord::CoordMetrics::SentinelView view = m.sentinel_view(); !view.master_name.empty()) {
    json::array sentinels;
    for (const std::string& s : view.sentinels) sentinels.push_back(json::string(s));
    doc["sentinel"] = json::object{{"master_name", view.master_name},
                                   {"sentinels", std::move(sentinels)},
                                   {"last_error", view.last_error},
                                   {"failovers", m.sentinel_failovers.load()},
                                   {"resolution_errors", m.sentinel_resolution_errors.load()}};
  }
  json::object totals;
  for (size_t i = 0; i < coord::kFleetOutcomeCount; ++i) {
    auto o = static_cast<FleetOutcome>(i);
    totals[fleet_outcome_name(o)] = m.outcomes(o);
  }
  doc["fleet_once_totals"] = std::move(totals);

  const coord::CoordActivity& activity = coordinator->activity();
  int64_t now = coord::CoordActivity::now_unix_ms();
  json::array held, recent;
  for (const coord::LeaseRecord& r : activity.leases()) {
    json::object o = lease_json(r, now);
    if (o.at("held").as_bool()) held.push_back(o);
    recent.push_back(std::move(o));
  }
  doc["leases_held"] = std::move(held);
  doc["leases_recent"] = std::move(recent);
  json::array outcomes;
  for (const coord::OutcomeRecord& r : activity.outcomes())
    outcomes.push_back(json::object{{"name", r.name},
                                    {"outcome", fleet_outcome_name(r.outcome)},
                                    {"at_unix_ms", r.at_unix_ms},
                                    {"duration_ms", r.duration_ms},
                                    {"error", r.error}});
  doc["fleet_once_recent"] = std::move(outcomes);

  json::array artifacts;
  auto millis = [](const std::optional<std::chrono::milliseconds>& d) -> json::value {
    return d ? json::value(d->count()) : json::value(nullptr);
  };
  for (const startup::ArtifactReport& a : loader.fleet_artifacts())
    artifacts.push_back(json::object{{"module", a.module},
                                     {"name", a.name},
                                     {"fingerprint", a.fingerprint},
                                     {"inputs", a.inputs},
                                     {"serving", a.serving},
                                     {"reachable", a.view.reachable},
                                     {"published", a.view.published},
                                     {"builder", a.view.artifact.builder},
                                     {"size_bytes", a.view.artifact.size},
                                     {"build_peak_bytes", a.view.artifact.build_peak},
                                     {"measured_build_peak_bytes", a.view.measured_build},
                                     {"measured_load_peak_bytes", a.view.measured_load},
                                     {"build_samples", a.view.build_samples},
                                     {"load_samples", a.view.load_samples},
                                     {"measured_build_ms", millis(a.view.build_took)},
                                     {"measured_load_ms", millis(a.view.load_took)}});
  doc["artifacts"] = std::move(artifacts);
  return doc;
}

}  // namespace memgate::server
