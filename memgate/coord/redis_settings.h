// RedisSettings: where and how to reach Redis, parsed from REDIS_URL.
//
// Accepted forms:
//   redis://[user][:password]@host[:port][/db]   plain TCP (port 6379, db 0 by default)
//   rediss://...                                 TLS; the server certificate is verified
//                                                against the system CAs or tls_ca
//   unix:///path/to/socket[?db=N]                a Unix socket; a password may be given as
//                                                unix://:password@/path or ?password=...
//   redis-sentinel://[user:password@]h1[:26379],h2[:26379]/MASTER_NAME[?db=N]
//                                                the master is found through these sentinels
//                                                (sentinel_resolver.h); user and password are
//                                                the master's; rediss-sentinel:// for TLS
//   redis-cluster://[user:password@]h1[:6379],h2[:6379][/][?db=0]
//                                                Redis Cluster, reached through any of these
//                                                seed nodes (cluster_router.h); only db 0;
//                                                rediss-cluster:// for TLS to every node
// Passwords and user names are percent-decoded. parse_redis_url() never puts the
// password (or the URL) into an error message: errors read
//   "REDIS_URL is not valid: <what is wrong> (expected redis://[user][:password]@host:port[/db], ...)".
// Pure functions and plain values: thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::coord {

enum class Transport { kTcp, kTls, kUnix };

// A TCP address: a host name or IP literal and a port.
struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string describe() const;  // "host:port", "[::1]:port"
  bool operator==(const Endpoint&) const = default;
};

struct RedisSettings {
  Transport transport = Transport::kTcp;
  std::string host = "127.0.0.1";  // kTcp / kTls
  uint16_t port = 6379;            // kTcp / kTls
  std::string unix_path;           // kUnix
  std::string username;            // AUTH user pass when set (ACL), else AUTH pass
  std::string password;            // secret
  int db = 0;

  // Sentinel (redis-sentinel://, rediss-sentinel://): when `sentinels` is not
  // empty, host and port are found through them (sentinel_resolver.h) before
  // every connection; `transport` (kTcp or kTls) applies to sentinels and master.
  std::vector<Endpoint> sentinels;
  std::string sentinel_master;    // the name the sentinels monitor the master under
  std::string sentinel_password;  // secret (REDIS_SENTINEL_PASSWORD); AUTH to the sentinels when set
  bool sentinel_watch = true;     // subscribe to +switch-master on a sentinel as a hint
  // Redis Cluster (redis-cluster://, rediss-cluster://): when `cluster_seeds` is
  // not empty, the slot map is asked of these nodes and commands go to the
  // master of each key's slot (cluster_router.h); host and port are the first
  // seed's; `transport` (kTcp or kTls), user and password apply to every node.
  std::vector<Endpoint> cluster_seeds;
  // REDIS_WAIT_REPLICAS: after an acquire and after a fenced publish, WAIT for
  // this many replicas (within command_timeout / 2); 0: do not wait.
  int wait_replicas = 0;

  std::string tls_ca;          // PEM CA file for rediss:// (REDIS_TLS_CA); system CAs when empty
  bool tls_insecure = false;   // skip certificate verification: development only (REDIS_TLS_INSECURE)

  std::chrono::milliseconds connect_timeout{2000};   // TCP connect + TLS handshake + AUTH
  std::chrono::milliseconds command_timeout{2000};   // one reply
  std::chrono::milliseconds reconnect_min{50};       // first reconnect delay (then doubled, jittered)
  std::chrono::milliseconds reconnect_max{2000};     // reconnect delay cap
  size_t chunk_size = 512 * 1024;                    // artifacts above this are stored in chunks
  uint64_t max_artifact_bytes = 4ull << 30;          // a meta declaring more is refused (ARTIFACT_MAX_SIZE)
  // For this long after start, artifacts are also read from the key names before
  // hash tags, and locks also take the old name (docs/design/coord.md, "Migration").
  std::chrono::milliseconds legacy_keys_for{std::chrono::minutes(10)};

  // "redis://127.0.0.1:6379/0", "rediss://host:6380", "unix:///run/redis.sock": no secrets.
  std::string describe() const;
};

// The variable the URL comes from, named in every error message.
inline constexpr std::string_view kRedisUrlVariable = "REDIS_URL";

// Parses a REDIS_URL. An empty URL is an error here; callers treat "unset" as
// "use local coordination" before calling this.
Result<RedisSettings> parse_redis_url(std::string_view url);

}  // namespace memgate::coord
