// Slot routing over plain Connections.
//
// Design. The slot map is an immutable value (an owner index per slot and the
// nodes) behind one shared_ptr; routing a command copies that pointer under a
// mutex, looks at one array entry and sends on the node's Connection, so the
// normal path costs one uncontended lock more than a single server. A refresh
// builds a new map and swaps it in; nodes that stay keep their connections,
// nodes that leave are kept "retired" for a while (a sender that picked one just
// before the swap still finishes on it) and destroyed by a later refresh, never
// on an io thread. Redirects are rare (a migration, a failover, a resharding), so
// they are handled in the simplest way that keeps callbacks non-blocking: a
// blocking loop, run by the caller for blocking calls and by the router's own
// thread for async ones. ASK needs ASKING immediately before the command on the
// same connection; the node's shared connection cannot promise that (any thread
// may send between the two), so each node has a second connection used for ASK
// only, and only under that node's mutex.
#include "memgate/coord/cluster_router.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <future>
#include <random>

#include "memgate/coord/key_layout.h"

namespace memgate::coord {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

bool parse_u64(std::string_view text, uint64_t max, uint64_t& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && p == text.data() + text.size() && out <= max;
}

// "host:port" with the port after the last ':' (IPv6 hosts are sent bare).
std::optional<Endpoint> parse_address(std::string_view text, const Endpoint& replying) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  uint64_t port = 0;
  if (!parse_u64(text.substr(colon + 1), 65535, port) || port == 0) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.size() > 255) return std::nullopt;
  Endpoint e;
  e.host = host.empty() ? replying.host : std::string(host);
  e.port = static_cast<uint16_t>(port);
  return e;
}

Result<Reply> wait_for(const std::function<void(ReplyCallback)>& start) {
  auto promise = std::make_shared<std::promise<Result<Reply>>>();
  auto future = promise->get_future();
  start([promise](Result<Reply> r) { promise->set_value(std::move(r)); });
  return future.get();  // a Connection answers every callback within command_timeout
}

}  // namespace

Redirect parse_redirect(std::string_view error, const Endpoint& replying) {
  Redirect out;
  auto starts = [&](std::string_view word) {
    return error.size() >= word.size() && error.substr(0, word.size()) == word &&
           (error.size() == word.size() || error[word.size()] == ' ');
  };
  if (starts("TRYAGAIN")) {
    out.kind = Redirect::Kind::kTryAgain;
    return out;
  }
  if (starts("CLUSTERDOWN")) {
    out.kind = Redirect::Kind::kClusterDown;
    return out;
  }
  Redirect::Kind kind;
  if (starts("MOVED"))
    kind = Redirect::Kind::kMoved;
  else if (starts("ASK"))
    kind = Redirect::Kind::kAsk;
  else
    return out;
  std::string_view rest = error.substr(kind == Redirect::Kind::kMoved ? 6 : 4);
  size_t space = rest.find(' ');
  if (space == std::string_view::npos) return out;
  uint64_t slot = 0;
  if (!parse_u64(rest.substr(0, space), kClusterSlots - 1, slot)) return out;
  auto to = parse_address(rest.substr(space + 1), replying);
  if (!to) return out;
  out.kind = kind;
  out.slot = static_cast<uint16_t>(slot);
  out.to = std::move(*to);
  return out;
}

