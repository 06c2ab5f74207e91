// The coordinator: choosing a backend, waiting for locks, the watchdog, fleet_once.
//
// Design. Backends provide single-shot primitives (try_acquire, release, extend,
// read/publish artifact, done messages); everything with time in it lives here, once
// for both backends. acquire() retries with exponential backoff and full jitter
// (2ms doubling to 100ms, never past the holder's remaining TTL when Redis tells
// it), so waiters neither stampede nor sleep through a release.
//
// The watchdog of with_lock() is a thread per hold: it extends at a third of the
// TTL, so two extensions can fail before the lease lapses. A transport error is
// retried quickly while the lease is still ours by our own reckoning (start of the
// last successful extension + TTL); a "no longer yours" answer, or running out of
// that time, raises the CancelSignal at once.
//
// fleet_once(name):
//   1. done flag set and artifact verified   → load it                  (loaded)
//   2. otherwise try the lock once:
//        won  → read again (someone may have just finished) → load, or
//               build under the watchdog, publish fenced, release    (built / took_over /
//                                                                      rebuilt_bad_artifact)
//        held → wait for the completion message, at most one slow poll, then go to 1
//               (a waiter that then loads counts "waited"; one that wins the lock after
//               the builder died counts "took_over")
// An artifact that is present but fails verification, or that load() rejects, is
// rebuilt, never loaded; only a transport error of the read fails the step. A
// build whose lease was lost before its fenced publish (kAborted) goes back to 1:
// a peer's artifact is loaded ("waited"), else it contends and builds again, at
// most 3 builds in all. The wait is bounded by FleetOnceOptions::wait_bound.
#include "memgate/coord/coordinator.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <condition_variable>
#include <optional>
#include <random>

#include "memgate/base/config.h"
#include "memgate/coord/key_layout.h"
#include "memgate/coord/local_backend.h"
#include "memgate/coord/redis_backend.h"

