#include "memgate/coord/key_layout.h"

#include <gtest/gtest.h>

namespace memgate::coord {
namespace {

TEST(KeyLayout, EveryKeyOfATaskSharesTheTaskNameAsItsHashTag) {
  TaskKeys k = task_keys("init:mcp-kb@3fa9c1d2e4b5a697");
  EXPECT_EQ(k.lock, "{init:mcp-kb@3fa9c1d2e4b5a697}");
  EXPECT_EQ(k.fence, "{init:mcp-kb@3fa9c1d2e4b5a697}:fence");
  EXPECT_EQ(k.done, "{init:mcp-kb@3fa9c1d2e4b5a697}:done");
  EXPECT_EQ(k.meta, "{init:mcp-kb@3fa9c1d2e4b5a697}:artifact");
  EXPECT_EQ(k.chunk(12, 3), "{init:mcp-kb@3fa9c1d2e4b5a697}:artifact:12:3");
  EXPECT_EQ(k.peaks, "{init:mcp-kb@3fa9c1d2e4b5a697}:peaks");
  uint16_t slot = key_slot(k.lock);
  for (const std::string& key : {k.fence, k.done, k.meta, k.chunk(1, 0), k.chunk(99, 7), k.peaks})
    EXPECT_EQ(key_slot(key), slot) << key;
  TaskKeys job = task_keys("job:reindex:2934");
  EXPECT_EQ(job.lock, "{job:reindex:2934}");
  EXPECT_EQ(key_slot(job.fence), key_slot(job.lock));
}

TEST(KeyLayout, ANameThatAlreadyCarriesAHashTagIsKeptAsItIs) {
  EXPECT_EQ(task_keys("{init:mcp-kb}").lock, "{init:mcp-kb}");
  EXPECT_EQ(task_keys("{init:mcp-kb}").done, "{init:mcp-kb}:done");
  // An empty tag is no tag: the whole name is hashed, so it gets wrapped.
  EXPECT_EQ(task_keys("a{}b").lock, "{a{}b}");
}

TEST(KeyLayout, TheLegacyLayoutIsTheNameWithItsSuffixes) {
  TaskKeys k = legacy_task_keys("init:mcp-kb@ab");
  EXPECT_EQ(k.lock, "init:mcp-kb@ab");
  EXPECT_EQ(k.done, "init:mcp-kb@ab:done");
  EXPECT_EQ(k.chunk(5, 0), "init:mcp-kb@ab:artifact:5:0");
}

TEST(KeyLayout, SlotsAreRedisClustersCrc16OfTheHashTag) {
  // The cluster specification's test vector: CRC16("123456789") = 0x31C3.
  EXPECT_EQ(key_slot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(hash_tag_of("{user1000}.following"), "user1000");
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
  EXPECT_EQ(hash_tag_of("foo{}{bar}"), "foo{}{bar}");  // the first {} is empty: whole key
  EXPECT_EQ(hash_tag_of("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(hash_tag_of("foo{bar}{zap}"), "bar");
}

}  // namespace
}  // namespace memgate::coord
