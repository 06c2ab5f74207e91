// RedisLink: where RedisBackend sends its commands.
//
// Two kinds: one Connection (a single server, or the master Sentinel names:
// link_to_connection()), or a ClusterRouter (Redis Cluster: each command goes to
// the master of its key's slot, cluster_router.h). The backend's code is the same
// for both; only where a command lands differs. The key that routes a command is
// its first key: args[1] of command() (SET key ..., GET key, XADD key ...),
// keys[0] of eval(). A command whose arguments carry no key (WAIT, INFO) is sent
// with command_near(key, ...) to the node that holds `key`, so WAIT asks the
// replicas of the master that took the write.
//
// Results and failure model are Connection's (connection.h): kUnavailable when
// not connected or the connection was lost, kDeadlineExceeded past
// command_timeout, a Redis error reply as a Reply of type kError. Callbacks of the
// async forms run exactly once, on an io thread or a router thread: they must not
// block and must not make blocking calls. Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/coord/connection.h"

namespace memgate::coord {

class RedisLink {
 public:
  virtual ~RedisLink() = default;

  // OK once commands can be sent everywhere they may go, or kUnavailable with the
  // last error once `timeout` passes.
  virtual Status wait_connected(std::chrono::milliseconds timeout) = 0;
  virtual bool connected() const = 0;
  // The last connection error; never secrets.
  virtual std::string last_error() const = 0;

  virtual void async_command(const std::vector<std::string_view>& args, ReplyCallback cb) = 0;
  virtual void async_eval(const Script& script, const std::vector<std::string_view>& keys,
                          const std::vector<std::string_view>& args, ReplyCallback cb) = 0;
  virtual Result<Reply> command(const std::vector<std::string_view>& args) = 0;
  virtual Result<Reply> eval(const Script& script, const std::vector<std::string_view>& keys,
                             const std::vector<std::string_view>& args) = 0;
  // A keyless command, sent to the node that holds `key`.
  virtual Result<Reply> command_near(std::string_view key, const std::vector<std::string_view>& args) = 0;

  // The one Connection under this link, or nullptr (a cluster has one per node).
  virtual Connection* single_connection() { return nullptr; }
};

// A link over one Connection, which it owns.
std::unique_ptr<RedisLink> link_to_connection(std::unique_ptr<Connection> conn);

}  // namespace memgate::coord
