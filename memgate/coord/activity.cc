#include "memgate/coord/activity.h"

namespace memgate::coord {

int64_t CoordActivity::now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void CoordActivity::lease_taken(const Lease& lease) {
  LeaseRecord r;
  r.key = lease.key;
  r.fence = lease.fence;
  r.backend = lease.backend;
  r.ttl_ms = lease.ttl.count();
  r.acquired_unix_ms = now_unix_ms();
  r.expires_unix_ms = r.acquired_unix_ms + r.ttl_ms;
  std::lock_guard lock(mu_);
  leases_.push_front(std::move(r));
  while (leases_.size() > kLeaseRecords) leases_.pop_back();
}

LeaseRecord* CoordActivity::find(const Lease& lease) {
  for (LeaseRecord& r : leases_)
    if (r.key == lease.key && r.fence == lease.fence && r.backend == lease.backend) return &r;
  return nullptr;
}

void CoordActivity::lease_extended(const Lease& lease) {
  int64_t now = now_unix_ms();
  std::lock_guard lock(mu_);
  if (LeaseRecord* r = find(lease)) {
    r->expires_unix_ms = now + lease.ttl.count();
    ++r->extensions;
  }
}

void CoordActivity::lease_released(const Lease& lease) {
  int64_t now = now_unix_ms();
  std::lock_guard lock(mu_);
  if (LeaseRecord* r = find(lease)) r->released_unix_ms = now;
}

void CoordActivity::outcome(std::string_view name, FleetOutcome o, std::chrono::milliseconds took,
                            std::string_view error) {
  OutcomeRecord r;
  r.name = std::string(name);
  r.outcome = o;
  r.at_unix_ms = now_unix_ms();
  r.duration_ms = took.count();
  r.error = std::string(error.substr(0, kMaxErrorBytes));
  std::lock_guard lock(mu_);
  outcomes_.push_front(std::move(r));
  while (outcomes_.size() > kOutcomeRecords) outcomes_.pop_back();
}

std::vector<LeaseRecord> CoordActivity::leases() const {
  std::lock_guard lock(mu_);
  return {leases_.begin(), leases_.end()};
}

std::vector<OutcomeRecord> CoordActivity::outcomes() const {
  std::lock_guard lock(mu_);
  return {outcomes_.begin(), outcomes_.end()};
}

std::vector<LeaseRecord> CoordActivity::held(int64_t now_unix_ms) const {
  std::lock_guard lock(mu_);
  std::vector<LeaseRecord> out;
  for (const LeaseRecord& r : leases_)
    if (r.released_unix_ms == 0 && r.expires_unix_ms > now_unix_ms) out.push_back(r);
  return out;
}

}  // namespace memgate::coord
