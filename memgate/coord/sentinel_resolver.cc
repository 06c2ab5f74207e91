// Sentinel resolution over plain Connections.
//
// Design. A resolution is rare (the first connection, then each reconnect), so
// it uses the simplest tools: a short-lived Connection per sentinel asked and
// one per candidate master, each given `timeout_` to connect and to answer, and
// destroyed at once. Sentinels are asked one at a time in `order_`; the one
// that answered with a confirmed master is moved to the front (the Sentinel
// client guidelines' rule), so a dead sentinel costs one timeout once, not on
// every reconnect. The master is confirmed with ROLE because a sentinel may
// still name the old master for a moment after a failover, and the old master,
// once back, may still believe it is one: a connection must not settle there.
#include "memgate/coord/sentinel_resolver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "memgate/coord/connection.h"

namespace memgate::coord {

SentinelResolver::SentinelResolver(RedisSettings settings, CoordMetrics* metrics, std::chrono::milliseconds timeout)
    : settings_(std::move(settings)), metrics_(metrics), timeout_(timeout), order_(settings_.sentinels) {}

SentinelResolver::~SentinelResolver() { unwatch(); }

void SentinelResolver::unwatch() {
  std::unique_ptr<Connection> w;
  {
    std::lock_guard lock(mu_);
    w = std::move(watcher_);
  }
  w.reset();  // joins its io thread: no callback runs after this
}

std::vector<Endpoint> SentinelResolver::sentinels() const {
  std::lock_guard lock(mu_);
  return order_;
}

RedisSettings SentinelResolver::sentinel_settings(const Endpoint& sentinel) const {
  RedisSettings s;
  s.transport = settings_.transport;
  s.host = sentinel.host;
  s.port = sentinel.port;
  s.password = settings_.sentinel_password;
  s.tls_ca = settings_.tls_ca;
  s.tls_insecure = settings_.tls_insecure;
  s.connect_timeout = timeout_;
  s.command_timeout = timeout_;
  return s;
}

Result<Endpoint> SentinelResolver::ask(const Endpoint& sentinel) {
  auto conn = Connection::create(sentinel_settings(sentinel), &scratch_, false);
  if (Status st = conn->wait_connected(timeout_); !st.ok()) return Unavailable(conn->last_error());
  auto r = conn->command({"SENTINEL", "get-master-addr-by-name", settings_.sentinel_master});
  conn.reset();
  if (!r.ok()) return r.status();
  if (r->is_error()) return Unavailable("it answered " + r->str.substr(0, 120));
  if (r->is_nil()) return Unavailable("it does not know a master named " + settings_.sentinel_master);
  if (r->type != Reply::Type::kArray || r->elements.size() != 2) return Unavailable("unexpected reply");
  Endpoint master;
  master.host = r->elements[0].str;
  const std::string& port = r->elements[1].str;
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (master.host.empty() || ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535)
    return Unavailable("it named an address that is not host and port");
  master.port = static_cast<uint16_t>(value);

  // Confirm: the address must say it is a master.
  RedisSettings m = settings_;
  m.sentinels.clear();
  m.host = master.host;
  m.port = master.port;
  m.connect_timeout = timeout_;
  m.command_timeout = timeout_;
  auto mc = Connection::create(m, &scratch_, false);
  if (Status st = mc->wait_connected(timeout_); !st.ok())
    return Unavailable("the master it named (" + master.describe() + ") is not reachable: " + mc->last_error());
  auto role = mc->command({"ROLE"});
  if (!role.ok()) return Unavailable("ROLE at " + master.describe() + ": " + role.status().message());
  if (role->type != Reply::Type::kArray || role->elements.empty() || role->elements[0].str != "master")
    return Unavailable("it named " + master.describe() + ", which is not a master (ROLE " +
                       (role->type == Reply::Type::kArray && !role->elements.empty() ? role->elements[0].str
                                                                                       : std::string("?")) +
                       ")");
  return master;
}

void SentinelResolver::publish_view(std::string last_error) {
  CoordMetrics::SentinelView view;
  view.master_name = settings_.sentinel_master;
  for (const Endpoint& s : sentinels()) view.sentinels.push_back(s.describe());
  view.last_error = std::move(last_error);
  metrics_->set_sentinel_view(std::move(view));
}

Result<Endpoint> SentinelResolver::resolve() {
  std::vector<Endpoint> order = sentinels();
  std::string failures;
  for (const Endpoint& sentinel : order) {
    auto master = ask(sentinel);
    if (!master.ok()) {
      failures += (failures.empty() ? "" : "; ") + sentinel.describe() + ": " + master.status().message();
      continue;
    }
    bool moved = false;
    {
      std::lock_guard lock(mu_);
      auto it = std::find(order_.begin(), order_.end(), sentinel);
      if (it != order_.end() && it != order_.begin()) std::rotate(order_.begin(), it, it + 1);
      moved = last_ && !(*last_ == *master);
      last_ = *master;
    }
    metrics_->set_master_address(master->describe());
    publish_view("");
    if (moved) {
      metrics_->sentinel_failovers.fetch_add(1);
      spdlog::warn("redis sentinel: master {} moved to {} (told by sentinel {})", settings_.sentinel_master,
                   master->describe(), sentinel.describe());
    }
    return master;
  }
  metrics_->sentinel_resolution_errors.fetch_add(1);
  publish_view(failures);
  return Unavailable("no sentinel named a reachable master " + settings_.sentinel_master + " (" + failures + ")");
}

void SentinelResolver::watch(std::function<void()> on_switch) {
  std::lock_guard lock(mu_);
  if (watcher_ || order_.empty()) return;
  std::string name = settings_.sentinel_master;
  // A sentinel's own messages; PSUBSCRIBE is what Connection's subscriber speaks.
  watcher_ = Connection::create_subscriber(
      sentinel_settings(order_.front()), {"+switch-master"},
      [name, on_switch = std::move(on_switch)](const std::string&, const std::string& payload) {
        // "<master name> <old ip> <old port> <new ip> <new port>"
        if (payload.rfind(name + " ", 0) == 0) on_switch();
      },
      &scratch_);
}

}  // namespace memgate::coord