Result<SlotMapSpec> parse_cluster_slots(const Reply& reply, const Endpoint& asked, size_t max_nodes) {
  auto bad = [](const std::string& what) { return InvalidArgument("CLUSTER SLOTS: " + what); };
  if (reply.is_error()) return bad("the node answered " + reply.str.substr(0, 80));
  if (reply.type != Reply::Type::kArray) return bad("not an array");
  if (reply.elements.size() > kClusterSlots) return bad("more ranges than slots");
  SlotMapSpec spec;
  for (const Reply& entry : reply.elements) {
    if (entry.type != Reply::Type::kArray || entry.elements.size() < 3)
      return bad("a range is not [first, last, master, ...]");
    const Reply& first = entry.elements[0];
    const Reply& last = entry.elements[1];
    const Reply& master = entry.elements[2];
    if (first.type != Reply::Type::kInteger || last.type != Reply::Type::kInteger || first.integer < 0 ||
        last.integer < first.integer || last.integer >= kClusterSlots)
      return bad("a range's slots are not within 0-16383");
    if (master.type != Reply::Type::kArray || master.elements.size() < 2 ||
        master.elements[0].type != Reply::Type::kString || master.elements[1].type != Reply::Type::kInteger)
      return bad("a range's master is not [host, port, ...]");
    const std::string& host = master.elements[0].str;
    int64_t port = master.elements[1].integer;
    if (host.size() > 255 || host == "?") return bad("a master's host is unknown or too long");
    if (port < 1 || port > 65535) return bad("a master's port is not within 1-65535");
    Endpoint e{host.empty() ? asked.host : host, static_cast<uint16_t>(port)};
    auto it = std::find(spec.masters.begin(), spec.masters.end(), e);
    size_t index = static_cast<size_t>(it - spec.masters.begin());
    if (it == spec.masters.end()) {
      if (spec.masters.size() >= max_nodes) return bad("more than " + std::to_string(max_nodes) + " masters");
      spec.masters.push_back(std::move(e));
    }
    spec.ranges.push_back({static_cast<uint16_t>(first.integer), static_cast<uint16_t>(last.integer), index});
  }
  if (spec.masters.empty()) return bad("no slot is served");
  return spec;
}

// ---- the router's state ------------------------------------------------------------

struct ClusterRouter::Node {
  Endpoint address;
  std::unique_ptr<Connection> conn;
  std::mutex ask_mu;
  std::unique_ptr<Connection> ask;  // created on the first ASK to this node
  Clock::time_point retired_at{};
};

struct ClusterRouter::SlotMap {
  std::array<int16_t, kClusterSlots> owner{};  // index into nodes, -1: no master
  std::vector<std::shared_ptr<Node>> nodes;
  uint64_t generation = 0;
};

// A command to route. Views: the caller's (blocking) or an OwnedRequest's.
struct ClusterRouter::Request {
  const Script* script = nullptr;  // eval when set
  std::vector<std::string_view> keys;
  std::vector<std::string_view> args;  // the whole command, or the script's ARGV
  std::optional<uint16_t> slot;
};

struct ClusterRouter::OwnedRequest {
  std::vector<std::string> storage;
  Request q;
  OwnedRequest(const Script* script, const std::vector<std::string_view>& keys,
               const std::vector<std::string_view>& args, std::optional<uint16_t> slot) {
    storage.reserve(keys.size() + args.size());
    for (auto k : keys) storage.emplace_back(k);
    for (auto a : args) storage.emplace_back(a);
    q.script = script;
    q.slot = slot;
    for (size_t i = 0; i < keys.size(); ++i) q.keys.push_back(storage[i]);
    for (size_t i = 0; i < args.size(); ++i) q.args.push_back(storage[keys.size() + i]);
  }
};

ClusterRouter::ClusterRouter(RedisSettings settings, CoordMetrics* metrics)
    : settings_(std::move(settings)), metrics_(metrics) {
  worker_ = std::thread([this] { run(); });
}

ClusterRouter::~ClusterRouter() {
  {
    std::lock_guard lock(work_mu_);
    stopping_ = true;
    stop_flag_.store(true);
  }
  work_cv_.notify_all();
  map_cv_.notify_all();
  worker_.join();
  // Nodes go last: their connections fail what is pending, and those callbacks
  // may still look at this router (they see it stopping).
  std::shared_ptr<SlotMap> map;
  std::vector<std::shared_ptr<Node>> extra, retired;
  {
    std::lock_guard lock(map_mu_);
    map = std::move(map_);
    extra = std::move(extra_);
    retired = std::move(retired_);
  }
  map.reset();
  extra.clear();
  retired.clear();
}

