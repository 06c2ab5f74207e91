// ClusterSubscriber: completion messages across a Redis Cluster.
//
// RedisBackend publishes a task's completion on "memgate:done:{K}", a channel
// with the task's hash tag, from inside its publish script, so on a cluster the
// message starts on the master that holds the task's keys. Two ways to hear it:
//
//   * sharded pub/sub (the servers have SPUBLISH: Redis 7; ClusterRouter::
//     sharded_pubsub()): the script SPUBLISHes, and this SSUBSCRIBEs to each
//     watched channel on the master of the channel's slot, one subscriber
//     Connection per such master (at most ClusterRouter::kMaxNodes). When the
//     router's map changes (follow_map(), called before every wait), a channel
//     whose slot moved is subscribed again at its new owner; Redis itself drops
//     the old subscription when the slot leaves a node;
//   * plain pub/sub otherwise: the script PUBLISHes, which the cluster bus
//     carries to every node, and one subscriber Connection PSUBSCRIBEs to
//     `pattern` on one master (another one after each reconnect).
//
// Either way a missed message only costs the waiter its slow poll (fleet_once
// reads the done flag again), so subscriptions are made without waiting for
// their confirmation. Messages go to `handler` on a subscriber's io thread.
// Only channels given to watch() are subscribed (sharded), so the handler
// still has to ignore the rest (plain). Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "memgate/coord/cluster_router.h"
#include "memgate/coord/connection.h"

namespace memgate::coord {

class ClusterSubscriber {
 public:
  // `router` and `metrics` must outlive this.
  ClusterSubscriber(ClusterRouter& router, std::string pattern, Connection::MessageHandler handler,
                    CoordMetrics* metrics);
  ~ClusterSubscriber();
  ClusterSubscriber(const ClusterSubscriber&) = delete;
  ClusterSubscriber& operator=(const ClusterSubscriber&) = delete;

  // Hear `channel` from now on (idempotent). Waits up to 500 ms for a
  // subscriber connection it had to create.
  void watch(const std::string& channel);
  // Places the watched channels again when the router's map changed.
  void follow_map();

  // Subscriber connections open (for tests and /metrics).
  size_t connections();

 private:
  // mu_ held: subscribe `channel` where it belongs now; the connection it had to create, if any.
  Connection* place_locked(const std::string& channel);
  void decide_mode_locked();

  ClusterRouter& router_;
  std::string pattern_;
  Connection::MessageHandler handler_;
  CoordMetrics* metrics_;

  std::mutex mu_;
  int mode_ = -1;  // -1 not known yet (no map), 0 plain, 1 sharded
  uint64_t seen_generation_ = 0;
  std::unique_ptr<Connection> plain_;
  std::map<std::string, std::unique_ptr<Connection>> nodes_;  // by "host:port"
  std::map<std::string, std::string> channels_;               // channel -> where it is subscribed ("" not yet)
};

}  // namespace memgate::coord
