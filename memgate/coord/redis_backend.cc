// Lease locks and run-once artifacts on Redis.
//
// Design. Each state change that must be atomic is one Lua script: taking a lock
// (SET NX PX, and only when the SET won the fence: the counter plus one, or the
// server's clock in µs when later), releasing and extending (compare the token, then DEL or PEXPIRE), and
// publishing (compare token and fence, check the chunks exist, set their expiry,
// the meta and the done flag, PUBLISH). Chunks are written before the publish
// script under keys that carry the publisher's fence, so a stale holder can never
// overwrite the chunks a current meta points at, and chunks of a refused publish
// simply expire. Reads verify everything (format, version, size, SHA-256) and
// report kBad rather than return bytes that do not match.
#include "memgate/coord/redis_backend.h"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include "memgate/coord/artifact.h"
#include "memgate/coord/cluster_router.h"
#include "memgate/coord/cluster_subscriber.h"
#include "memgate/coord/key_layout.h"
#include "memgate/coord/sentinel_resolver.h"

namespace memgate::coord {

namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

// KEYS: lock, fence[, the lock's name before hash tags]; ARGV: token, ttl ms.
// A new fence is the counter plus one, or the server's clock in microseconds
// when that is larger: so fences keep growing across a Redis that lost the
// counter (a restart without persistence) and across one whose counter lags
// (a failover to a replica that had not received the last increments); see
// "What a fence guarantees" in docs/design/coord.md.
// During the migration window the old lock name is taken too (both or neither),
// so an older instance that only knows that name is excluded. The same token
// sent again finds the lock already ours and gets its fence: an acquire whose
// reply was lost (a failover) may be retried.
const Script& acquire_script() {
  static const Script s(R"lua(
if redis.replicate_commands then redis.replicate_commands() end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if #KEYS > 2 and not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('DEL', KEYS[1])
    return {0, redis.call('PTTL', KEYS[3])}
  end
  local t = redis.call('TIME')
  local now = t[1] .. string.format('%06d', tonumber(t[2]))
  local f = redis.call('INCR', KEYS[2])
  if f < tonumber(now) then
    redis.call('SET', KEYS[2], now)
    f = tonumber(now)
  end
  return {1, f}
end
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  local f = tonumber(redis.call('GET', KEYS[2]))
  if f then return {1, f} end
end
return {0, redis.call('PTTL', KEYS[1])}
)lua");
  return s;
}

// A string value only when it is at most ARGV[1] bytes, so a hostile value is
// refused before this process allocates it: {0} absent, {1, len} too long or
// {2, type} not a string, {3, value}.
const Script& bounded_get_script() {
  static const Script s(R"lua(
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {0} end
if t ~= 'string' then return {2, t} end
local n = redis.call('STRLEN', KEYS[1])
if n > tonumber(ARGV[1]) then return {1, n} end
return {3, redis.call('GET', KEYS[1])}
)lua");
  return s;
}

// KEYS: lock[, its name before hash tags]; each is deleted (extended) only
// while it holds ARGV[1]; the answer is the first key's.
const Script& release_script() {
  static const Script s(R"lua(
local out = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    local n = redis.call('DEL', KEYS[i])
    if i == 1 then out = n end
  end
end
return out
)lua");
  return s;
}

const Script& extend_script() {
  static const Script s(R"lua(
local out = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    local n = redis.call('PEXPIRE', KEYS[i], ARGV[2])
    if i == 1 then out = n end
  end
end
return out
)lua");
  return s;
}

// KEYS: lock, fence, done, meta, chunks...; ARGV: token, fence, ttl ms, meta, done value, channel,
// and the publishing command (PUBLISH, or SPUBLISH on a cluster with sharded pub/sub).
const Script& publish_script() {
  static const Script s(R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 'the lock is no longer held by this lease'} end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {0, 'the fencing number is no longer current'} end
for i = 5, #KEYS do
  if redis.call('PEXPIRE', KEYS[i], ARGV[3]) == 0 then return {0, 'chunk ' .. (i - 5) .. ' vanished before publish'} end
end
redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[3])
redis.call(ARGV[7], ARGV[6], ARGV[5])
return {1, 'ok'}
)lua");
  return s;
}

