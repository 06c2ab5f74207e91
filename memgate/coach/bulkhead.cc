// The bulkhead keeps a count and a queue under one mutex. A freed place is handed
// to the oldest queued task directly (the count does not drop and rise again), so
// a burst of newcomers cannot overtake requests already waiting.
#include "memgate/coach/bulkhead.h"

namespace memgate::coach {

Bulkhead::Slot& Bulkhead::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::move(other.owner_);
  }
  return *this;
}

void Bulkhead::Slot::release() {
  if (auto owner = std::move(owner_)) owner->leave();
}

std::shared_ptr<Bulkhead> Bulkhead::make(size_t max_inflight, size_t max_queue) {
  return std::shared_ptr<Bulkhead>(new Bulkhead(max_inflight, max_queue));
}

Bulkhead::Admission Bulkhead::enter(Task task) {
  {
    std::lock_guard lock(mu_);
    if (inflight_ >= max_inflight_) {
      if (queue_.size() >= max_queue_) {
        ++rejected_;
        return Admission::kRejected;
      }
      TaskContextSource* source = current_task_context_source();
      queue_.push_back({std::move(task), source ? source->capture() : nullptr});
      return Admission::kQueued;
    }
    ++inflight_;
    ++admitted_;
  }
  task(Slot(shared_from_this()));
  return Admission::kRunning;
}

void Bulkhead::leave() {
  Waiting next;
  {
    std::lock_guard lock(mu_);
    if (queue_.empty()) {
      --inflight_;
      return;
    }
    next = std::move(queue_.front());
    queue_.pop_front();
    ++admitted_;  // the place passes on; inflight_ stays
  }
  // Inside the waiting request's context (or none), not the leaving one's.
  run_in_context(next.context, [&] { next.task(Slot(shared_from_this())); });
}

Bulkhead::Counts Bulkhead::counts() const {
  std::lock_guard lock(mu_);
  return {inflight_, queue_.size(), admitted_, rejected_};
}

}  // namespace memgate::coach