RedisSettings ClusterRouter::node_settings(const Endpoint& where) const {
  RedisSettings s = settings_;
  s.cluster_seeds.clear();
  s.host = where.host;
  s.port = where.port;
  s.db = 0;
  return s;
}

std::shared_ptr<ClusterRouter::Node> ClusterRouter::make_node(const Endpoint& where) {
  auto n = std::make_shared<Node>();
  n->address = where;
  n->conn = Connection::create(node_settings(where), metrics_, false);
  return n;
}

std::shared_ptr<ClusterRouter::SlotMap> ClusterRouter::map() const {
  std::lock_guard lock(map_mu_);
  return map_;
}

uint64_t ClusterRouter::map_generation() const {
  auto m = map();
  return m ? m->generation : 0;
}

std::optional<Endpoint> ClusterRouter::owner_of(uint16_t slot) const {
  auto m = map();
  if (!m || slot >= kClusterSlots || m->owner[slot] < 0) return std::nullopt;
  return m->nodes[static_cast<size_t>(m->owner[slot])]->address;
}

std::optional<Endpoint> ClusterRouter::master_at(size_t i) const {
  auto m = map();
  if (!m || m->nodes.empty()) return std::nullopt;
  return m->nodes[i % m->nodes.size()]->address;
}

std::shared_ptr<ClusterRouter::Node> ClusterRouter::node_for(const Request& q, const SlotMap* m) const {
  if (!m || m->nodes.empty()) return nullptr;
  if (q.slot) {
    int16_t owner = m->owner[*q.slot];
    // A slot without a master: any node answers with the cluster's view (MOVED or CLUSTERDOWN).
    return m->nodes[owner < 0 ? 0 : static_cast<size_t>(owner)];
  }
  return m->nodes.front();
}

// ---- connected? ----------------------------------------------------------------------

bool ClusterRouter::connected() const {
  auto m = map();
  bool up = m != nullptr;
  if (m)
    for (auto& n : m->nodes) up = up && n->conn->connected();
  metrics_->connection_state.store(static_cast<int>(up ? ConnectionState::kConnected : ConnectionState::kConnecting));
  return up;
}

Status ClusterRouter::wait_connected(milliseconds timeout) {
  // The map may change while waiting (a refresh that drops a dead master):
  // look again every 50 ms.
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto m = map();
    std::shared_ptr<Node> down;
    if (m)
      for (auto& n : m->nodes)
        if (!n->conn->connected()) down = n;
    if (m && !down) {
      metrics_->connection_state.store(static_cast<int>(ConnectionState::kConnected));
      return Status::Ok();
    }
    metrics_->connection_state.store(static_cast<int>(ConnectionState::kConnecting));
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || stop_flag_.load()) {
      if (!m) return Unavailable("redis cluster at " + settings_.describe() + " is not reachable: " + last_error());
      return Unavailable("redis cluster master " + down->address.describe() +
                         " is not reachable: " + down->conn->last_error());
    }
    auto slice = std::min(left, milliseconds(50));
    if (down) {
      (void)down->conn->wait_connected(slice);
    } else {
      std::unique_lock lock(map_mu_);
      map_cv_.wait_for(lock, slice, [&] { return map_ != nullptr; });
    }
  }
}

std::string ClusterRouter::last_error() const {
  auto m = map();
  if (m)
    for (auto& n : m->nodes)
      if (!n->conn->connected()) return n->address.describe() + ": " + n->conn->last_error();
  std::lock_guard lock(map_mu_);
  return m ? std::string() : (last_error_.empty() ? "no slot map yet" : last_error_);
}

// ---- the slot map --------------------------------------------------------------------