// Chunks KEYS, only while together they hold at most ARGV[1] bytes, so a hostile
// chunk is refused before this process allocates it: {1, chunk or nil, ...}, or
// {0, index} for the first chunk that would pass the bound. A key of another
// type reads as a missing chunk.
const Script& chunk_read_script() {
  static const Script s(R"lua(
local left = tonumber(ARGV[1])
local out = {1}
for i = 1, #KEYS do
  if redis.call('TYPE', KEYS[i]).ok ~= 'string' then
    out[i + 1] = false
  else
    local n = redis.call('STRLEN', KEYS[i])
    if n > left then return {0, i - 1} end
    left = left - n
    out[i + 1] = redis.call('GET', KEYS[i])
  end
end
return out
)lua");
  return s;
}

// A READONLY error (the server was demoted to a replica by a failover) is
// kUnavailable: the command did nothing, the connection follows the new master
// (Connection, Sentinel mode) and the caller may retry.
Status reply_status(const Result<Reply>& r, std::string_view what) {
  if (!r.ok()) return Status(r.status().code(), std::string(what) + ": " + r.status().message());
  if (r->is_error() && is_readonly_error(r->str))
    return Unavailable(std::string(what) + ": the server is a replica now (" + r->str.substr(0, 80) + ")");
  if (r->is_error()) return Internal(std::string(what) + ": redis error: " + r->str);
  return Status::Ok();
}

constexpr std::string_view kChannelPrefix = "memgate:done:";

}  // namespace

struct RedisBackend::DoneState {
  std::mutex mu;
  std::condition_variable_any cv;  // _any: a wait also wakes on the caller's stop token
  std::map<std::string, uint64_t> generations;
  std::unique_ptr<Connection> subscriber;
  std::unique_ptr<ClusterSubscriber> cluster;  // instead of `subscriber` on a cluster
};

RedisBackend::RedisBackend(RedisSettings settings, std::string instance_id, CoordMetrics* metrics)
    : settings_(std::move(settings)),
      instance_id_(std::move(instance_id)),
      metrics_(metrics),
      resolver_(settings_.sentinels.empty() ? nullptr : std::make_shared<SentinelResolver>(settings_, metrics_)),
      done_(std::make_unique<DoneState>()),
      // No fleet used the names before hash tags on a cluster (they were not
      // cluster-safe), so there is nothing to migrate from there.
      legacy_until_(std::chrono::steady_clock::now() +
                    (settings_.cluster_seeds.empty() ? settings_.legacy_keys_for : milliseconds(0))) {
  if (!settings_.cluster_seeds.empty()) {
    auto router = std::make_unique<ClusterRouter>(settings_, metrics_);
    cluster_ = router.get();
    link_ = std::move(router);
  } else {
    link_ = link_to_connection(Connection::create(settings_, metrics_, true, endpoint_source()));
  }
  if (resolver_ && settings_.sentinel_watch) {
    // The hint: move both connections as soon as a sentinel announces the switch.
    Connection* conn = link_->single_connection();
    DoneState* done = done_.get();
    resolver_->watch([conn, done] {
      conn->reconnect("sentinel announced +switch-master");
      std::lock_guard lock(done->mu);
      if (done->subscriber) done->subscriber->reconnect("sentinel announced +switch-master");
    });
  }
}

EndpointSource RedisBackend::endpoint_source() {
  if (!resolver_) return nullptr;
  return [r = resolver_] { return r->resolve(); };
}

std::string RedisBackend::done_channel(const std::string& name) const {
  // On a cluster the channel carries the task's hash tag: SPUBLISH and
  // SSUBSCRIBE go to the node that holds the task's keys.
  if (cluster_) return std::string(kChannelPrefix) + task_keys(name).lock;
  return std::string(kChannelPrefix) + name;
}

