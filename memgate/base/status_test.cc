#include "memgate/base/status.h"

#include <gtest/gtest.h>

namespace memgate {
namespace {

TEST(Status, DefaultIsOkAndPrintsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.to_string(), "ok");
}

TEST(Status, ErrorCarriesItsCodeAndMessage) {
  Status s = Unavailable("redis is down");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.to_string(), "unavailable: redis is down");
}

TEST(Status, CodesBecomeTheHttpStatusTheCallerShouldSee) {
  EXPECT_EQ(http_status_for(Code::kInvalidArgument), 400);
  EXPECT_EQ(http_status_for(Code::kNotFound), 404);
  EXPECT_EQ(http_status_for(Code::kUnavailable), 503);
  EXPECT_EQ(http_status_for(Code::kResourceExhausted), 503);
  EXPECT_EQ(http_status_for(Code::kDeadlineExceeded), 504);
  EXPECT_EQ(http_status_for(Code::kInternal), 500);
}

TEST(Result, HoldsAValueOrAnError) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = NotFound("nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kNotFound);
  EXPECT_EQ(bad.value_or(3), 3);
}

}  // namespace
}  // namespace memgate
