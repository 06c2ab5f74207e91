// Key layout: the Redis keys of one coordination task, and their hash slot.
//
// A task (a lock, or a fleet_once artifact) has a name K: "init:mcp-kb@<16hex>"
// for the runtime's artifacts (startup/fleet.h), "job:<name>:<period>" for job
// claims. Every key of K shares one Redis Cluster hash tag, so each script that
// touches several of them stays in one slot:
//
//   {K}                          the lock (holder's token, PX = lease TTL)
//   {K}:fence                    the fencing counter
//   {K}:done                     the done flag
//   {K}:artifact                 the artifact meta
//   {K}:artifact:<fence>:<i>     chunk i of the artifact published under <fence>
//   {K}:peaks                    measured peaks (JSON)
//
// A name that already carries a hash tag (a non-empty "{...}", e.g. a caller
// that followed the older advice to write "{init:mcp-kb}") is used as it is:
// its keys already share a slot. legacy_task_keys(K) is the layout before hash
// tags (K, K:fence, K:done, ...), read during the migration window
// (docs/design/coord.md, "Migration"). Completion messages go to
// "memgate:done:K", on a Redis Cluster to "memgate:done:{K}" (sharded pub/sub
// hashes channels like keys, so the message starts on the task's own node).
//
// Pure functions and plain values: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace memgate::coord {

struct TaskKeys {
  std::string lock, fence, done, meta, peaks;
  std::string chunk(int64_t fence_number, uint64_t index) const;
};

// The layout of task `name` (hash-tagged).
TaskKeys task_keys(std::string_view name);
// The layout before hash tags: name, name:fence, name:done, ...
TaskKeys legacy_task_keys(std::string_view name);

// The part of `key` Redis Cluster hashes: the text between the first '{' and the
// first '}' after it when that is non-empty, else the whole key.
std::string_view hash_tag_of(std::string_view key);
// The Redis Cluster slot of `key`: CRC16 (XMODEM) of hash_tag_of(key) mod 16384.
uint16_t key_slot(std::string_view key);

}  // namespace memgate::coord