const char* RedisBackend::publish_command() const {
  return cluster_ && cluster_->sharded_pubsub() ? "SPUBLISH" : "PUBLISH";
}

Status RedisBackend::wait_replicated(const std::string& what, const std::string& key) {
  if (settings_.wait_replicas <= 0) return Status::Ok();
  auto timeout = std::max<int64_t>(1, settings_.command_timeout.count() / 2);
  auto r = link_->command_near(key, {"WAIT", std::to_string(settings_.wait_replicas), std::to_string(timeout)});
  Status st = reply_status(r, "WAIT for the replicas of " + what);
  if (!st.ok()) return st;
  if (r->integer >= settings_.wait_replicas) return Status::Ok();
  metrics_->unreplicated_writes.fetch_add(1);
  if (r->integer == 0 && !warned_no_replicas_.exchange(true)) {
    auto info = link_->command_near(key, {"INFO", "replication"});
    if (info.ok() && info->str.find("connected_slaves:0") != std::string::npos)
      spdlog::warn("REDIS_WAIT_REPLICAS={} but the redis master has no replica: no lock or publish can be "
                   "acknowledged until one connects",
                   settings_.wait_replicas);
  }
  return Unavailable(what + " was acknowledged by " + std::to_string(r->integer) + " of the " +
                     std::to_string(settings_.wait_replicas) + " replicas REDIS_WAIT_REPLICAS asks for within " +
                     std::to_string(timeout) + "ms");
}

bool RedisBackend::follows_failover() const { return !settings_.sentinels.empty() || cluster_ != nullptr; }

bool RedisBackend::in_legacy_window() const { return std::chrono::steady_clock::now() < legacy_until_; }

RedisBackend::~RedisBackend() {
  if (resolver_) resolver_->unwatch();  // its callback touches the connections: stop it first
  std::unique_ptr<Connection> sub;
  std::unique_ptr<ClusterSubscriber> cluster_sub;
  {
    std::lock_guard lock(done_->mu);
    sub = std::move(done_->subscriber);
    cluster_sub = std::move(done_->cluster);
  }
  sub.reset();
  cluster_sub.reset();
  link_.reset();
}

