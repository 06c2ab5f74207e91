#include "memgate/server/snapshot_sinks.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "memgate/coord/redis_backend.h"

namespace memgate::server {

void RedisStreamSink::write(const boost::json::object& snapshot) {
  coord::RedisBackend* redis = coordinator_.redis();
  if (!redis || coordinator_.backend() != "redis") {
    spdlog::info("memory snapshot kept locally only: coordination is {}", coordinator_.backend());
    return;
  }
  std::string body = boost::json::serialize(snapshot);
  std::string maxlen = std::to_string(max_length_);
  Result<coord::Reply> r =
      redis->connection().command({"XADD", stream_, "MAXLEN", "~", maxlen, "*", "snapshot", body});
  if (!r.ok()) {
    spdlog::warn("memory snapshot not written to {}: {}", stream_, r.status().to_string());
  } else if (r->is_error()) {
    spdlog::warn("memory snapshot not written to {}: {}", stream_, r->str);
  }
}

Result<std::vector<boost::json::object>> RedisStreamSink::history(size_t count) {
  coord::RedisBackend* redis = coordinator_.redis();
  if (!redis || coordinator_.backend() != "redis") return Unavailable("coordination is local");
  std::string n = std::to_string(count);
  Result<coord::Reply> r = redis->connection().command({"XREVRANGE", stream_, "+", "-", "COUNT", n});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Unavailable("redis: " + r->str);
  std::vector<boost::json::object> out;
  // Each entry: [id, [field, value, ...]].
  for (const coord::Reply& entry : r->elements) {
    if (entry.elements.size() != 2) continue;
    const auto& fields = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str != "snapshot") continue;
      boost::system::error_code ec;
      boost::json::value v = boost::json::parse(fields[i + 1].str, ec);
      if (ec || !v.is_object()) continue;
      boost::json::object o = v.as_object();
      o["stream_id"] = entry.elements[0].str;
      out.push_back(std::move(o));
    }
  }
  return out;
}

}  // namespace memgate::server
