// CoordActivity: what this process did with coordination lately, for people.
//
// The Coordinator records every lease it takes (acquire(), fleet_once's lock)
// with its fence, every extension and release, and the outcome of every
// fleet_once call with its duration. Both lists are bounded (the newest
// kLeaseRecords leases and kOutcomeRecords outcomes); a lease's token, the
// secret that proves ownership, is never kept. The admin listener's
// /debug/coord serves them; nothing decides on them.
//
// Thread-safe: every method takes one mutex for a few copies.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/fleet_outcome.h"
#include "memgate/coord/lease.h"

namespace memgate::coord {

struct LeaseRecord {
  std::string key;
  int64_t fence = 0;
  std::string backend;          // "redis" or "local"
  int64_t ttl_ms = 0;
  int64_t acquired_unix_ms = 0;
  int64_t expires_unix_ms = 0;  // acquired or last extended + TTL, by our clock
  int64_t released_unix_ms = 0; // 0: not released (held, or left to expire)
  int extensions = 0;
};

struct OutcomeRecord {
  std::string name;             // the fleet key name: "init:mcp-kb@<fingerprint>"
  FleetOutcome outcome = FleetOutcome::kFailed;
  int64_t at_unix_ms = 0;       // when the call returned
  int64_t duration_ms = 0;
  std::string error;            // the failure's message (bounded), "" on success
};

class CoordActivity {
 public:
  static constexpr size_t kLeaseRecords = 32;
  static constexpr size_t kOutcomeRecords = 32;
  static constexpr size_t kMaxErrorBytes = 300;

  void lease_taken(const Lease& lease);
  // Matched to the record by key and fence; a lease no longer kept is ignored.
  void lease_extended(const Lease& lease);
  void lease_released(const Lease& lease);
  void outcome(std::string_view name, FleetOutcome o, std::chrono::milliseconds took, std::string_view error = {});

  // Newest first.
  std::vector<LeaseRecord> leases() const;
  std::vector<OutcomeRecord> outcomes() const;
  // Leases not released whose expiry (by our clock) is after `now_unix_ms`.
  std::vector<LeaseRecord> held(int64_t now_unix_ms) const;

  static int64_t now_unix_ms();

 private:
  LeaseRecord* find(const Lease& lease);  // mu_ held

  mutable std::mutex mu_;
  std::deque<LeaseRecord> leases_;      // newest first
  std::deque<OutcomeRecord> outcomes_;  // newest first
};

}  // namespace memgate::coord