namespace {

Result<TryAcquire> parse_acquire(const Result<Reply>& r, const std::string& key, const std::string& token,
                                 milliseconds ttl, std::chrono::steady_clock::time_point started,
                                 const std::string& legacy_key) {
  Status st = reply_status(r, "acquire " + key);
  if (!st.ok()) return st;
  if (r->type != Reply::Type::kArray || r->elements.size() != 2) return Internal("acquire " + key + ": unexpected reply");
  TryAcquire out;
  if (r->elements[0].integer == 1) {
    Lease l;
    l.key = key;
    l.token = token;
    l.fence = r->elements[1].integer;
    l.ttl = ttl;
    l.acquired_at = started;
    l.backend = "redis";
    l.legacy_key = legacy_key;
    out.lease = std::move(l);
  } else {
    out.holder_left = milliseconds(std::max<int64_t>(0, r->elements[1].integer));
  }
  return out;
}

Result<bool> parse_release(const Result<Reply>& r, const std::string& key) {
  Status st = reply_status(r, "release " + key);
  if (!st.ok()) return st;
  return r->integer == 1;
}


// The keys the lock scripts get for lock `key`: the tagged lock and fence, and
// during the migration window the lock's old name.
std::vector<std::string> lock_keys(const std::string& key, bool legacy) {
  TaskKeys k = task_keys(key);
  std::vector<std::string> out = {k.lock, k.fence};
  if (legacy) out.push_back(legacy_task_keys(key).lock);
  return out;
}

std::vector<std::string> held_keys(const Lease& lease) {
  std::vector<std::string> out = {task_keys(lease.key).lock};
  if (!lease.legacy_key.empty()) out.push_back(lease.legacy_key);
  return out;
}

std::vector<std::string_view> views(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

void RedisBackend::async_try_acquire(const std::string& key, milliseconds ttl,
                                     std::function<void(Result<TryAcquire>)> cb) {
  auto token = random_token();
  std::string ttl_text = std::to_string(ttl.count());
  auto started = std::chrono::steady_clock::now();
  auto keys = lock_keys(key, in_legacy_window());
  std::string legacy = keys.size() > 2 ? keys[2] : std::string();
  link_->async_eval(acquire_script(), views(keys), {token, ttl_text},
                    [cb = std::move(cb), key, token, ttl, started, legacy](Result<Reply> r) {
                      cb(parse_acquire(r, key, token, ttl, started, legacy));
                    });
}

void RedisBackend::async_release(const Lease& lease, std::function<void(Result<bool>)> cb) {
  auto keys = held_keys(lease);
  link_->async_eval(release_script(), views(keys), {lease.token},
                    [cb = std::move(cb), key = lease.key](Result<Reply> r) { cb(parse_release(r, key)); });
}

Result<TryAcquire> RedisBackend::try_acquire(const std::string& key, milliseconds ttl) {
  auto token = random_token();
  auto started = std::chrono::steady_clock::now();
  auto keys = lock_keys(key, in_legacy_window());
  std::string legacy = keys.size() > 2 ? keys[2] : std::string();
  // The same token on a retry: an acquire that went through before a failover
  // is found to be ours (see acquire_script).
  auto got = retrying([&] {
    auto r = link_->eval(acquire_script(), views(keys), {token, std::to_string(ttl.count())});
    return parse_acquire(r, key, token, ttl, started, legacy);
  });
  if (!got.ok() || !got->lease) return got;
  if (Status st = wait_replicated("the lock " + key, keys.front()); !st.ok()) {
    // A lock only the master knows is lost with it: undo it and say so.
    (void)release(*got->lease);
    return st;
  }
  return got;
}

Result<bool> RedisBackend::release(const Lease& lease) {
  auto keys = held_keys(lease);
  return retrying([&] { return parse_release(link_->eval(release_script(), views(keys), {lease.token}), lease.key); });
}

Result<bool> RedisBackend::extend(const Lease& lease, milliseconds ttl) {
  auto keys = held_keys(lease);
  return retrying([&]() -> Result<bool> {
    auto r = link_->eval(extend_script(), views(keys), {lease.token, std::to_string(ttl.count())});
    Status st = reply_status(r, "extend " + lease.key);
    if (!st.ok()) return st;
    return r->integer == 1;
  });
}

namespace {


// What bounded_get_script returned: nullopt when absent, else the value, or an
// error (kInvalidArgument) naming the key when it is too long or not a string.
Result<std::optional<std::string>> parse_bounded_get(const Result<Reply>& r, const std::string& key, size_t bound) {
  Status st = reply_status(r, "GET " + key);
  if (!st.ok()) return st;
  if (r->type != Reply::Type::kArray || r->elements.empty()) return Internal("GET " + key + ": unexpected reply");
  switch (r->elements[0].integer) {
    case 0:
      return std::optional<std::string>();
    case 1:
      return InvalidArgument("the value at " + key + " is " + std::to_string(r->elements.at(1).integer) +
                             " bytes, above the bound of " + std::to_string(bound));
    case 2:
      return InvalidArgument("the value at " + key + " is a " + r->elements.at(1).str + ", not a string");
    default:
      if (r->elements.size() != 2) return Internal("GET " + key + ": unexpected reply");
      return std::optional<std::string>(std::move(r->elements[1].str));
  }
}

}  // namespace

Result<std::optional<json::value>> RedisBackend::get_json(const std::string& key) {
  auto text = retrying([&] {
    return parse_bounded_get(link_->eval(bounded_get_script(), {key}, {std::to_string(kMaxJsonValueBytes)}), key,
                             kMaxJsonValueBytes);
  });
  if (!text.ok()) return text.status();
  if (!*text) return std::optional<json::value>();
  boost::system::error_code ec;
  json::value v = json::parse(**text, ec);
  if (ec) return InvalidArgument("the value at " + key + " is not JSON: " + ec.message());
  return std::optional<json::value>(std::move(v));
}

Status RedisBackend::set_json(const std::string& key, const json::value& value, milliseconds ttl) {
  std::string text = json::serialize(value);
  return retrying([&] {
    Result<Reply> r = ttl.count() > 0 ? link_->command({"SET", key, text, "PX", std::to_string(ttl.count())})
                                      : link_->command({"SET", key, text});
    return reply_status(r, "SET " + key);
  });
}

Result<ArtifactRead> RedisBackend::read_meta(const std::string& name, const std::string& version) {
  return retrying([&]() -> Result<ArtifactRead> {
    auto read = read_meta_at(task_keys(name), version);
    // The migration window: an artifact an older instance published under the
    // names before hash tags is loaded too (only when there is none under ours).
    if (!read.ok() || read->state != ArtifactState::kAbsent || !in_legacy_window()) return read;
    auto old = read_meta_at(legacy_task_keys(name), version);
    if (old.ok()) old->meta.legacy_keys = true;
    return old;
  });
}

Result<ArtifactRead> RedisBackend::read_meta_at(const TaskKeys& k, const std::string& version) {
  ArtifactRead out;
  // Two bounded reads in one round trip: neither value is allocated here when
  // it is longer than a meta record may be. Only transport errors fail the read;
  // anything a hostile or confused writer left there is a bad artifact.
  const std::string& done_key = k.done;
  const std::string& meta_key = k.meta;
  const std::string bound = std::to_string(ArtifactMeta::kMaxMetaBytes);
  std::mutex mu;
  std::condition_variable cv;
  int outstanding = 2;
  Result<Reply> replies[2] = {Internal("no reply"), Internal("no reply")};
  const std::string* keys[2] = {&done_key, &meta_key};
  for (int i = 0; i < 2; ++i) {
    link_->async_eval(bounded_get_script(), {*keys[i]}, {bound}, [&, i](Result<Reply> r) {
      std::lock_guard lock(mu);
      replies[i] = std::move(r);
      if (--outstanding == 0) cv.notify_one();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return outstanding == 0; });
  }
  for (auto& r : replies)
    if (!r.ok()) return Status(r.status().code(), "read " + done_key + ": " + r.status().message());
  auto done = parse_bounded_get(replies[0], done_key, ArtifactMeta::kMaxMetaBytes);
  if (done.ok() && !*done) return out;  // kAbsent
  out.state = ArtifactState::kBad;
  if (!done.ok()) {
    out.problem = done.status().message();
    return out;
  }
  auto meta_text = parse_bounded_get(replies[1], meta_key, ArtifactMeta::kMaxMetaBytes);
  if (!meta_text.ok()) {
    out.problem = meta_text.status().message();
    return out;
  }
  if (!*meta_text) {
    out.problem = "the done flag is set but the artifact meta is missing";
    return out;
  }
  auto meta = ArtifactMeta::from_json(**meta_text, settings_.max_artifact_bytes);
  if (!meta.ok()) {
    out.problem = meta.status().message();
    return out;
  }
  out.fence = meta->fence;
  out.meta = *meta;
  if (meta->format != kArtifactFormat || meta->version != version) {
    out.problem = check_artifact(*meta, "", version);
    return out;
  }
  out.state = ArtifactState::kOk;
  return out;
}

namespace {

// Fetches two chunks a round trip (1 MiB at the default chunk size), so the
// stream holds about one reply at a time: a load's peak is its image plus that.
class RedisArtifactSource final : public ByteSource {
 public:
  RedisArtifactSource(RedisLink& conn, std::string name, ArtifactMeta meta)
      : conn_(conn),
        name_(std::move(name)),
        meta_(std::move(meta)),
        keys_(meta_.legacy_keys ? legacy_task_keys(name_) : task_keys(name_)) {}
  uint64_t size() const override { return meta_.size; }

  Result<std::string> next() override {
    if (!error_.ok()) return error_;
    if (pending_.empty()) {
      if (next_chunk_ >= meta_.chunks) return finish();
      if (Status st = fetch(); !st.ok()) return error_ = st;
    }
    std::string out = std::move(pending_.front());
    pending_.pop_front();
    return out;
  }

 private:
  Status fetch() {
    constexpr uint64_t kBatch = 2;
    std::vector<std::string> keys;
    uint64_t first = next_chunk_;
    for (uint64_t i = first; i < std::min(meta_.chunks, first + kBatch); ++i)
      keys.push_back(keys_.chunk(meta_.fence, i));
    std::vector<std::string_view> key_views(keys.begin(), keys.end());
    auto reply = conn_.eval(chunk_read_script(), key_views, {std::to_string(meta_.size - received_)});
    Status st = reply_status(reply, "read chunks of " + name_);
    if (!st.ok()) return st;
    if (reply->type != Reply::Type::kArray || reply->elements.empty())
      return InvalidArgument("read chunks of " + name_ + ": unexpected reply");
    if (reply->elements[0].integer == 0) {
      uint64_t at = first + static_cast<uint64_t>(reply->elements.size() > 1 ? reply->elements[1].integer : 0);
      return InvalidArgument("the chunks of " + name_ + " hold more than the " + std::to_string(meta_.size) +
                             " bytes its meta declares (at chunk " + std::to_string(at) + ")");
    }
    if (reply->elements.size() != keys.size() + 1)
      return InvalidArgument("read chunks of " + name_ + ": unexpected reply");
    for (size_t i = 0; i + 1 < reply->elements.size(); ++i) {
      Reply& chunk = reply->elements[i + 1];
      if (chunk.is_nil())
        return InvalidArgument("chunk " + std::to_string(first + i) + " of " + std::to_string(meta_.chunks) +
                               " is missing");
      if (chunk.str.size() > meta_.size - received_)
        return InvalidArgument("the chunks of " + name_ + " hold more than the " + std::to_string(meta_.size) +
                               " bytes its meta declares");
      received_ += chunk.str.size();
      sha_.update(chunk.str);
      if (!chunk.str.empty()) pending_.push_back(std::move(chunk.str));
    }
    next_chunk_ = first + keys.size();
    if (pending_.empty() && next_chunk_ >= meta_.chunks) return Status::Ok();
    return Status::Ok();
  }

  Result<std::string> finish() {
    if (received_ != meta_.size)
      return error_ = InvalidArgument("size " + std::to_string(received_) + ", meta says " + std::to_string(meta_.size));
    if (!verified_) {
      verified_ = true;
      if (sha_.hex() != meta_.sha256) return error_ = InvalidArgument("checksum mismatch");
    }
    return std::string();
  }

  RedisLink& conn_;
  std::string name_;
  ArtifactMeta meta_;
  TaskKeys keys_;
  uint64_t next_chunk_ = 0;
  uint64_t received_ = 0;
  Sha256 sha_;
  bool verified_ = false;
  std::deque<std::string> pending_;
  Status error_;
};

}  // namespace

Result<std::unique_ptr<ByteSource>> RedisBackend::open_artifact(const std::string& name, const ArtifactMeta& meta) {
  return std::unique_ptr<ByteSource>(std::make_unique<RedisArtifactSource>(*link_, name, meta));
}

Status RedisBackend::publish_artifact(const Lease& lease, const std::string& name, const ChunkedBytes& bytes,
                                      const std::string& version, milliseconds done_ttl, const PublishInfo& info) {
  if (lease.backend != "redis") return FailedPrecondition("publish " + name + ": the lease is not a redis lease");
  std::vector<std::string_view> pieces;
  ArtifactMeta meta = describe_artifact(bytes, version, lease.fence, settings_.chunk_size, &pieces);
  meta.builder = info.builder.empty() ? instance_id_ : info.builder;
  meta.inputs = info.inputs;
  meta.build_peak = info.build_peak;
  meta.built_at_unix_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string ttl = std::to_string(done_ttl.count());
  const TaskKeys k = task_keys(name);
  // Publishing is idempotent (the same chunks and records under the same fence),
  // so after a failover it is retried whole.
  return retrying([&]() -> Status {
  // Chunks: pipelined SETs, then one wait for all of them.
  std::vector<std::string> keys;
  std::mutex mu;
  std::condition_variable cv;
  size_t outstanding = pieces.size();
  Status first_error;
  for (uint64_t i = 0; i < pieces.size(); ++i) {
    keys.push_back(k.chunk(lease.fence, i));
    link_->async_command({"SET", keys.back(), pieces[i], "PX", ttl}, [&, i](Result<Reply> r) {
      Status st = reply_status(r, "write chunk " + std::to_string(i) + " of " + name);
      std::lock_guard lock(mu);
      if (!st.ok() && first_error.ok()) first_error = st;
      if (--outstanding == 0) cv.notify_one();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return outstanding == 0; });
  }
  if (!first_error.ok()) return first_error;

  json::object done;
  done["fence"] = lease.fence;
  done["instance"] = instance_id_;
  done["at_unix_ms"] = meta.built_at_unix_ms;
  std::string done_text = json::serialize(done);
  std::vector<std::string> all_keys = {k.lock, k.fence, k.done, k.meta};
  all_keys.insert(all_keys.end(), keys.begin(), keys.end());
  std::vector<std::string_view> key_views(all_keys.begin(), all_keys.end());
  std::string fence = std::to_string(lease.fence);
  std::string meta_text = meta.to_json();
  std::string channel = done_channel(name);
  auto r = link_->eval(publish_script(), key_views,
                       {lease.token, fence, ttl, meta_text, done_text, channel, publish_command()});
  Status st = reply_status(r, "publish " + name);
  if (!st.ok()) return st;
  if (r->type != Reply::Type::kArray || r->elements.size() != 2) return Internal("publish " + name + ": unexpected reply");
  if (r->elements[0].integer != 1) {
    return Aborted("publish of " + name + " refused (fence " + fence + "): " + r->elements[1].str);
  }
  return wait_replicated("the publish of " + name, k.lock);
  });
}

void RedisBackend::ensure_subscriber() {
  std::lock_guard lock(done_->mu);
  if (done_->subscriber || done_->cluster) return;
  DoneState* state = done_.get();
  auto on_message = [state](const std::string& channel, const std::string&) {
    {
      // Only channels of names this process asked about (done_generation) are
      // counted: anyone who can publish could otherwise grow the map with a new
      // channel name per message.
      std::lock_guard lock(state->mu);
      auto it = state->generations.find(channel);
      if (it == state->generations.end()) return;
      ++it->second;
    }
    state->cv.notify_all();
  };
  if (cluster_) {
    done_->cluster = std::make_unique<ClusterSubscriber>(*cluster_, std::string(kChannelPrefix) + "*",
                                                         std::move(on_message), metrics_);
    return;
  }
  done_->subscriber = Connection::create_subscriber(settings_, {std::string(kChannelPrefix) + "*"},
                                                    std::move(on_message), metrics_, endpoint_source());
  // Give the subscription a moment so the first wait does not miss a message; the
  // slow poll in fleet_once covers the rest.
  done_->subscriber->wait_connected(std::min(settings_.connect_timeout, milliseconds(500))).message();
}

uint64_t RedisBackend::done_generation(const std::string& name) {
  ensure_subscriber();
  std::string channel = done_channel(name);
  if (done_->cluster) {
    done_->cluster->follow_map();
    done_->cluster->watch(channel);
  }
  std::lock_guard lock(done_->mu);
  return done_->generations[channel];
}

size_t RedisBackend::tracked_done_channels() {
  std::lock_guard lock(done_->mu);
  return done_->generations.size();
}

void RedisBackend::wait_done(const std::string& name, uint64_t seen, milliseconds max_wait,
                             const std::stop_token& stop) {
  ensure_subscriber();
  if (done_->cluster) done_->cluster->follow_map();
  std::string channel = done_channel(name);
  std::unique_lock lock(done_->mu);
  done_->cv.wait_for(lock, stop, max_wait, [&] { return done_->generations[channel] != seen; });
}

}  // namespace memgate::coord
