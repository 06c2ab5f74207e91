// Bulkhead: at most N coach requests at work at once, a bounded queue behind
// them, and a quick "no" beyond that.
//
// enter(task) runs `task` at once (on the calling thread) with a Slot when one
// of the N is free, keeps it in the queue when the queue has room, and otherwise
// returns kRejected without running it. A Slot is move-only; destroying it frees
// its place and starts the oldest queued task on the destroying thread, with the
// freed place handed straight to it (a queued task never loses its turn to a
// newcomer). Every path of a request therefore frees its place exactly once:
// hold the Slot for as long as the work runs.
//
// A queued task keeps the task context (base/task_context.h) of the thread that
// queued it and runs inside it when admitted, whatever thread frees the place:
// the request's allocation accounting follows its own work, not the request
// that happened to leave before it.
//
// Thread-safe. Tasks run outside the lock; a task should only hand its work on
// (post it), since it may run on whichever thread freed a slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "memgate/base/task_context.h"

namespace memgate::coach {

class Bulkhead : public std::enable_shared_from_this<Bulkhead> {
 public:
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : owner_(std::move(other.owner_)) {}
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    // Frees the place now (idempotent).
    void release();
    bool held() const { return owner_ != nullptr; }

   private:
    friend class Bulkhead;
    explicit Slot(std::shared_ptr<Bulkhead> owner) : owner_(std::move(owner)) {}
    std::shared_ptr<Bulkhead> owner_;
  };
  using Task = std::function<void(Slot)>;

  enum class Admission { kRunning, kQueued, kRejected };

  struct Counts {
    size_t inflight = 0;
    size_t queued = 0;
    uint64_t admitted = 0;  // ran at once or after a wait
    uint64_t rejected = 0;
  };

  // Build with make(): slots keep the bulkhead alive.
  static std::shared_ptr<Bulkhead> make(size_t max_inflight, size_t max_queue);

  Admission enter(Task task);
  Counts counts() const;
  size_t max_inflight() const { return max_inflight_; }
  size_t max_queue() const { return max_queue_; }

 private:
  Bulkhead(size_t max_inflight, size_t max_queue) : max_inflight_(max_inflight), max_queue_(max_queue) {}
  void leave();

  const size_t max_inflight_;
  const size_t max_queue_;
  mutable std::mutex mu_;
  size_t inflight_ = 0;       // guarded by mu_
  struct Waiting {
    Task task;
    std::shared_ptr<TaskContext> context;  // of the thread that queued it; may be null
  };
  std::deque<Waiting> queue_;  // guarded by mu_
  uint64_t admitted_ = 0;     // guarded by mu_
  uint64_t rejected_ = 0;     // guarded by mu_
};

}  // namespace memgate::coach
