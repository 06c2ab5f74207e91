// Three cluster-enabled servers joined by redis-cli. Each node gets its own bus
// port (--cluster-port, from free_port(), because port + 10000 may be past 65535
// for the ephemeral ports free_port() hands out) and its own directory, so its
// nodes.conf is its own. Readiness and slot moves go through redis-cli, like an
// operator's would.
#include "tests/support/redis_cluster.h"

#include <cstdio>
#include <sstream>

namespace memgate::testing {

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

bool ok_reply(const std::string& out) { return first_line(out) == "OK"; }

}  // namespace

Result<std::unique_ptr<RedisCluster>> RedisCluster::start(ClusterOptions options) {
  std::unique_ptr<RedisCluster> c(new RedisCluster());
  c->dir_ = temp_dir("memgate-cluster");
  if (c->dir_.empty()) return Internal("cannot make a temp dir for the cluster");
  for (int i = 0; i < 3; ++i) {
    RedisOptions o;
    o.extra_args = {"--cluster-enabled",      "yes",
                    "--cluster-config-file",  "nodes.conf",
                    "--cluster-port",         std::to_string(free_port()),
                    "--cluster-node-timeout", "2000"};
    o.extra_args.insert(o.extra_args.end(), options.extra_args.begin(), options.extra_args.end());
    auto s = RedisServer::start(o);
    if (!s.ok()) return s.status();
    c->nodes_.push_back(std::move(*s));
  }
  std::vector<std::string> create = {"--cluster", "create"};
  for (auto& n : c->nodes_) create.push_back("127.0.0.1:" + std::to_string(n->port()));
  create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
  std::string out = c->cli(0, create);
  if (out.find("[OK] All 16384 slots covered") == std::string::npos)
    return Unavailable("redis-cli --cluster create failed: " + out.substr(0, 400));
  if (!wait_until([&] { return c->healthy(); }, std::chrono::seconds(30)))
    return Unavailable("the cluster did not reach cluster_state:ok; see " + c->dir_);
  for (size_t i = 0; i < c->nodes_.size(); ++i) c->ids_.push_back(first_line(c->cli(i, {"CLUSTER", "MYID"})));
  return c;
}

RedisCluster::~RedisCluster() {
  for (auto& n : nodes_) n.reset();  // SIGKILL by pid, reaped; each removes its own dir
  if (!dir_.empty()) remove_tree(dir_);
}

std::string RedisCluster::url() const { return url_with_seeds({0, 1, 2}); }

std::string RedisCluster::url_with_seeds(const std::vector<size_t>& nodes) const {
  std::string url = "redis-cluster://";
  for (size_t i = 0; i < nodes.size(); ++i) url += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(port(nodes[i]));
  return url;
}

std::string RedisCluster::cli(size_t node, const std::vector<std::string>& args) {
  std::string log = dir_ + "/redis-cli-" + std::to_string(++cli_runs_) + ".out";
  std::vector<std::string> argv{"redis-cli", "-p", std::to_string(port(node))};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Subprocess::start(argv, {}, log);
  if (!p.ok()) return "";
  (*p)->wait_for(std::chrono::seconds(20));
  std::string out = read_file(log);
  std::remove(log.c_str());
  return out;
}

std::string RedisCluster::node_id(size_t i) { return ids_.at(i); }

bool RedisCluster::healthy() {
  std::string reference;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (cli(i, {"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) return false;
    std::string slots = cli(i, {"CLUSTER", "SLOTS"});
    // Node ids and ports, without the order in which ranges are listed.
    if (i == 0)
      reference = slots;
    else if (slots.size() != reference.size())
      return false;
  }
  return true;
}

int RedisCluster::owner_of(uint16_t slot) {
  // "CLUSTER SLOTS" as redis-cli prints it: first, last, host, port, id, ... per range.
  std::istringstream in(cli(0, {"CLUSTER", "SLOTS"}));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (size_t i = 0; i + 3 < lines.size(); ++i) {
    auto number = [](const std::string& s) {
      return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 6;
    };
    if (!number(lines[i]) || !number(lines[i + 1]) || lines[i + 2] != "127.0.0.1" || !number(lines[i + 3])) continue;
    int first = std::stoi(lines[i]), last = std::stoi(lines[i + 1]), p = std::stoi(lines[i + 3]);
    if (slot < first || slot > last) continue;
    for (size_t n = 0; n < nodes_.size(); ++n)
      if (port(n) == p) return static_cast<int>(n);
  }
  return -1;
}

Status RedisCluster::begin_migration(uint16_t slot, size_t from, size_t to) {
  std::string s = std::to_string(slot);
  if (!ok_reply(cli(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", node_id(from)})))
    return Internal("SETSLOT IMPORTING failed");
  if (!ok_reply(cli(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", node_id(to)})))
    return Internal("SETSLOT MIGRATING failed");
  return Status::Ok();
}

Status RedisCluster::migrate_keys(uint16_t slot, size_t from, size_t to, std::vector<std::string> keys) {
  if (keys.empty()) {
    std::istringstream in(cli(from, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "1000"}));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) keys.push_back(line);
  }
  if (keys.empty()) return Status::Ok();
  std::vector<std::string> args = {"MIGRATE", "127.0.0.1", std::to_string(port(to)), "", "0", "5000", "KEYS"};
  args.insert(args.end(), keys.begin(), keys.end());
  std::string out = cli(from, args);
  if (first_line(out) != "OK" && first_line(out) != "NOKEY") return Internal("MIGRATE failed: " + out.substr(0, 200));
  return Status::Ok();
}

Status RedisCluster::finish_migration(uint16_t slot, size_t to) {
  std::string s = std::to_string(slot);
  // The new owner first (it bumps its epoch), then the others.
  if (!ok_reply(cli(to, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)}))) return Internal("SETSLOT NODE failed");
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (i == to) continue;
    if (!ok_reply(cli(i, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)}))) return Internal("SETSLOT NODE failed");
  }
  return Status::Ok();
}

Status RedisCluster::move_slot(uint16_t slot, size_t from, size_t to) {
  if (Status st = begin_migration(slot, from, to); !st.ok()) return st;
  if (Status st = migrate_keys(slot, from, to); !st.ok()) return st;
  return finish_migration(slot, to);
}

}  // namespace memgate::testing
