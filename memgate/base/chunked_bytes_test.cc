#include "memgate/base/chunked_bytes.h"

#include <gtest/gtest.h>

namespace memgate {
namespace {

TEST(ChunkedBytes, CopyOfSplitsIntoPiecesOfTheGivenSize) {
  ChunkedBytes b = ChunkedBytes::copy_of("abcdefghij", 4);
  ASSERT_EQ(b.pieces().size(), 3u);
  EXPECT_EQ(b.pieces()[2], "ij");
  EXPECT_EQ(b.size(), 10u);
  EXPECT_EQ(b.flatten(), "abcdefghij");
  EXPECT_EQ(b.prefix(6), "abcdef");
}

TEST(ChunkedBytes, TakeFrontReleasesWhatItReturns) {
  ChunkedBytes b = ChunkedBytes::copy_of("abcdef", 3);
  EXPECT_EQ(b.take_front(), "abc");
  EXPECT_EQ(b.size(), 3u);
  EXPECT_EQ(b.take_front(), "def");
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.take_front(), "");
}

TEST(ChunkedBytes, ATakeSourceKeepsItsDeclaredSizeWhileItEmpties) {
  auto src = take_source(ChunkedBytes::copy_of("hello world", 5));
  EXPECT_EQ(src->size(), 11u);
  auto all = read_all(*src, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, "hello world");
  EXPECT_EQ(src->size(), 11u);
}

TEST(ChunkedBytes, ReadAllRefusesAStreamLongerThanAllowed) {
  auto src = view_source("0123456789", 3);
  auto all = read_all(*src, 5);
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), Code::kResourceExhausted);
}

}  // namespace
}  // namespace memgate
