// Completion messages on a cluster: subscriber Connections placed by the
// router's slot map. Nothing here blocks a subscriber's io thread; placement
// runs on the waiting threads (watch, follow_map).
#include "memgate/coord/cluster_subscriber.h"

#include <atomic>

#include "memgate/coord/key_layout.h"

namespace memgate::coord {

ClusterSubscriber::ClusterSubscriber(ClusterRouter& router, std::string pattern, Connection::MessageHandler handler,
                                     CoordMetrics* metrics)
    : router_(router), pattern_(std::move(pattern)), handler_(std::move(handler)), metrics_(metrics) {}

ClusterSubscriber::~ClusterSubscriber() {
  std::unique_ptr<Connection> plain;
  std::map<std::string, std::unique_ptr<Connection>> nodes;
  {
    std::lock_guard lock(mu_);
    plain = std::move(plain_);
    nodes.swap(nodes_);
  }
  // Joins their io threads: no message is handled after this.
}

size_t ClusterSubscriber::connections() {
  std::lock_guard lock(mu_);
  return nodes_.size() + (plain_ ? 1 : 0);
}

void ClusterSubscriber::decide_mode_locked() {
  if (mode_ >= 0 || router_.map_generation() == 0) return;
  mode_ = router_.sharded_pubsub() ? 1 : 0;
  if (mode_ == 1) return;
  RedisSettings s = router_.settings();
  s.cluster_seeds.clear();
  EndpointSource any_master = [router = &router_,
                               turn = std::make_shared<std::atomic<size_t>>(0)]() -> Result<Endpoint> {
    auto e = router->master_at(turn->fetch_add(1));
    if (!e) return Unavailable("redis cluster: no slot map yet");
    return *e;
  };
  plain_ = Connection::create_subscriber(s, {pattern_}, handler_, metrics_, std::move(any_master));
}

Connection* ClusterSubscriber::place_locked(const std::string& channel) {
  if (mode_ != 1) return nullptr;
  auto owner = router_.owner_of(key_slot(channel));
  if (!owner) return nullptr;
  std::string where = owner->describe();
  std::string& placed = channels_[channel];
  if (placed == where) return nullptr;
  Connection* created = nullptr;
  auto it = nodes_.find(where);
  if (it == nodes_.end()) {
    if (nodes_.size() >= ClusterRouter::kMaxNodes) return nullptr;  // the slow poll covers it
    RedisSettings s = router_.settings();
    s.cluster_seeds.clear();
    s.host = owner->host;
    s.port = owner->port;
    it = nodes_.emplace(where, Connection::create_subscriber(s, {}, handler_, metrics_)).first;
    created = it->second.get();
  }
  it->second->subscribe({"SSUBSCRIBE", channel});
  placed = where;
  return created;
}

void ClusterSubscriber::watch(const std::string& channel) {
  Connection* wait_on = nullptr;
  {
    std::lock_guard lock(mu_);
    bool had_plain = plain_ != nullptr;
    decide_mode_locked();
    if (plain_ && !had_plain) wait_on = plain_.get();
    auto [it, fresh] = channels_.emplace(channel, std::string());
    if (fresh || it->second.empty())
      if (Connection* created = place_locked(channel)) wait_on = created;
  }
  // Connections are never removed before the destructor: safe to wait on unlocked.
  if (wait_on) (void)wait_on->wait_connected(std::chrono::milliseconds(500));
}

void ClusterSubscriber::follow_map() {
  uint64_t generation = router_.map_generation();
  std::lock_guard lock(mu_);
  if (generation == seen_generation_) return;
  seen_generation_ = generation;
  decide_mode_locked();
  for (auto& [channel, where] : channels_) (void)place_locked(channel);
}

}  // namespace memgate::coord
