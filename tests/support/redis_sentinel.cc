// A master, a replica and three sentinels. Each sentinel gets its own config
// file (Sentinel rewrites it); readiness is asked of the sentinels themselves
// (SENTINEL master, sentinels, replicas <name>: each peer and the replica known
// and linked) through redis-cli. Ids, the replica and the peers are written into
// the configs up front, so readiness takes a moment rather than hello rounds.
#include "tests/support/redis_sentinel.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace memgate::testing {

namespace {

// The value after `key` in redis-cli's one-item-a-line output of a flat reply.
std::string field(const std::string& out, const std::string& key) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line == key) {
      std::string value;
      std::getline(in, value);
      return value;
    }
  return "";
}

// How many times `key` is followed by exactly `value` (one entry per element of an array reply).
int count_values(const std::string& out, const std::string& key, const std::string& value) {
  std::istringstream in(out);
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line == key) {
      std::string v;
      std::getline(in, v);
      if (v == value) ++n;
    }
  return n;
}

// A fixed 40-hex-digit run id for sentinel i.
std::string sentinel_id(size_t i) {
  std::string id(40, '0');
  id.back() = static_cast<char>('1' + i);
  return id;
}

}  // namespace

Result<std::unique_ptr<SentinelGroup>> SentinelGroup::start(SentinelOptions options) {
  std::unique_ptr<SentinelGroup> g(new SentinelGroup());
  g->options_ = options;
  g->dir_ = temp_dir("memgate-sentinel");
  if (g->dir_.empty()) return Internal("cannot make a temp dir for the sentinels");
  RedisOptions mo;
  mo.extra_args = {"--repl-diskless-sync-delay", "0"};  // the replica's full sync starts at once
  auto master = RedisServer::start(mo);
  if (!master.ok()) return master.status();
  g->master_ = std::move(*master);
  RedisOptions ro;
  ro.extra_args = {"--replicaof", "127.0.0.1", std::to_string(g->master_->port())};
  auto replica = RedisServer::start(ro);
  if (!replica.ok()) return replica.status();
  g->replica_ = std::move(*replica);
  bool linked = wait_until(
      [&] {
        return g->redis_cli(g->replica_->port(), {"INFO", "replication"}).find("master_link_status:up") !=
               std::string::npos;
      },
      std::chrono::seconds(10));
  if (!linked) return Unavailable("the replica did not sync with the master");
  while (g->sentinel_ports_.size() < 3) {
    uint16_t port = free_port();
    if (port == 0) return Internal("no free port for a sentinel");
    if (std::find(g->sentinel_ports_.begin(), g->sentinel_ports_.end(), port) == g->sentinel_ports_.end())
      g->sentinel_ports_.push_back(port);
  }
  for (size_t i = 0; i < 3; ++i) {
    if (Status st = g->start_sentinel(i); !st.ok()) return st;
  }
  bool ready = wait_until(
      [&] {
        for (uint16_t port : g->sentinel_ports_) {
          std::string out = g->redis_cli(port, {"SENTINEL", "master", g->options_.master_name},
                                         g->options_.sentinel_password);
          if (field(out, "num-slaves") != "1" || field(out, "num-other-sentinels") != "2") return false;
          if (field(out, "flags") != "master") return false;
          // Known in advance is not yet linked: each peer and the replica answer pings.
          std::string peers = g->redis_cli(port, {"SENTINEL", "sentinels", g->options_.master_name},
                                           g->options_.sentinel_password);
          if (count_values(peers, "flags", "sentinel") != 2) return false;
          std::string replicas = g->redis_cli(port, {"SENTINEL", "replicas", g->options_.master_name},
                                              g->options_.sentinel_password);
          if (count_values(replicas, "flags", "slave") != 1 || field(replicas, "master-link-status") != "ok")
            return false;
        }
        return true;
      },
      std::chrono::seconds(30));
  if (!ready) return Unavailable("the sentinels did not discover the replica and each other; see " + g->dir_);
  return g;
}