namespace memgate::coord {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock;

namespace {

double rand01() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Coordinator>> Coordinator::create(CoordinatorOptions options) {
  std::unique_ptr<Coordinator> c(new Coordinator(options));
  if (c->options_.instance_id.empty()) c->options_.instance_id = "pid-" + std::to_string(::getpid());
  auto local = LocalBackend::open(c->options_.local_dir, c->options_.instance_id);
  if (!local.ok()) return local.status();
  c->local_ = std::move(*local);
  CoordMetrics* m = c->options_.metrics;
  if (c->options_.redis_url.empty()) {
    spdlog::warn("REDIS_URL is unset: coordination is local to this host (lock files in {})", c->options_.local_dir);
    c->active_ = c->local_;
    m->backend.store(0);
    return c;
  }
  auto settings = parse_redis_url(c->options_.redis_url);
  if (!settings.ok()) return settings.status();
  settings->tls_ca = c->options_.tls_ca;
  settings->tls_insecure = c->options_.tls_insecure;
  settings->connect_timeout = c->options_.connect_timeout;
  settings->command_timeout = c->options_.command_timeout;
  settings->chunk_size = c->options_.chunk_size;
  settings->max_artifact_bytes = c->options_.max_artifact_bytes;
  settings->legacy_keys_for = c->options_.legacy_keys_for;
  settings->sentinel_password = c->options_.sentinel_password;
  settings->sentinel_watch = c->options_.sentinel_watch;
  settings->wait_replicas = c->options_.wait_replicas;
  if (settings->tls_insecure && settings->transport == Transport::kTls) {
    spdlog::warn("REDIS_TLS_INSECURE is set: the Redis server certificate is not verified (development only)");
  }
  c->redis_ = std::make_shared<RedisBackend>(*settings, c->options_.instance_id, m);
  Status st = c->redis_->connection().wait_connected(c->options_.connect_timeout);
  if (st.ok()) {
    c->active_ = c->redis_;
    m->backend.store(1);
    spdlog::info("coordination uses redis at {}", settings->describe());
    return c;
  }
  spdlog::warn("coordination is local to this host: {}; switching to redis when it answers", st.message());
  c->active_ = c->local_;
  m->backend.store(0);
  if (c->options_.background_switch) {
    Coordinator* self = c.get();
    c->switcher_ = std::thread([self] {
      while (!self->stop_.load()) {
        if (self->redis_->connection().wait_connected(milliseconds(200)).ok()) {
          self->switch_to_redis();
          return;
        }
      }
    });
  }
  return c;
}

Coordinator::~Coordinator() {
  stop_.store(true);
  if (switcher_.joinable()) switcher_.join();
}

void Coordinator::switch_to_redis() {
  std::lock_guard lock(mu_);
  if (active_ == redis_) return;
  active_ = redis_;
  options_.metrics->backend.store(1);
  spdlog::info("redis answers: coordination switched from local to redis (local leases stay local until released)");
}

std::shared_ptr<CoordBackend> Coordinator::active() const {
  std::lock_guard lock(mu_);
  return active_;
}

std::string_view Coordinator::backend() const { return active()->name(); }

RedisBackend* Coordinator::redis() { return redis_.get(); }

CoordBackend* Coordinator::backend_of(const Lease& lease) const {
  if (lease.backend == "redis" && redis_) return redis_.get();
  return local_.get();
}

Status Coordinator::ensure_connected(milliseconds timeout) {
  if (!redis_) return Status::Ok();
  Status st = redis_->connection().wait_connected(timeout);
  if (st.ok()) switch_to_redis();
  return st;
}

Result<Lease> Coordinator::acquire(const std::string& key, milliseconds ttl, milliseconds wait) {
  auto start = SteadyTime::now();
  auto deadline = start + wait;
  auto backend = active();
  milliseconds backoff(2);
  for (int attempt = 0;; ++attempt) {
    auto r = backend->try_acquire(key, ttl);
    auto now = SteadyTime::now();
    if (r.ok() && r->lease) {
      options_.metrics->acquire_wait.observe(now - start);
      activity_.lease_taken(*r->lease);
      return std::move(*r->lease);
    }
    if (now >= deadline) {
      options_.metrics->acquire_wait.observe(now - start);
      if (!r.ok()) return r.status();
      return DeadlineExceeded("lock " + key + " is held by another holder (waited " +
                              std::to_string(std::chrono::duration_cast<milliseconds>(now - start).count()) + "ms)");
    }
    milliseconds cap = backoff;
    if (r.ok() && r->holder_left.count() > 0) cap = std::min(cap, r->holder_left + milliseconds(1));
    auto sleep = milliseconds(1) + milliseconds(static_cast<int64_t>(static_cast<double>(cap.count()) * rand01()));
    auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
    std::this_thread::sleep_for(std::min(sleep, left));
    backoff = std::min(backoff * 2, milliseconds(100));
    // A switch to Redis applies to the next attempt.
    backend = active();
  }
}

Result<bool> Coordinator::release(const Lease& lease) {
  auto r = backend_of(lease)->release(lease);
  if (r.ok()) options_.metrics->hold_time.observe(SteadyTime::now() - lease.acquired_at);
  activity_.lease_released(lease);
  return r;
}

Result<bool> Coordinator::extend(const Lease& lease, milliseconds ttl) {
  auto r = backend_of(lease)->extend(lease, ttl);
  if (r.ok() && *r) {
    Lease extended = lease;
    extended.ttl = ttl;
    activity_.lease_extended(extended);
  }
  return r;
}

Status Coordinator::run_with_watchdog(CoordBackend& backend, const Lease& lease, const LockedFn& fn) {
  CancelSignal cancel;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watchdog([&] {
    const milliseconds interval = std::max(milliseconds(1), lease.ttl / 3);
    auto valid_until = lease.acquired_at + lease.ttl;
    auto due = lease.acquired_at + interval;
    std::unique_lock lock(mu);
    for (;;) {
      if (cv.wait_until(lock, due, [&] { return done; })) return;
      lock.unlock();
      auto called = SteadyTime::now();
      options_.metrics->extension_lag.observe(called - due);
      auto r = backend.extend(lease, lease.ttl);
      auto now = SteadyTime::now();
      lock.lock();
      if (done) return;
      if (r.ok() && *r) {
        activity_.lease_extended(lease);
        valid_until = called + lease.ttl;
        due = called + interval;
      } else if (r.ok()) {
        options_.metrics->lost_leases.fetch_add(1);
        cancel.cancel("lease on " + lease.key + " (fence " + std::to_string(lease.fence) +
                      ") was lost: the lock is no longer held by this lease (it expired, was deleted or was taken)");
        return;
      } else if (now + milliseconds(5) >= valid_until) {
        options_.metrics->lost_leases.fetch_add(1);
        cancel.cancel("lease on " + lease.key + " could not be extended before it expired: " + r.status().message());
        return;
      } else {
        auto left = std::chrono::duration_cast<milliseconds>(valid_until - now);
        due = now + std::clamp(left / 4, milliseconds(5), interval);
      }
    }
  });
  Status st = fn(lease, cancel);
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
  if (st.ok() && cancel.cancelled()) st = Aborted(cancel.reason());
  return st;
}

Status Coordinator::with_lock(const std::string& key, milliseconds ttl, const LockedFn& fn,
                              std::optional<milliseconds> wait) {
  auto lease = acquire(key, ttl, wait.value_or(ttl));
  if (!lease.ok()) return lease.status();
  Status st = run_with_watchdog(*backend_of(*lease), *lease, fn);
  auto released = release(*lease);
  if (st.ok() && released.ok() && !*released) {
    st = Aborted("lease on " + key + " had expired by the time it was released");
  }
  return st;
}

Result<FleetOutcome> Coordinator::fleet_once(const std::string& name, milliseconds lock_ttl, milliseconds done_ttl,
                                             const BuildFn& build, const LoadFn& load,
                                             const FleetOnceOptions& options) {
  // The older shape: build leaves this instance ready itself, so a fresh
  // artifact is not loaded again; a fetched one is read whole and handed over.
  FleetStep step;
  step.build = [&](const CancelSignal& cancel, PublishInfo*) -> Result<ChunkedBytes> {
    auto bytes = build(cancel);
    if (!bytes.ok()) return bytes.status();
    return ChunkedBytes::from_string(std::move(*bytes));
  };
  step.load = [&](ByteSource& source, const ArtifactMeta& meta, bool fresh) -> Status {
    if (fresh) return Status::Ok();
    auto bytes = read_all(source, meta.size);
    if (!bytes.ok()) return bytes.status();
    return load(*bytes);
  };
  return fleet_once(name, lock_ttl, done_ttl, step, options);
}

Result<FleetOutcome> Coordinator::fleet_once(const std::string& name, milliseconds lock_ttl, milliseconds done_ttl,
                                             const FleetStep& step, const FleetOnceOptions& options) {
  auto start = SteadyTime::now();
  Result<FleetOutcome> r = run_fleet_once(name, lock_ttl, done_ttl, step, options);
  auto took = std::chrono::duration_cast<milliseconds>(SteadyTime::now() - start);
  if (r.ok()) activity_.outcome(name, *r, took);
  else activity_.outcome(name, FleetOutcome::kFailed, took, r.status().message());
  return r;
}

Result<FleetOutcome> Coordinator::run_fleet_once(const std::string& name, milliseconds lock_ttl,
                                                 milliseconds done_ttl, const FleetStep& step,
                                                 const FleetOnceOptions& options) {
  CoordMetrics& m = *options_.metrics;
  auto start = SteadyTime::now();
  milliseconds poll = options.poll.count() > 0 ? options.poll
                                               : std::clamp(lock_ttl / 4, milliseconds(50), milliseconds(1000));
  bool waited = false;
  bool bad_seen = false;
  auto state = [&](std::string_view s) {
    if (step.on_state) step.on_state(s);
  };
  auto fail = [&](Status st) -> Result<FleetOutcome> {
    m.count(FleetOutcome::kFailed);
    return st;
  };
  // Loads a published artifact: true when ready; false (and bad_seen) when it is
  // unusable; an error when the caller's may_load refuses it.
  auto try_load = [&](CoordBackend& backend, ArtifactRead& read) -> Result<bool> {
    if (read.state == ArtifactState::kBad) {
      spdlog::warn("fleet_once {}: the published artifact is unusable ({}); rebuilding", name, read.problem);
      bad_seen = true;
      return false;
    }
    if (read.state != ArtifactState::kOk) return false;
    if (step.may_load) {
      if (Status st = step.may_load(read.meta); !st.ok()) return st;
    }
    state("loading_artifact");
    auto source = backend.open_artifact(name, read.meta);
    Status st = source.ok() ? step.load(**source, read.meta, false) : source.status();
    if (st.ok()) return true;
    if (st.code() == Code::kResourceExhausted) return st;
    spdlog::warn("fleet_once {}: load of the artifact (fence {}) failed ({}); rebuilding", name, read.fence,
                 st.to_string());
    bad_seen = true;
    return false;
  };
  // Builds whose lease was lost before the publish went through; bounded.
  constexpr int kLeaseAttempts = 3;
  int lost_leases = 0;
  auto loaded = [&]() -> Result<FleetOutcome> {
    FleetOutcome o = waited || lost_leases > 0 ? FleetOutcome::kWaited : FleetOutcome::kLoaded;
    m.count(o);
    return o;
  };

  std::optional<Status> build_refused;
  auto stopping = [&] { return step.stop.stop_requested(); };
  auto stopped = [&] { return fail(Cancelled("fleet_once " + name + ": stopping")); };
  for (;;) {
    if (stopping()) return stopped();
    auto backend = active();
    uint64_t seen = backend->done_generation(name);
    auto read = backend->read_meta(name, options.artifact_version);
    if (!read.ok()) return fail(read.status());
    auto got = try_load(*backend, *read);
    if (!got.ok()) return fail(got.status());
    if (*got) return loaded();

    if (step.may_build) {
      Status may = step.may_build();
      if (!may.ok() && may.code() != Code::kUnavailable) return fail(may);
      if (!may.ok()) {
        // Not enough memory to build here: do not contend, wait for a peer.
        if (!build_refused) state("waiting_for_peer");
        build_refused = may;
        auto now = SteadyTime::now();
        if (now - start >= step.peer_wait) return fail(ResourceExhausted(may.message()));
        waited = true;
        auto left = std::chrono::duration_cast<milliseconds>(start + step.peer_wait - now);
        backend->wait_done(name, seen, std::min(poll, left), step.stop);
        continue;
      }
    }

    auto attempt = backend->try_acquire(name, lock_ttl);
    if (!attempt.ok()) return fail(attempt.status());
    if (attempt->lease) {
      Lease lease = std::move(*attempt->lease);
      m.acquire_wait.observe(SteadyTime::now() - start);
      activity_.lease_taken(lease);
      auto release_lease = [&] {
        auto r = backend->release(lease);
        if (r.ok()) m.hold_time.observe(SteadyTime::now() - lease.acquired_at);
        activity_.lease_released(lease);
      };
      auto again = backend->read_meta(name, options.artifact_version);
      if (!again.ok()) {
        release_lease();
        return fail(again.status());
      }
      auto got_again = try_load(*backend, *again);
      if (!got_again.ok() || *got_again) {
        release_lease();
        if (!got_again.ok()) return fail(got_again.status());
        return loaded();
      }
      state("building");
      ChunkedBytes built;
      ArtifactMeta built_meta;
      bool build_failed = false;  // the build's own error, not a lost lease
      Status st = run_with_watchdog(*backend, lease, [&](const Lease& l, const CancelSignal& cancel) -> Status {
        PublishInfo info;
        auto bytes = step.build(cancel, &info);
        if (!bytes.ok()) {
          build_failed = !cancel.cancelled();
          return bytes.status();
        }
        if (cancel.cancelled()) return Aborted(cancel.reason());
        built = std::move(*bytes);
        built_meta.size = built.size();
        built_meta.fence = l.fence;
        built_meta.builder = info.builder.empty() ? options_.instance_id : info.builder;
        built_meta.inputs = info.inputs;
        built_meta.build_peak = info.build_peak;
        return backend->publish_artifact(l, name, built, options.artifact_version, done_ttl, info);
      });
      release_lease();
      if (st.code() == Code::kAborted && !build_failed) {
        // The lease went (expired, taken over, or Redis lost it) before the
        // fenced publish: nothing of ours is visible. Read again: a peer may
        // have published; otherwise contend again, a bounded number of times.
        if (++lost_leases < kLeaseAttempts) {
          spdlog::warn("fleet_once {}: the lease on {} was lost during the build; publish refused; trying again ({})",
                       name, name, st.message());
          continue;
        }
        spdlog::warn("fleet_once {}: the lease on {} was lost during {} builds in a row; publish refused; giving up",
                     name, name, lost_leases);
        return fail(st);
      }
      if (!st.ok()) {
        spdlog::warn("fleet_once {}: build or publish failed: {}", name, st.to_string());
        return fail(st);
      }
      state("loading_artifact");
      auto source = take_source(std::move(built));
      if (Status ls = step.load(*source, built_meta, true); !ls.ok()) {
        spdlog::warn("fleet_once {}: the artifact built here does not load: {}", name, ls.to_string());
        return fail(ls);
      }
      FleetOutcome o = bad_seen ? FleetOutcome::kRebuiltBadArtifact
                                : (waited ? FleetOutcome::kTookOver : FleetOutcome::kBuilt);
      m.count(o);
      return o;
    }
    // Someone else builds: wait for its message, or one slow poll.
    if (!waited) state("waiting_for_lock");
    waited = true;
    auto now = SteadyTime::now();
    if (now - start >= options.wait_bound) {
      return fail(DeadlineExceeded("fleet_once " + name + ": still not done after waiting " +
                                   std::to_string(options.wait_bound.count()) + "ms for another instance"));
    }
    auto left = std::chrono::duration_cast<milliseconds>(start + options.wait_bound - now);
    backend->wait_done(name, seen, std::min(poll, left), step.stop);
  }
}

namespace {
constexpr size_t kPeakSamples = 8;
}  // namespace

void Coordinator::record_peak(const std::string& name, bool build, uint64_t bytes, milliseconds ttl,
                              std::optional<milliseconds> took) {
  // -1: no duration (an optional here trips GCC's maybe-uninitialized).
  int64_t took_ms = -1;
  if (took.has_value()) {
    int64_t n = took->count();
    if (n >= 0 && n <= kMaxStepDuration.count()) {
      took_ms = n;
    } else {
      spdlog::warn("fleet {}: not recording a {} duration of {} ms (outside 0..24h)", name, build ? "build" : "load",
                   n);
      if (bytes == 0) return;
    }
  }
  const std::string key = task_keys(name).peaks;
  auto current = get_json(key);
  boost::json::object doc;
  if (current.ok() && *current && (*current)->is_object()) doc = (*current)->as_object();
  const char* kind = build ? "build" : "load";
  boost::json::array kept;
  boost::json::object record{
      {"by", options_.instance_id},
      {"at_unix_ms",
       std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count()}};
  // Without a duration the record is what older versions wrote: the bytes alone.
  if (bytes > 0 || took_ms < 0) record["bytes"] = bytes;
  if (took_ms >= 0) record["ms"] = took_ms;
  kept.push_back(std::move(record));
  if (const boost::json::value* old = doc.if_contains(kind); old && old->is_array())
    for (const boost::json::value& v : old->as_array()) {
      if (kept.size() >= kPeakSamples) break;
      if (v.is_object()) kept.push_back(v);
    }
  boost::json::object out;
  for (const char* k : {"build", "load"})
    if (const boost::json::value* v = doc.if_contains(k); v && v->is_array() && std::string_view(k) != kind) {
      boost::json::array a;
      for (const boost::json::value& e : v->as_array()) {
        if (a.size() >= kPeakSamples) break;
        a.push_back(e);
      }
      out[k] = std::move(a);
    }
  out[kind] = std::move(kept);
  if (Status st = set_json(key, out, ttl); !st.ok())
    spdlog::warn("fleet {}: could not record the {} peak: {}", name, kind, st.message());
}

FleetPeaks Coordinator::fleet_peaks(const std::string& name) {
  FleetPeaks out;
  auto doc = get_json(task_keys(name).peaks);
  if (!doc.ok() || !*doc || !(*doc)->is_object()) return out;
  // The newest kPeakSamples records of a kind (what record_peak keeps); each may
  // hold a peak, a duration, or both. The largest of each counts: a probe budget
  // or a memory prediction wants the slow or heavy case, and with at most eight
  // samples a high percentile would be the largest anyway.
  auto scan = [&](const char* kind, uint64_t* peak, int* samples, std::optional<milliseconds>* took) {
    const boost::json::value* v = (*doc)->as_object().if_contains(kind);
    if (!v || !v->is_array()) return;
    size_t seen = 0;
    for (const boost::json::value& e : v->as_array()) {
      if (seen++ >= kPeakSamples) break;
      if (!e.is_object()) continue;
      if (const boost::json::value* b = e.as_object().if_contains("bytes"); b && (b->is_uint64() || b->is_int64())) {
        uint64_t bytes = b->is_uint64() ? b->as_uint64() : static_cast<uint64_t>(std::max<int64_t>(0, b->as_int64()));
        *peak = std::max(*peak, std::min<uint64_t>(bytes, 1ull << 50));
        ++*samples;
      }
      const boost::json::value* ms = e.as_object().if_contains("ms");
      if (!ms) continue;
      int64_t n = -1;  // a double, a string, a huge or negative number: not believed
      if (ms->is_int64()) n = ms->as_int64();
      if (n < 0 || n > kMaxStepDuration.count()) {
        spdlog::warn("fleet {}: ignored a recorded {} duration that is not a whole number of milliseconds in 0..24h",
                     name, kind);
        continue;
      }
      *took = std::max(took->value_or(milliseconds(0)), milliseconds(n));
    }
  };
  scan("build", &out.build, &out.build_samples, &out.build_took);
  scan("load", &out.load, &out.load_samples, &out.load_took);
  return out;
}

Status Coordinator::publish_artifact(const Lease& lease, const std::string& name, std::string_view bytes,
                                     const std::string& version, milliseconds done_ttl) {
  return backend_of(lease)->publish_artifact(lease, name, ChunkedBytes::copy_of(bytes), version, done_ttl,
                                             PublishInfo{});
}

Result<ArtifactRead> Coordinator::read_artifact(const std::string& name, const std::string& version) {
  return active()->read_artifact(name, version);
}

Result<ArtifactRead> Coordinator::read_meta(const std::string& name, const std::string& version) {
  return active()->read_meta(name, version);
}

Result<std::optional<boost::json::value>> Coordinator::get_json(const std::string& key) {
  return active()->get_json(key);
}

Status Coordinator::set_json(const std::string& key, const boost::json::value& value, milliseconds ttl) {
  return active()->set_json(key, value, ttl);
}

}  // namespace memgate::coord
