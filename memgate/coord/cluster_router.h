// ClusterRouter: commands to a Redis Cluster, each sent to the master of its slot.
//
// REDIS_URL=redis-cluster://[user:password@]h1:6379,h2:6379,... (rediss-cluster://
// for TLS) names seed nodes; RedisSettings::cluster_seeds holds them. The router
//
//   * builds the slot map with CLUSTER SLOTS, asked of the nodes it knows (the
//     current masters first, then the seeds) until one answers with a map that
//     passes parse_cluster_slots(); it keeps one Connection (connection.h) per
//     master in the map, with the URL's transport, user and password;
//   * sends each command to the master of key_slot() of its first key (args[1]
//     of command(), keys[0] of eval(); key_layout.h: every script's keys share a
//     hash tag, so one slot); a keyless command goes to command_near()'s key, or
//     to any master;
//   * follows redirects, at most kMaxRedirects per command:
//       -MOVED slot host:port  the slot has a new owner: the map is asked again
//                              (unless another caller did since) and the command
//                              is sent to that node;
//       -ASK slot host:port    the slot is being migrated and this key is on the
//                              target already: ASKING, then the command (as EVAL
//                              for a script, so no NOSCRIPT round trip can come
//                              between) on a connection of that node kept for
//                              ASK alone (ASKING holds for one command only, so
//                              nothing else may be sent on it between the two);
//       -TRYAGAIN / -CLUSTERDOWN  a multi-key command during a migration, or a
//                              cluster without a master for a slot: wait 10 ms,
//                              doubling to 200 ms, for at most command_timeout in
//                              all (waking at once at shutdown), then fail
//                              kUnavailable; CLUSTERDOWN also asks for the map;
//     too many redirects in a row (a TRYAGAIN starts the count again) fail
//     kUnavailable. A command that fails kUnavailable on
//     a node (lost, not connected) asks for a new map in the background (a node
//     that died may have been replaced by its replica).
//   * bounds what the cluster says: at most kMaxNodes masters (a reply naming
//     more is refused and the old map kept), at most 16384 ranges, slots within
//     0..16383, ports 1..65535, host names of at most 255 bytes; a redirect
//     naming another node counts against the same node bound.
//
// Blocking calls run the redirect loop on the caller's thread. The async forms
// send the first attempt as Connection does; a reply that is a redirect is handed
// to the router's own thread, which runs the same loop and then the callback (so
// a callback runs on a node's io thread or on that thread). That thread also
// builds the first map (retrying with the reconnect backoff) and the background
// refreshes, and once a second sets CoordMetrics::connection_state (connected:
// a map, and every master in it connected) and, while a master is not
// connected, asks for the map again. Blocking calls must not be made
// from a callback.
//
// Counters (CoordMetrics): cluster_redirects_{moved,ask}, cluster_slot_map_refreshes,
// cluster_retries_{tryagain,clusterdown}, and the map's summary
// (set_cluster_nodes: each master's address and slot count).
//
// Thread-safe. The destructor stops the router's thread; callbacks still queued
// get kUnavailable.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/coord/coord_metrics.h"
#include "memgate/coord/redis_link.h"
#include "memgate/coord/redis_settings.h"

namespace memgate::coord {

inline constexpr uint16_t kClusterSlots = 16384;

// A slot map as CLUSTER SLOTS gives it: masters and the ranges each holds.
struct SlotMapSpec {
  struct Range {
    uint16_t first = 0, last = 0;  // inclusive
    size_t master = 0;             // index into masters
  };
  std::vector<Endpoint> masters;
  std::vector<Range> ranges;
};

// Parses a CLUSTER SLOTS reply with the bounds above. `asked` is the node that
// answered: an empty host in the reply means that node's host. kInvalidArgument
// says what was wrong (never echoing more than a few bytes of the reply).
Result<SlotMapSpec> parse_cluster_slots(const Reply& reply, const Endpoint& asked, size_t max_nodes);

// A cluster error reply, read.
struct Redirect {
  enum class Kind { kNone, kMoved, kAsk, kTryAgain, kClusterDown };
  Kind kind = Kind::kNone;
  uint16_t slot = 0;
  Endpoint to;  // kMoved, kAsk
};
// kNone for any other error text (and for a MOVED/ASK whose slot or address is
// malformed: such a reply is handed to the caller as the error it is).
// `replying` fills in an empty host ("MOVED 3999 :6380").
Redirect parse_redirect(std::string_view error, const Endpoint& replying);

class ClusterRouter final : public RedisLink {
 public:
  static constexpr size_t kMaxNodes = 64;
  static constexpr int kMaxRedirects = 5;
  static constexpr size_t kMaxQueuedRedirects = 1024;

