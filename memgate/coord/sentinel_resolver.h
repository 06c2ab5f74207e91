// SentinelResolver: finds the current master of a Redis that Sentinel manages.
//
// REDIS_URL=redis-sentinel://[user:password@]h1:26379,h2:26379/MASTER_NAME[?db=N]
// (rediss-sentinel:// for TLS to sentinels and master alike) gives the sentinels
// and the master's name; user and password are the master's, the sentinels'
// password is REDIS_SENTINEL_PASSWORD (RedisSettings::sentinel_password).
//
// resolve() asks the sentinels in turn, each within `sentinel_timeout`:
//   1. SENTINEL get-master-addr-by-name MASTER_NAME  → host, port (nil: the
//      sentinel does not know that name; next sentinel);
//   2. connect there with the master's settings (TLS, AUTH, db) and ask ROLE:
//      only an address whose ROLE is "master" is returned (a sentinel that has
//      not yet seen a failover, or a demoted master, is passed over);
//   3. the sentinel that gave the confirmed address moves to the front, so the
//      next resolution asks it first.
// It returns kUnavailable when no sentinel gave a confirmed master; the message
// names each sentinel's failure and never a password. Counters (CoordMetrics):
// sentinel_resolution_errors on each such failure, sentinel_failovers when the
// confirmed address differs from the previous one, and master_address.
//
// Connection calls resolve() before every connection attempt (its EndpointSource),
// so every reconnect re-resolves; a READONLY reply makes the connection reconnect,
// hence re-resolve (connection.h). watch() adds a hint: one subscriber connection
// to the first sentinel, subscribed to +switch-master, calls `on_switch` when our
// master moved, so connections move before a command fails. It is a hint only:
// if that sentinel is down, the hint is missing and the two rules above still
// find the master.
//
// resolve() blocks (at most 2 x sentinel_timeout per sentinel) and opens
// short-lived connections of its own; it must not run on a thread that a
// connection it creates would need. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/coord/coord_metrics.h"
#include "memgate/coord/redis_settings.h"

namespace memgate::coord {

class Connection;

class SentinelResolver {
 public:
  // `settings` must have sentinels and sentinel_master set; `metrics` must outlive this.
  SentinelResolver(RedisSettings settings, CoordMetrics* metrics,
                   std::chrono::milliseconds sentinel_timeout = std::chrono::milliseconds(500));
  ~SentinelResolver();
  SentinelResolver(const SentinelResolver&) = delete;
  SentinelResolver& operator=(const SentinelResolver&) = delete;

  // The confirmed master's address, or kUnavailable (see above).
  Result<Endpoint> resolve();

  // Subscribes to +switch-master on the first sentinel; `on_switch` runs on that
  // subscriber's io thread for each switch of our master (it must not block). Once.
  void watch(std::function<void()> on_switch);
  // Stops the watch (its callback does not run once this returns).
  void unwatch();

  // The sentinels in the order the next resolution asks them.
  std::vector<Endpoint> sentinels() const;

 private:
  // One sentinel's answer: the master it names (confirmed by ROLE), or why not.
  Result<Endpoint> ask(const Endpoint& sentinel);
  // The sentinels' order and the last error, for /debug/coord.
  void publish_view(std::string last_error);
  RedisSettings sentinel_settings(const Endpoint& sentinel) const;

  RedisSettings settings_;
  CoordMetrics* metrics_;
  std::chrono::milliseconds timeout_;
  CoordMetrics scratch_;  // the short-lived connections' own counters, not the process's

  mutable std::mutex mu_;
  std::vector<Endpoint> order_;
  std::optional<Endpoint> last_;
  std::unique_ptr<Connection> watcher_;
};

}  // namespace memgate::coord
