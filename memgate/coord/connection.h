// Connection: one pipelined connection to Redis (TCP, TLS or a Unix socket).
//
// A Connection owns an io thread (its own asio::io_context) and one socket. Any
// thread may send commands; they are appended to a single output buffer that the
// io thread writes in one go (commands sent while a write is in flight coalesce
// into the next write), and replies are matched to callbacks in FIFO order.
// hiredis does the protocol: redisFormatCommandArgv formats, redisReader parses.
//
// Failure model:
//   - not connected (still connecting, or Redis is down): the callback gets
//     kUnavailable at once with the last connection error; nothing is queued;
//   - no reply within command_timeout: kDeadlineExceeded (the reply, if it comes
//     later, is dropped); when nothing at all is read for twice that time the
//     connection is considered dead and closed;
//   - connection lost: every pending callback gets kUnavailable, and the io thread
//     reconnects with exponential backoff and jitter (reconnect_min..max), then
//     runs AUTH and SELECT before taking commands again.
// A Redis error reply (-ERR ...) is a successful Result holding a Reply of type
// kError. Callbacks of async_command/async_eval run on the io thread: they must
// not block; they may send more commands. command() and eval() are blocking
// wrappers (on an idle TCP or Unix connection the calling thread reads its own
// reply, saving a thread hand-off); calling them on the io thread (from a
// callback) returns kFailedPrecondition instead of deadlocking.
//
// Following a failover (an EndpointSource given, as RedisBackend does for
// Sentinel): before every connection attempt the io thread asks the source where
// to connect (it may block for a moment: it runs on the io thread, where nothing
// else happens while disconnected); an error fails that attempt like a refused
// connect, and the next attempt asks again. A READONLY error reply (the server was
// demoted to a replica) is handed to its callback as usual, and the connection
// stops taking commands at once and reconnects, so it asks the source again.
// reconnect() does the same on request (a +switch-master hint), also cutting a
// backoff wait short (a connection the dead master left).
//
// Thread-safe. The destructor stops the io thread; pending callbacks get
// kUnavailable ("connection closed") before it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/coord/coord_metrics.h"
#include "memgate/coord/redis_settings.h"

namespace memgate::coord {

// A parsed Redis reply (RESP2), independent of hiredis.
struct Reply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;              // kString, kStatus, kError
  std::vector<Reply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
};

using ReplyCallback = std::function<void(Result<Reply>)>;

// Where to connect, asked before each connection attempt (see above).
using EndpointSource = std::function<Result<Endpoint>()>;

// A Lua script: its source and SHA-1, computed locally. Scripts are sent with
// EVALSHA, and with EVAL (which also caches them in Redis) after NOSCRIPT.
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

// The delay before reconnect attempt `attempt` (0-based): min * 2^attempt capped at
// max, then "equal jitter" (half fixed, half random by rand01 in [0, 1)).
std::chrono::milliseconds reconnect_delay(int attempt, std::chrono::milliseconds min,
                                          std::chrono::milliseconds max, double rand01);

class Connection {
 public:
  // Handler of pub/sub messages on a subscriber connection: (channel, payload).
  using MessageHandler = std::function<void(const std::string&, const std::string&)>;

  // Creates the connection and starts connecting in the background. `metrics`
  // must outlive it; `report_state` makes it the one that sets
  // metrics->connection_state (the command connection, not a subscriber).
  // With `source`, host and port come from it instead of `settings`.
  static std::unique_ptr<Connection> create(RedisSettings settings, CoordMetrics* metrics = &coord_metrics(),
                                            bool report_state = true, EndpointSource source = nullptr);
  // Creates a subscriber connection: it takes no commands; after each (re)connect
  // it PSUBSCRIBEs to `patterns` and hands every message to `handler` (io thread).
  static std::unique_ptr<Connection> create_subscriber(RedisSettings settings, std::vector<std::string> patterns,
                                                       MessageHandler handler,
                                                       CoordMetrics* metrics = &coord_metrics(),
                                                       EndpointSource source = nullptr);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Waits until connected: OK, or kUnavailable with the last error once `timeout` passes.
  Status wait_connected(std::chrono::milliseconds timeout);
  bool connected() const;
  ConnectionState state() const;
  // The last connection error ("connect to 127.0.0.1:6379: Connection refused"); never secrets.
  std::string last_error() const;
  const RedisSettings& settings() const;

  // Sends one command (arguments are binary-safe). `cb` runs exactly once.
  void async_command(const std::vector<std::string_view>& args, ReplyCallback cb);
  // EVALSHA, then EVAL on NOSCRIPT.
  void async_eval(const Script& script, const std::vector<std::string_view>& keys,
                  const std::vector<std::string_view>& args, ReplyCallback cb);

  // Blocking forms.
  Result<Reply> command(const std::vector<std::string_view>& args);
  Result<Reply> eval(const Script& script, const std::vector<std::string_view>& keys,
                     const std::vector<std::string_view>& args);

  // True when called from this connection's io thread.
  bool on_io_thread() const;

  // Subscriber connections: sends `command` (e.g. SSUBSCRIBE channel) now when
  // connected, and again after every reconnect; its messages ("message",
  // "smessage", "pmessage") go to the handler. Replies to it are not checked.
  void subscribe(std::vector<std::string> command);

  // Drops the connection now (pending callbacks get kUnavailable with `why`) and
  // reconnects after the shortest delay. While waiting to reconnect after a
  // failure, it tries at once instead (and the backoff starts over); while a
  // connection attempt is under way, that attempt, if it fails, is followed by
  // the shortest delay.
  void reconnect(const std::string& why);

 private:
  class Impl;
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The text of an error reply or a failed Result, for messages.
std::string describe_reply_error(const Result<Reply>& r);

// True for the error a replica gives a write ("READONLY You can't write against
// a read only replica."), also when it comes out of a script.
bool is_readonly_error(std::string_view error_text);

}  // namespace memgate::coord