  // Starts building the map in the background. `settings.cluster_seeds` must not
  // be empty; `metrics` must outlive the router.
  ClusterRouter(RedisSettings settings, CoordMetrics* metrics);
  ~ClusterRouter() override;
  ClusterRouter(const ClusterRouter&) = delete;
  ClusterRouter& operator=(const ClusterRouter&) = delete;

  // A map is there and every master in it is connected.
  Status wait_connected(std::chrono::milliseconds timeout) override;
  bool connected() const override;
  std::string last_error() const override;

  void async_command(const std::vector<std::string_view>& args, ReplyCallback cb) override;
  void async_eval(const Script& script, const std::vector<std::string_view>& keys,
                  const std::vector<std::string_view>& args, ReplyCallback cb) override;
  Result<Reply> command(const std::vector<std::string_view>& args) override;
  Result<Reply> eval(const Script& script, const std::vector<std::string_view>& keys,
                     const std::vector<std::string_view>& args) override;
  Result<Reply> command_near(std::string_view key, const std::vector<std::string_view>& args) override;

  // Asks for the map now (blocking), unless it changed since generation `seen`.
  Status refresh(uint64_t seen);
  // Increases with each map installed; 0 before the first.
  uint64_t map_generation() const;
  // The master that holds `slot` in the current map.
  std::optional<Endpoint> owner_of(uint16_t slot) const;
  // Master i (modulo their number) of the current map.
  std::optional<Endpoint> master_at(size_t i) const;
  // True when the cluster's nodes have SPUBLISH (Redis 7 sharded pub/sub);
  // known once the first map is in (false before).
  bool sharded_pubsub() const { return sharded_pubsub_.load() == 1; }
  const RedisSettings& settings() const { return settings_; }

 private:
  struct Node;
  struct SlotMap;
  struct Request;
  struct OwnedRequest;

  std::shared_ptr<SlotMap> map() const;
  std::shared_ptr<Node> node_for(const Request& q, const SlotMap* map) const;
  Result<std::shared_ptr<Node>> node_at(const Endpoint& where);
  std::shared_ptr<Node> make_node(const Endpoint& where);
  RedisSettings node_settings(const Endpoint& where) const;
  Status install(const SlotMapSpec& spec);
  Result<SlotMapSpec> ask_slots(const Endpoint& where, Connection* existing);
  void check_sharded_pubsub(Connection& conn);

  // The redirect loop; `first` is a reply already received from the first attempt.
  Result<Reply> execute(const Request& q, std::optional<Result<Reply>> first, Endpoint first_from);
  Result<Reply> send(Node& node, const Request& q);
  Result<Reply> send_asking(Node& node, const Request& q);
  void submit_async(std::shared_ptr<OwnedRequest> q, ReplyCallback cb);
  void enqueue(std::function<void()> job, const ReplyCallback& on_refused);
  void request_refresh();
  bool sleep_unless_stopping(std::chrono::milliseconds d);
  void run();

  RedisSettings settings_;
  CoordMetrics* metrics_;
  CoordMetrics scratch_;  // the seeds' short-lived connections count here, not in the process's
  std::atomic<int> sharded_pubsub_{-1};

  mutable std::mutex map_mu_;
  std::condition_variable map_cv_;
  std::shared_ptr<SlotMap> map_;                // null before the first map
  std::vector<std::shared_ptr<Node>> extra_;    // nodes met in redirects, not (yet) in the map
  std::vector<std::shared_ptr<Node>> retired_;  // left the map; destroyed a while later by a refresh
  std::string last_error_;

  std::mutex refresh_mu_;  // one refresh at a time

  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> jobs_;
  bool refresh_wanted_ = false;
  bool stopping_ = false;  // guarded by work_mu_; also read through stopping()
  std::atomic<bool> stop_flag_{false};
  std::thread worker_;
};

}  // namespace memgate::coord
