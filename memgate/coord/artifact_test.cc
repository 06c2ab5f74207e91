#include "memgate/coord/artifact.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "memgate/coord/coord_metrics.h"
#include "memgate/coord/lease.h"

namespace memgate::coord {
namespace {

TEST(Artifact, MetaSurvivesAJsonRoundTrip) {
  ArtifactMeta m = describe_artifact("hello world", "v7", 42, 4);
  EXPECT_EQ(m.chunks, 3u);
  EXPECT_EQ(m.size, 11u);
  auto back = ArtifactMeta::from_json(m.to_json());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->version, "v7");
  EXPECT_EQ(back->fence, 42);
  EXPECT_EQ(back->chunks, 3u);
  EXPECT_EQ(back->sha256, m.sha256);
}

TEST(Artifact, AnEmptyArtifactIsOneEmptyChunk) {
  EXPECT_EQ(describe_artifact("", "1", 1, 512).chunks, 1u);
}

TEST(Artifact, ChecksRefuseOtherVersionsSizesAndBytes) {
  ArtifactMeta m = describe_artifact("abcdef", "1", 1, 512);
  EXPECT_EQ(check_artifact(m, "abcdef", "1"), "");
  EXPECT_NE(check_artifact(m, "abcdef", "2"), "");
  EXPECT_NE(check_artifact(m, "abcde", "1"), "");
  EXPECT_EQ(check_artifact(m, "abcdeX", "1"), "checksum mismatch");
  m.format = kArtifactFormat + 1;
  EXPECT_NE(check_artifact(m, "abcdef", "1").find("format"), std::string::npos);
}

TEST(Artifact, IncompleteMetaIsAnError) {
  EXPECT_FALSE(ArtifactMeta::from_json("{\"format\":1}").ok());
  EXPECT_FALSE(ArtifactMeta::from_json("garbage").ok());
}

TEST(Lease, TokensAre128RandomBitsInHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string t = random_token();
    ASSERT_EQ(t.size(), 32u);
    ASSERT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos);
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Lease, AForkedChildDoesNotRepeatItsParentsTokens) {
  // A per-thread PRNG seeded once would hand the child the parent's next tokens.
  random_token();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string t = random_token();
    ssize_t n = ::write(fds[1], t.data(), t.size());
    ::_exit(n == static_cast<ssize_t>(t.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string parent = random_token();
  char buf[64] = {};
  ssize_t n = ::read(fds[0], buf, sizeof buf);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_EQ(n, 32);
  std::string child(buf, 32);
  EXPECT_EQ(child.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(child, parent);
}

TEST(CancelSignal, TheFirstReasonWinsAndWaitersWake) {
  CancelSignal s;
  EXPECT_FALSE(s.wait_for(std::chrono::milliseconds(0)));
  s.cancel("first");
  s.cancel("second");
  EXPECT_TRUE(s.cancelled());
  EXPECT_TRUE(s.wait_for(std::chrono::milliseconds(0)));
  EXPECT_EQ(s.reason(), "first");
}

TEST(Histogram, BucketsAreCumulative) {
  Histogram h;
  h.observe(std::chrono::microseconds(300));   // <= 0.5ms
  h.observe(std::chrono::milliseconds(3));     // <= 5ms
  h.observe(std::chrono::seconds(60));         // +Inf
  auto s = h.snapshot();
  EXPECT_EQ(s.cumulative[0], 1u);
  EXPECT_EQ(s.cumulative[3], 2u);
  EXPECT_EQ(s.cumulative.back(), 2u);
  EXPECT_EQ(s.count, 3u);
  EXPECT_NEAR(s.sum_seconds, 60.0033, 1e-6);
}

}  // namespace
}  // namespace memgate::coord
