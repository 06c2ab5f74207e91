#include "memgate/coach/bulkhead.h"

#include <gtest/gtest.h>

#include <deque>
#include <vector>

#include "memgate/base/task_context.h"

namespace memgate::coach {
namespace {

using Admission = Bulkhead::Admission;

// Keeps a test's slots. Freeing one admits a queued task that may keep its slot
// here too, so the shelf lets them go one at a time (a deque: keeping one while
// another is being freed moves nothing) rather than destroying a container that
// is being added to.
struct Shelf {
  std::deque<Bulkhead::Slot> slots;
  void keep(Bulkhead::Slot s) { slots.push_back(std::move(s)); }
  ~Shelf() {
    while (!slots.empty()) {
      Bulkhead::Slot last = std::move(slots.back());
      slots.pop_back();
    }
  }
};

TEST(Bulkhead, RunsTasksAtOnceWhileUnderTheLimit) {
  auto b = Bulkhead::make(2, 0);
  Shelf held;
  EXPECT_EQ(b->enter([&](Bulkhead::Slot s) { held.keep(std::move(s)); }), Admission::kRunning);
  EXPECT_EQ(b->enter([&](Bulkhead::Slot s) { held.keep(std::move(s)); }), Admission::kRunning);
  EXPECT_EQ(held.slots.size(), 2u);
  EXPECT_EQ(b->counts().inflight, 2u);
}

TEST(Bulkhead, QueuesBeyondTheLimitAndRejectsBeyondTheQueue) {
  auto b = Bulkhead::make(1, 2);
  Shelf held;
  auto keep = [&](Bulkhead::Slot s) { held.keep(std::move(s)); };
  EXPECT_EQ(b->enter(keep), Admission::kRunning);
  EXPECT_EQ(b->enter(keep), Admission::kQueued);
  EXPECT_EQ(b->enter(keep), Admission::kQueued);
  bool ran = false;
  EXPECT_EQ(b->enter([&](Bulkhead::Slot) { ran = true; }), Admission::kRejected);
  EXPECT_FALSE(ran) << "a rejected task never runs";
  Bulkhead::Counts c = b->counts();
  EXPECT_EQ(c.inflight, 1u);
  EXPECT_EQ(c.queued, 2u);
  EXPECT_EQ(c.rejected, 1u);
}

TEST(Bulkhead, AFreedPlaceGoesToTheOldestQueuedTaskNotToANewcomer) {
  auto b = Bulkhead::make(1, 2);
  std::vector<int> order;
  Shelf held;
  auto task = [&](int id) {
    return [&, id](Bulkhead::Slot s) {
      order.push_back(id);
      held.keep(std::move(s));
    };
  };
  b->enter(task(1));
  b->enter(task(2));
  b->enter(task(3));
  held.slots.front().release();  // 1 done: 2 runs now, on this thread
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(b->counts().inflight, 1u);
  EXPECT_EQ(b->enter(task(4)), Admission::kQueued) << "the place went to 2, not to a newcomer";
  EXPECT_EQ(b->counts().queued, 2u);
}

TEST(Bulkhead, DroppingEverySlotEmptiesTheQueueAndFreesEveryPlace) {
  auto b = Bulkhead::make(2, 8);
  int ran = 0;
  for (int i = 0; i < 10; ++i) b->enter([&](Bulkhead::Slot) { ++ran; });  // each drops its slot at once
  EXPECT_EQ(ran, 10);
  Bulkhead::Counts c = b->counts();
  EXPECT_EQ(c.inflight, 0u);
  EXPECT_EQ(c.queued, 0u);
  EXPECT_EQ(c.admitted, 10u);
}

TEST(Bulkhead, ASlotOutlivesNothingItsBulkheadNeeds) {
  Bulkhead::Slot slot;
  {
    auto b = Bulkhead::make(1, 0);
    b->enter([&](Bulkhead::Slot s) { slot = std::move(s); });
  }
  EXPECT_TRUE(slot.held());
  slot.release();  // the slot kept its bulkhead alive
  EXPECT_FALSE(slot.held());
}

// A context that records, on its thread, which context a task ran inside.
class NamedContext final : public TaskContext {
 public:
  explicit NamedContext(std::string name) : name(std::move(name)) {}
  void run(const std::function<void()>& task) override {
    const NamedContext* outer = current;
    current = this;
    task();
    current = outer;
  }
  const std::string name;
  static thread_local const NamedContext* current;
};
thread_local const NamedContext* NamedContext::current = nullptr;

TEST(Bulkhead, AQueuedTaskRunsInsideTheContextOfWhoQueuedItNotOfWhoLeft) {
  auto b = Bulkhead::make(1, 2);
  auto first = std::make_shared<NamedContext>("first");
  auto waiting = std::make_shared<NamedContext>("waiting");
  Bulkhead::Slot held;
  std::string ran_in;
  bool saw_waiting_source = false, unqueued_saw_no_source = false;
  {
    FixedTaskContextSource source(first);
    TaskContextSourceScope scope(&source);
    b->enter([&](Bulkhead::Slot s) { held = std::move(s); });
  }
  {
    FixedTaskContextSource source(waiting);
    TaskContextSourceScope scope(&source);
    EXPECT_EQ(b->enter([&](Bulkhead::Slot s) {
      ran_in = NamedContext::current ? NamedContext::current->name : "none";
      TaskContextSource* now = current_task_context_source();
      saw_waiting_source = now && now->capture().get() == NamedContext::current;
      held = std::move(s);  // the place passes on; keep it
    }), Admission::kQueued);
  }
  // Queued from a thread with no source: what it posts must not follow anyone.
  EXPECT_EQ(b->enter([&](Bulkhead::Slot) { unqueued_saw_no_source = current_task_context_source() == nullptr; }),
            Admission::kQueued);
  std::weak_ptr<NamedContext> weak_waiting = waiting;
  waiting.reset();
  EXPECT_FALSE(weak_waiting.expired()) << "the queue keeps the waiting request's context";
  // Each request leaves while its own context runs (as the coach's on_done does).
  run_in_context(first, [&] { Bulkhead::Slot(std::move(held)).release(); });
  EXPECT_EQ(ran_in, "waiting");
  EXPECT_TRUE(saw_waiting_source) << "work the admitted task posts follows the waiting request";
  run_in_context(first, [&] { Bulkhead::Slot(std::move(held)).release(); });
  EXPECT_TRUE(unqueued_saw_no_source);
  EXPECT_TRUE(weak_waiting.expired()) << "admitted and done: the context is let go";
}

}  // namespace
}  // namespace memgate::coach