Result<SlotMapSpec> ClusterRouter::ask_slots(const Endpoint& where, Connection* existing) {
  std::unique_ptr<Connection> temp;
  Connection* conn = existing;
  if (!conn || !conn->connected()) {
    // A seed (or a node whose connection is down): a short-lived connection that
    // gives up as soon as an attempt failed, so a dead seed costs little.
    RedisSettings s = node_settings(where);
    s.command_timeout = std::min(settings_.command_timeout, milliseconds(1000));
    temp = Connection::create(s, &scratch_, false);
    auto deadline = Clock::now() + settings_.connect_timeout;
    while (!temp->wait_connected(milliseconds(20)).ok()) {
      if (!temp->last_error().empty() || Clock::now() >= deadline || stop_flag_.load())
        return Unavailable(where.describe() + ": " + (temp->last_error().empty() ? "timed out" : temp->last_error()));
    }
    conn = temp.get();
  }
  auto r = conn->command({"CLUSTER", "SLOTS"});
  if (!r.ok()) return Unavailable(where.describe() + ": " + r.status().message());
  auto spec = parse_cluster_slots(*r, where, kMaxNodes);
  if (spec.ok() && sharded_pubsub_.load() < 0) check_sharded_pubsub(*conn);
  if (!spec.ok()) return Status(spec.status().code(), where.describe() + ": " + spec.status().message());
  return spec;
}

void ClusterRouter::check_sharded_pubsub(Connection& conn) {
  // COMMAND INFO answers one entry per name: nil for a command the server lacks.
  auto r = conn.command({"COMMAND", "INFO", "SPUBLISH"});
  if (!r.ok() || r->is_error()) return;  // asked again with the next map
  bool has = r->type == Reply::Type::kArray && r->elements.size() == 1 && r->elements[0].type == Reply::Type::kArray;
  sharded_pubsub_.store(has ? 1 : 0);
  if (!has) spdlog::info("redis cluster: no SPUBLISH (Redis before 7): completion messages use PUBLISH");
}