Status SentinelGroup::start_sentinel(size_t i) {
  std::string conf = dir_ + "/sentinel-" + std::to_string(i) + ".conf";
  std::string name = options_.master_name;
  {
    std::ofstream out(conf);
    out << "port " << sentinel_ports_[i] << "\n"
        << "bind 127.0.0.1\n"
        << "daemonize no\n"
        << "dir " << dir_ << "\n"
        << "logfile " << dir_ << "/sentinel-" << i << ".log\n"
        << "sentinel monitor " << name << " 127.0.0.1 " << master_->port() << " 2\n"
        << "sentinel down-after-milliseconds " << name << " " << options_.down_after_ms << "\n"
        << "sentinel failover-timeout " << name << " " << options_.failover_timeout_ms << "\n"
        << "sentinel parallel-syncs " << name << " 1\n"
        // Each sentinel is told its own id, the replica and the other two up
        // front (the lines Sentinel itself writes to its config once it has
        // discovered them), so the group is ready in a moment instead of after
        // the hello and INFO rounds (2 s and more).
        << "sentinel myid " << sentinel_id(i) << "\n"
        << "sentinel known-replica " << name << " 127.0.0.1 " << replica_->port() << "\n";
    for (size_t j = 0; j < sentinel_ports_.size(); ++j) {
      if (j != i) out << "sentinel known-sentinel " << name << " 127.0.0.1 " << sentinel_ports_[j] << " " << sentinel_id(j) << "\n";
    }
    if (!options_.sentinel_password.empty()) {
      out << "requirepass " << options_.sentinel_password << "\n"
          << "sentinel sentinel-pass " << options_.sentinel_password << "\n";
    }
    if (!out) return Internal("cannot write " + conf);
  }
  auto proc = Subprocess::start({"redis-sentinel", conf}, {}, dir_ + "/sentinel-" + std::to_string(i) + ".out");
  if (!proc.ok()) return proc.status();
  sentinels_.push_back(std::move(*proc));
  bool up = wait_until(
      [&] {
        return !sentinels_.back()->running() ||
               redis_cli(sentinel_ports_[i], {"PING"}, options_.sentinel_password).find("PONG") != std::string::npos;
      },
      std::chrono::seconds(10));
  if (!up || !sentinels_.back()->running()) return Unavailable("redis-sentinel did not start; see " + dir_);
  return Status::Ok();
}

SentinelGroup::~SentinelGroup() {
  for (auto& s : sentinels_) s.reset();  // SIGKILL by pid, reaped
  replica_.reset();
  master_.reset();
  if (!dir_.empty()) remove_tree(dir_);
}

std::string SentinelGroup::url() const {
  std::string url = "redis-sentinel://";
  for (size_t i = 0; i < sentinel_ports_.size(); ++i)
    url += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(sentinel_ports_[i]);
  return url + "/" + options_.master_name;
}

uint16_t SentinelGroup::agreed_master_port() {
  std::string agreed;
  for (uint16_t port : sentinel_ports_) {
    std::string out =
        redis_cli(port, {"SENTINEL", "get-master-addr-by-name", options_.master_name}, options_.sentinel_password);
    std::istringstream in(out);
    std::string host, p;
    std::getline(in, host);
    std::getline(in, p);
    if (p.empty() || p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5 ||
        (!agreed.empty() && p != agreed))
      return 0;
    agreed = p;
  }
  return static_cast<uint16_t>(std::stoi(agreed));
}

bool SentinelGroup::wait_master_is(uint16_t port, std::chrono::milliseconds timeout) {
  return wait_until([&] { return agreed_master_port() == port; }, timeout);
}

std::string SentinelGroup::redis_cli(uint16_t port, const std::vector<std::string>& args, const std::string& password) {
  std::string log = dir_ + "/redis-cli-" + std::to_string(++cli_runs_) + ".out";
  std::vector<std::string> argv{"redis-cli", "-p", std::to_string(port)};
  if (!password.empty()) argv.insert(argv.end(), {"--no-auth-warning", "-a", password});
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Subprocess::start(argv, {}, log);
  if (!p.ok()) return "";
  (*p)->wait_for(std::chrono::seconds(5));
  std::string out = read_file(log);
  std::remove(log.c_str());
  return out;
}

}  // namespace memgate::testing
