// The step durations instances record beside their measured peaks: written
// through the real coordinator (a real redis-server, and the local backend),
// read back as the longest of the recent ones, old records without one read as
// unknown, and hostile values never believed.
#include <boost/json/parse.hpp>
#include <string>

#include "memgate/coord/coord_test_env.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;

class StepTimes : public RedisTest, public ::testing::WithParamInterface<bool> {
 protected:
  // GetParam(): true runs on Redis, false on the local backend (no REDIS_URL).
  std::unique_ptr<Coordinator> make() {
    auto o = options();
    if (!GetParam()) o.redis_url.clear();
    auto c = coordinator(o);
    if (c) {
      EXPECT_EQ(c->backend(), GetParam() ? "redis" : "local");
    }
    return c;
  }
  // Stores `doc` as the peaks record of `name`, as a peer (or an attacker) could.
  void plant(Coordinator& c, const std::string& name, const std::string& doc) {
    if (GetParam()) {
      ASSERT_TRUE(raw().command({"SET", "{" + name + "}:peaks", doc}).ok());
    } else {
      ASSERT_TRUE(c.set_json("{" + name + "}:peaks", boost::json::parse(doc), 30s).ok());
    }
  }
};

INSTANTIATE_TEST_SUITE_P(, StepTimes, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? std::string("Redis") : std::string("Local"); });

TEST_P(StepTimes, DurationsAreReadBackAsTheLongestRecentBesideThePeaks) {
  auto c = make();
  ASSERT_NE(c, nullptr);
  c->record_peak("init:kb@1", true, 0, 30s, 6000ms);
  c->record_peak("init:kb@1", true, 0, 30s, 4000ms);
  c->record_peak("init:kb@1", false, 1234, 30s, 800ms);
  c->record_peak("init:kb@1", false, 99, 30s);  // an older instance: the bytes alone
  FleetPeaks p = c->fleet_peaks("init:kb@1");
  ASSERT_TRUE(p.build_took.has_value());
  EXPECT_EQ(*p.build_took, 6000ms);
  ASSERT_TRUE(p.load_took.has_value());
  EXPECT_EQ(*p.load_took, 800ms);
  // A duration alone is no measured peak; the load's bytes still count.
  EXPECT_EQ(p.build, 0u);
  EXPECT_EQ(p.build_samples, 0);
  EXPECT_EQ(p.load, 1234u);
  EXPECT_EQ(p.load_samples, 2);
  // Only the 8 newest records of a kind are kept and read: nine quick builds
  // push the 6 s one out.
  for (int i = 0; i < 8; ++i) c->record_peak("init:kb@1", true, 0, 30s, 100ms);
  EXPECT_EQ(c->fleet_peaks("init:kb@1").build_took, std::optional(100ms));
}

TEST_P(StepTimes, ARecordWithoutDurationsReadsAsUnknown) {
  auto c = make();
  ASSERT_NE(c, nullptr);
  plant(*c, "init:old@1",
        R"({"build":[{"bytes":100,"by":"old","at_unix_ms":1}],"load":[{"bytes":40,"by":"old","at_unix_ms":1}]})");
  FleetPeaks p = c->fleet_peaks("init:old@1");
  EXPECT_EQ(p.build, 100u);
  EXPECT_EQ(p.load, 40u);
  EXPECT_FALSE(p.build_took.has_value());
  EXPECT_FALSE(p.load_took.has_value());
  EXPECT_FALSE(c->fleet_peaks("init:none@1").load_took.has_value());
}

TEST_P(StepTimes, AHostileDurationIsIgnoredAndTheOthersStillCount) {
  auto c = make();
  ASSERT_NE(c, nullptr);
  // Past 24 h, negative, fractional, a string, past int64: none believed.
  plant(*c, "init:bad@1",
        R"({"load":[{"ms":86400001},{"ms":-5},{"ms":1.5},{"ms":"60000"},{"ms":18446744073709551615},)"
        R"({"ms":2500,"bytes":7}],"build":[{"ms":999999999999999}]})");
  FleetPeaks p = c->fleet_peaks("init:bad@1");
  EXPECT_EQ(p.load_took, std::optional(2500ms));
  EXPECT_EQ(p.load, 7u);
  EXPECT_FALSE(p.build_took.has_value());
  // A hostile value past the 8 newest records is not even read.
  std::string many = R"({"build":[)";
  for (int i = 0; i < 8; ++i) many += R"({"ms":"x"},)";
  many += R"({"ms":1000}]})";
  plant(*c, "init:many@1", many);
  EXPECT_FALSE(c->fleet_peaks("init:many@1").build_took.has_value());
  // Nor does this instance record one: a duration past 24 h is dropped.
  c->record_peak("init:long@1", true, 0, 30s, 25h);
  c->record_peak("init:long@1", false, 0, 30s, -1ms);
  FleetPeaks q = c->fleet_peaks("init:long@1");
  EXPECT_FALSE(q.build_took.has_value());
  EXPECT_FALSE(q.load_took.has_value());
  EXPECT_FALSE(c->get_json("{init:long@1}:peaks")->has_value()) << "nothing worth writing";
}

}  // namespace
}  // namespace memgate::coord