Status ClusterRouter::install(const SlotMapSpec& spec) {
  auto m = std::make_shared<SlotMap>();
  m->owner.fill(-1);
  std::vector<std::shared_ptr<Node>> dropped;
  std::vector<CoordMetrics::ClusterNode> summary;
  {
    std::lock_guard lock(map_mu_);
    std::vector<std::shared_ptr<Node>> known = extra_;
    if (map_) known.insert(known.end(), map_->nodes.begin(), map_->nodes.end());
    for (const Endpoint& e : spec.masters) {
      auto it = std::find_if(known.begin(), known.end(), [&](auto& n) { return n->address == e; });
      m->nodes.push_back(it != known.end() ? *it : nullptr);
    }
  }
  // New nodes' connections are made outside the lock (Connection::create starts a thread).
  for (size_t i = 0; i < m->nodes.size(); ++i)
    if (!m->nodes[i]) m->nodes[i] = make_node(spec.masters[i]);
  summary.resize(m->nodes.size());
  for (auto& r : spec.ranges) {
    for (uint32_t s = r.first; s <= r.last; ++s) m->owner[s] = static_cast<int16_t>(r.master);
    summary[r.master].slots += static_cast<uint32_t>(r.last - r.first + 1);
  }
  for (size_t i = 0; i < m->nodes.size(); ++i) summary[i].address = m->nodes[i]->address.describe();
  auto now = Clock::now();
  auto keep_for = 4 * settings_.command_timeout + settings_.connect_timeout;
  {
    std::lock_guard lock(map_mu_);
    m->generation = (map_ ? map_->generation : 0) + 1;
    auto in_new = [&](const std::shared_ptr<Node>& n) {
      return std::find(m->nodes.begin(), m->nodes.end(), n) != m->nodes.end();
    };
    if (map_)
      for (auto& n : map_->nodes)
        if (!in_new(n)) {
          n->retired_at = now;
          retired_.push_back(n);
        }
    std::erase_if(extra_, in_new);
    // Retired long enough: nobody still sends on them. Dropped outside the lock.
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (in_new(*it)) {
        it = retired_.erase(it);
      } else if (now - (*it)->retired_at > keep_for || retired_.size() > 2 * kMaxNodes) {
        dropped.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
    map_ = m;
    last_error_.clear();
  }
  map_cv_.notify_all();
  metrics_->cluster_slot_map_refreshes.fetch_add(1);
  metrics_->set_cluster_nodes(std::move(summary));
  dropped.clear();
  return Status::Ok();
}

Status ClusterRouter::refresh(uint64_t seen) {
  std::lock_guard one(refresh_mu_);
  auto current = map();
  if (current && current->generation > seen) return Status::Ok();  // someone refreshed meanwhile
  std::vector<std::pair<Endpoint, Connection*>> ask;
  if (current)
    for (auto& n : current->nodes) ask.emplace_back(n->address, n->conn.get());
  for (auto& seed : settings_.cluster_seeds)
    if (std::none_of(ask.begin(), ask.end(), [&](auto& a) { return a.first == seed; })) ask.emplace_back(seed, nullptr);
  std::string failures;
  for (auto& [where, conn] : ask) {
    if (stop_flag_.load()) return Unavailable("redis cluster router stopped");
    auto spec = ask_slots(where, conn);
    if (spec.ok()) return install(*spec);
    failures += (failures.empty() ? "" : "; ") + spec.status().message();
  }
  std::lock_guard lock(map_mu_);
  last_error_ = "no node gave a slot map (" + failures.substr(0, 600) + ")";
  return Unavailable(last_error_);
}

Result<std::shared_ptr<ClusterRouter::Node>> ClusterRouter::node_at(const Endpoint& where) {
  {
    std::lock_guard lock(map_mu_);
    if (map_)
      for (auto& n : map_->nodes)
        if (n->address == where) return n;
    for (auto& n : extra_)
      if (n->address == where) return n;
    if (extra_.size() >= kMaxNodes)
      return Unavailable("redis cluster: a redirect names " + where.describe() + ", past " + std::to_string(kMaxNodes) +
                         " nodes outside the slot map");
  }
  auto n = make_node(where);
  if (Status st = n->conn->wait_connected(settings_.connect_timeout); !st.ok()) return st;
  std::lock_guard lock(map_mu_);
  for (auto& other : extra_)
    if (other->address == where) return other;  // another caller made it first; ours is dropped
  extra_.push_back(n);
  return n;
}

void ClusterRouter::request_refresh() {
  {
    std::lock_guard lock(work_mu_);
    if (stopping_) return;
    refresh_wanted_ = true;
  }
  work_cv_.notify_one();
}

// ---- sending -------------------------------------------------------------------------

Result<Reply> ClusterRouter::send(Node& node, const Request& q) {
  return q.script ? node.conn->eval(*q.script, q.keys, q.args) : node.conn->command(q.args);
}

Result<Reply> ClusterRouter::send_asking(Node& node, const Request& q) {
  std::string nkeys = std::to_string(q.keys.size());
  std::vector<std::string_view> cmd;
  if (q.script) {
    cmd = {"EVAL", q.script->source(), nkeys};
    cmd.insert(cmd.end(), q.keys.begin(), q.keys.end());
  }
  cmd.insert(cmd.end(), q.args.begin(), q.args.end());
  std::unique_lock lock(node.ask_mu);
  if (!node.ask) node.ask = Connection::create(node_settings(node.address), metrics_, false);
  if (Status st = node.ask->wait_connected(settings_.connect_timeout); !st.ok()) return st;
  return wait_for([&](ReplyCallback cb) {
    // Both under ask_mu: nothing else is sent on this connection between them.
    node.ask->async_command({"ASKING"}, [](Result<Reply>) {});
    node.ask->async_command(cmd, std::move(cb));
    lock.unlock();
  });
}

bool ClusterRouter::sleep_unless_stopping(milliseconds d) {
  std::unique_lock lock(work_mu_);
  return !work_cv_.wait_for(lock, d, [&] { return stopping_; });
}

Result<Reply> ClusterRouter::execute(const Request& q, std::optional<Result<Reply>> first, Endpoint first_from) {
  int redirects = 0;
  auto retry_deadline = Clock::now() + settings_.command_timeout;
  milliseconds backoff(10);
  std::shared_ptr<Node> target;  // set by MOVED: the next attempt goes there
  std::shared_ptr<Node> asking;  // set by ASK
  for (;;) {
    if (stop_flag_.load()) return Unavailable("redis cluster router stopped");
    Result<Reply> r = Internal("no reply");
    Endpoint from;
    if (first) {
      r = std::move(*first);
      from = first_from;
      first.reset();
    } else if (asking) {
      from = asking->address;
      r = send_asking(*asking, q);
    } else {
      auto m = map();
      auto node = target ? target : node_for(q, m.get());
      if (!node)
        return Unavailable("redis cluster at " + settings_.describe() + ": no slot map yet (" + last_error() + ")");
      from = node->address;
      r = send(*node, q);
    }
    asking.reset();
    target.reset();
    if (!r.ok()) {
      if (r.status().code() == Code::kUnavailable) request_refresh();
      return r;
    }
    if (!r->is_error()) return r;
    Redirect redirect = parse_redirect(r->str, from);
    switch (redirect.kind) {
      case Redirect::Kind::kNone:
        return r;
      case Redirect::Kind::kMoved:
      case Redirect::Kind::kAsk: {
        bool moved = redirect.kind == Redirect::Kind::kMoved;
        (moved ? metrics_->cluster_redirects_moved : metrics_->cluster_redirects_ask).fetch_add(1);
        if (++redirects > kMaxRedirects)
          return Unavailable("redis cluster: more than " + std::to_string(kMaxRedirects) +
                             " redirects (last: " + r->str.substr(0, 80) + ")");
        if (moved) (void)refresh(map_generation());
        auto node = node_at(redirect.to);
        if (!node.ok()) return node.status();
        (moved ? target : asking) = std::move(*node);
        continue;
      }
      case Redirect::Kind::kTryAgain:
      case Redirect::Kind::kClusterDown: {
        bool down = redirect.kind == Redirect::Kind::kClusterDown;
        (down ? metrics_->cluster_retries_clusterdown : metrics_->cluster_retries_tryagain).fetch_add(1);
        if (Clock::now() + backoff > retry_deadline)
          return Unavailable("redis cluster: " + r->str.substr(0, 80) + " (still, after " +
                             std::to_string(settings_.command_timeout.count()) + "ms of retries)");
        if (down) request_refresh();
        redirects = 0;  // an ASK may lead here again and again: the time bound ends that loop
        if (!sleep_unless_stopping(backoff)) return Unavailable("redis cluster router stopped");
        backoff = std::min(backoff * 2, milliseconds(200));
        continue;
      }
    }
  }
}

Result<Reply> ClusterRouter::command(const std::vector<std::string_view>& args) {
  Request q;
  q.args = args;
  if (args.size() > 1) q.slot = key_slot(args[1]);
  return execute(q, std::nullopt, {});
}

Result<Reply> ClusterRouter::command_near(std::string_view key, const std::vector<std::string_view>& args) {
  Request q;
  q.args = args;
  q.slot = key_slot(key);
  return execute(q, std::nullopt, {});
}

Result<Reply> ClusterRouter::eval(const Script& script, const std::vector<std::string_view>& keys,
                                  const std::vector<std::string_view>& args) {
  Request q;
  q.script = &script;
  q.keys = keys;
  q.args = args;
  if (!keys.empty()) q.slot = key_slot(keys[0]);
  return execute(q, std::nullopt, {});
}

void ClusterRouter::async_command(const std::vector<std::string_view>& args, ReplyCallback cb) {
  std::optional<uint16_t> slot;
  if (args.size() > 1) slot = key_slot(args[1]);
  submit_async(std::make_shared<OwnedRequest>(nullptr, std::vector<std::string_view>{}, args, slot), std::move(cb));
}

void ClusterRouter::async_eval(const Script& script, const std::vector<std::string_view>& keys,
                               const std::vector<std::string_view>& args, ReplyCallback cb) {
  std::optional<uint16_t> slot;
  if (!keys.empty()) slot = key_slot(keys[0]);
  submit_async(std::make_shared<OwnedRequest>(&script, keys, args, slot), std::move(cb));
}

void ClusterRouter::submit_async(std::shared_ptr<OwnedRequest> owned, ReplyCallback cb) {
  auto m = map();
  auto node = node_for(owned->q, m.get());
  if (!node) {
    // No map yet: the router's thread waits for nothing here; fail like a
    // Connection that is not connected.
    request_refresh();
    Status st = Unavailable("redis cluster at " + settings_.describe() + " is not connected: " + last_error());
    enqueue([cb, st] { cb(Result<Reply>(st)); }, cb);
    return;
  }
  Endpoint from = node->address;
  auto on_reply = [this, owned, from, cb = std::move(cb)](Result<Reply> r) mutable {
    if (r.ok() && r->is_error() && parse_redirect(r->str, from).kind != Redirect::Kind::kNone) {
      // The redirect loop blocks: it runs on the router's thread.
      auto job = [this, owned, from, cb, first = std::move(r)]() mutable {
        cb(execute(owned->q, std::move(first), from));
      };
      enqueue(std::move(job), cb);
      return;
    }
    if (!r.ok() && r.status().code() == Code::kUnavailable) request_refresh();
    cb(std::move(r));
  };
  if (owned->q.script)
    node->conn->async_eval(*owned->q.script, owned->q.keys, owned->q.args, std::move(on_reply));
  else
    node->conn->async_command(owned->q.args, std::move(on_reply));
}

void ClusterRouter::enqueue(std::function<void()> job, const ReplyCallback& on_refused) {
  {
    std::lock_guard lock(work_mu_);
    if (!stopping_ && jobs_.size() < kMaxQueuedRedirects) {
      jobs_.push_back(std::move(job));
      work_cv_.notify_one();
      return;
    }
  }
  on_refused(Result<Reply>(Unavailable(stop_flag_.load() ? "redis cluster router stopped"
                                                         : "redis cluster: too many redirected commands waiting")));
}

// ---- the router's thread -------------------------------------------------------------

void ClusterRouter::run() {
  int attempt = 0;
  auto last_refresh = Clock::time_point{};
  std::mt19937_64 rng(std::random_device{}());
  for (;;) {
    std::function<void()> job;
    bool want_refresh = false;
    {
      std::unique_lock lock(work_mu_);
      bool have_map = map_generation() > 0;
      auto ready = [&] { return stopping_ || !jobs_.empty() || refresh_wanted_ || !have_map; };
      // Idle: once a second, the connection-state gauge follows the nodes
      // (their connections do not report it: there are several), and a master
      // that stays unreachable makes the map be read again (a replica may have
      // taken its slots) even when no command failed on it.
      if (!work_cv_.wait_for(lock, std::chrono::seconds(1), ready)) {
        if (!connected()) refresh_wanted_ = true;
        continue;
      }
      if (stopping_) break;
      if (!jobs_.empty()) {
        job = std::move(jobs_.front());
        jobs_.pop_front();
      } else {
        want_refresh = true;
        refresh_wanted_ = false;
      }
    }
    if (job) {
      job();
      continue;
    }
    if (!want_refresh) continue;
    // At most one background refresh per reconnect_min; the first map is
    // retried with the reconnect backoff until it comes.
    auto since = Clock::now() - last_refresh;
    if (since < settings_.reconnect_min &&
        !sleep_unless_stopping(std::chrono::duration_cast<milliseconds>(settings_.reconnect_min - since)))
      break;
    last_refresh = Clock::now();
    Status st = refresh(map_generation());
    if (st.ok()) {
      attempt = 0;
      continue;
    }
    if (map_generation() == 0) {
      spdlog::debug("redis cluster: {}", st.message());
      std::uniform_real_distribution<double> u(0.0, 1.0);
      if (!sleep_unless_stopping(reconnect_delay(attempt++, settings_.reconnect_min, settings_.reconnect_max, u(rng))))
        break;
    }
  }
  // Stopping: what is still queued fails (each job sees the router stopping).
  std::deque<std::function<void()>> left;
  {
    std::lock_guard lock(work_mu_);
    left.swap(jobs_);
  }
  for (auto& job : left) job();
}

}  // namespace memgate::coord
