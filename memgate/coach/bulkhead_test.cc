#include "memgate/coach/bulkhead.h"

#include <gtest/gtest.h>

#include <vector>

namespace memgate::coach {
namespace {

using Admission = Bulkhead::Admission;

TEST(Bulkhead, RunsTasksAtOnceWhileUnderTheLimit) {
  auto b = Bulkhead::make(2, 0);
  std::vector<Bulkhead::Slot> held;
  EXPECT_EQ(b->enter([&](Bulkhead::Slot s) { held.push_back(std::move(s)); }), Admission::kRunning);
  EXPECT_EQ(b->enter([&](Bulkhead::Slot s) { held.push_back(std::move(s)); }), Admission::kRunning);
  EXPECT_EQ(held.size(), 2u);
  EXPECT_EQ(b->counts().inflight, 2u);
}

TEST(Bulkhead, QueuesBeyondTheLimitAndRejectsBeyondTheQueue) {
  auto b = Bulkhead::make(1, 2);
  std::vector<Bulkhead::Slot> held;
  auto keep = [&](Bulkhead::Slot s) { held.push_back(std::move(s)); };
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
  std::vector<Bulkhead::Slot> held;
  auto task = [&](int id) {
    return [&, id](Bulkhead::Slot s) {
      order.push_back(id);
      held.push_back(std::move(s));
    };
  };
  b->enter(task(1));
  b->enter(task(2));
  b->enter(task(3));
  held.front().release();  // 1 done: 2 runs now, on this thread
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

}  // namespace
}  // namespace memgate::coach
