#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include "memgate/coord/coord_test_env.h"
#include "memgate/coord/local_backend.h"

namespace memgate::coord {
namespace {

using namespace std::chrono_literals;

class LocalFallback : public RedisTest {
 protected:
  CoordinatorOptions local_options() {
    auto o = options();
    o.redis_url.clear();
    return o;
  }
};

TEST_F(LocalFallback, WithoutARedisUrlCoordinationIsLocal) {
  auto c = coordinator(local_options());
  EXPECT_EQ(c->backend(), "local");
  EXPECT_EQ(metrics_.backend.load(), 0);
  EXPECT_TRUE(c->ensure_connected(10ms).ok());
  EXPECT_EQ(c->redis(), nullptr);
}

TEST_F(LocalFallback, LocalJsonValuesRoundTripAndExpire) {
  auto c = coordinator(local_options());
  boost::json::value v = {{"a", 1}};
  ASSERT_TRUE(c->set_json("j", v, 50ms).ok());
  ASSERT_TRUE(c->get_json("j")->has_value());
  EXPECT_EQ(**c->get_json("j"), v);
  ASSERT_TRUE(testing::wait_until([&] { return !c->get_json("j")->has_value(); }, 1s));
  ASSERT_TRUE(c->set_json("forever", v, 0ms).ok());
  EXPECT_TRUE(c->get_json("forever")->has_value());
}

TEST_F(LocalFallback, LocalLocksExcludeAndFenceLikeRedisOnes) {
  auto c = coordinator(local_options());
  auto a = c->acquire("init:x", 1s, 0ms);
  ASSERT_TRUE(a.ok());
  auto b = c->acquire("init:x", 1s, 50ms);
  EXPECT_EQ(b.status().code(), Code::kDeadlineExceeded);
  EXPECT_TRUE(*c->extend(*a, 1s));
  ASSERT_TRUE(*c->release(*a));
  EXPECT_FALSE(*c->release(*a));
  EXPECT_EQ(c->publish_artifact(*a, "init:x", "x", "1", 1s).code(), Code::kAborted);
  auto d = c->acquire("init:x", 1s, 0ms);
  ASSERT_TRUE(d.ok());
  EXPECT_GT(d->fence, a->fence);
}

TEST_F(LocalFallback, EightLocalProcessesNeverHoldTogetherAndSeeIncreasingFences) {
  std::string out = dir_ + "/local-history";
  std::vector<std::unique_ptr<testing::Subprocess>> procs;
  for (int i = 0; i < 8; ++i) {
    auto p = testing::Subprocess::start({tool(), "lock", "--local-dir", dir_ + "/shared", "--key", "lock:local",
                                         "--iterations", "25", "--hold-us", "100", "--out", out},
                                        {}, dir_ + "/local-" + std::to_string(i) + ".log");
    ASSERT_TRUE(p.ok());
    procs.push_back(std::move(*p));
  }
  for (auto& p : procs) ASSERT_EQ(p->wait_for(60s), 0);
  expect_exclusive_history(lines(out), 8 * 25);
  EXPECT_NE(testing::read_file(dir_ + "/local-0.log").find("backend=local"), std::string::npos);
}

TEST_F(LocalFallback, LocalFleetOnceBuildsOnceAcrossThreads) {
  auto c = coordinator(local_options());
  std::atomic<int> builds{0};
  std::atomic<int> loads{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::map<FleetOutcome, int> outcomes;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto r = c->fleet_once(
          "init:local", 1s, 30s,
          [&](const CancelSignal&) -> Result<std::string> {
            builds.fetch_add(1);
            std::this_thread::sleep_for(100ms);
            return std::string("local artifact");
          },
          [&](std::string_view b) {
            EXPECT_EQ(b, "local artifact");
            loads.fetch_add(1);
            return Status::Ok();
          });
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      std::lock_guard lock(mu);
      outcomes[*r]++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(builds.load(), 1);
  EXPECT_EQ(loads.load(), 3);
  EXPECT_EQ(outcomes[FleetOutcome::kBuilt], 1);
}

TEST_F(LocalFallback, TheActivityKeepsLeasesWithTheirFencesAndEveryFleetOnceOutcome) {
  auto c = coordinator(local_options());
  auto a = c->acquire("init:seen", 10s, 0ms);
  ASSERT_TRUE(a.ok());
  std::vector<LeaseRecord> held = c->activity().held(CoordActivity::now_unix_ms());
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].key, "init:seen");
  EXPECT_EQ(held[0].fence, a->fence);
  EXPECT_EQ(held[0].backend, "local");
  EXPECT_EQ(held[0].ttl_ms, 10'000);
  ASSERT_TRUE(*c->extend(*a, 20s));
  EXPECT_EQ(c->activity().leases()[0].extensions, 1);
  EXPECT_GE(c->activity().leases()[0].expires_unix_ms, held[0].acquired_unix_ms + 20'000);
  ASSERT_TRUE(*c->release(*a));
  EXPECT_TRUE(c->activity().held(CoordActivity::now_unix_ms()).empty()) << "released";
  EXPECT_GT(c->activity().leases()[0].released_unix_ms, 0);

  auto build = [](const CancelSignal&) -> Result<std::string> { return std::string("artifact"); };
  auto load = [](std::string_view) { return Status::Ok(); };
  ASSERT_TRUE(c->fleet_once("init:once", 1s, 30s, build, load).ok());
  ASSERT_TRUE(c->fleet_once("init:once", 1s, 30s, build, load).ok());
  auto failing = [](const CancelSignal&) -> Result<std::string> { return Internal("the build broke"); };
  EXPECT_FALSE(c->fleet_once("init:broken", 1s, 30s, failing, load).ok());
  std::vector<OutcomeRecord> outcomes = c->activity().outcomes();
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0].name, "init:broken") << "newest first";
  EXPECT_EQ(outcomes[0].outcome, FleetOutcome::kFailed);
  EXPECT_NE(outcomes[0].error.find("the build broke"), std::string::npos) << outcomes[0].error;
  EXPECT_EQ(outcomes[1].outcome, FleetOutcome::kLoaded);
  EXPECT_EQ(outcomes[2].outcome, FleetOutcome::kBuilt);
  EXPECT_TRUE(outcomes[2].error.empty());
  // fleet_once's own lock is a lease too, released after the build.
  std::vector<LeaseRecord> leases = c->activity().leases();
  ASSERT_GE(leases.size(), 2u);
  bool once_lease = false;
  for (const LeaseRecord& r : leases) once_lease |= r.key == "init:once" && r.released_unix_ms > 0 && r.fence > 0;
  EXPECT_TRUE(once_lease);
}

TEST(CoordActivity, BothListsAreBoundedAndAnErrorIsCut) {
  CoordActivity activity;
  for (size_t i = 0; i < CoordActivity::kLeaseRecords + 5; ++i) {
    Lease l;
    l.key = "k" + std::to_string(i);
    l.fence = static_cast<int64_t>(i);
    l.backend = "redis";
    activity.lease_taken(l);
    activity.outcome(l.key, FleetOutcome::kBuilt, 1ms, std::string(10'000, 'x'));
  }
  EXPECT_EQ(activity.leases().size(), CoordActivity::kLeaseRecords);
  EXPECT_EQ(activity.leases().front().key, "k" + std::to_string(CoordActivity::kLeaseRecords + 4));
  EXPECT_EQ(activity.outcomes().size(), CoordActivity::kOutcomeRecords);
  EXPECT_EQ(activity.outcomes().front().error.size(), CoordActivity::kMaxErrorBytes);
}

TEST_F(LocalFallback, ACorruptLocalArtifactIsRebuilt) {
  auto c = coordinator(local_options());
  auto build = [](const CancelSignal&) -> Result<std::string> { return std::string("good bytes"); };
  int loads = 0;
  auto load = [&](std::string_view b) {
    EXPECT_EQ(b, "good bytes");
    ++loads;
    return Status::Ok();
  };
  ASSERT_EQ(*c->fleet_once("init:corrupt", 1s, 30s, build, load), FleetOutcome::kBuilt);
  std::string path = dir_ + "/local/" + LocalBackend::file_stem("init:corrupt") + ".artifact";
  std::string file = testing::read_file(path);
  file.back() = 'X';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << file;
  ASSERT_EQ(*c->fleet_once("init:corrupt", 1s, 30s, build, load), FleetOutcome::kRebuiltBadArtifact);
  EXPECT_EQ(loads, 0);
  ASSERT_EQ(*c->fleet_once("init:corrupt", 1s, 30s, build, load), FleetOutcome::kLoaded);
  EXPECT_EQ(loads, 1);
}

TEST_F(LocalFallback, ARedisThatDoesNotAnswerAtBootMeansLocalUntilItDoes) {
  server_->kill();
  auto o = options();
  o.connect_timeout = 200ms;
  auto c = coordinator(o);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->backend(), "local");
  EXPECT_EQ(metrics_.backend.load(), 0);
  auto local_lease = c->acquire("init:switch", 5s, 0ms);
  ASSERT_TRUE(local_lease.ok());
  EXPECT_EQ(local_lease->backend, "local");

  ASSERT_TRUE(server_->restart().ok());
  ASSERT_TRUE(testing::wait_until([&] { return c->backend() == "redis"; }, 5s));
  EXPECT_EQ(metrics_.backend.load(), 1);
  // New leases come from Redis; the local one is still released locally.
  auto redis_lease = c->acquire("init:switch", 5s, 0ms);
  ASSERT_TRUE(redis_lease.ok());
  EXPECT_EQ(redis_lease->backend, "redis");
  EXPECT_TRUE(*c->release(*local_lease));
  EXPECT_TRUE(*c->release(*redis_lease));
}

TEST_F(LocalFallback, AMalformedUrlStopsStartUpWithoutEchoingThePassword) {
  auto o = options();
  o.redis_url = "redis://:topsecret@host:notaport";
  auto c = Coordinator::create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("REDIS_URL"), std::string::npos);
  EXPECT_EQ(c.status().message().find("topsecret"), std::string::npos);
}

TEST_F(LocalFallback, AMissingLocalDirIsCreatedPrivate) {
  auto o = local_options();
  o.local_dir = dir_ + "/made/here";
  auto c = coordinator(o);
  ASSERT_NE(c, nullptr);
  struct stat st {};
  ASSERT_EQ(::lstat(o.local_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  auto build = [](const CancelSignal&) -> Result<std::string> { return std::string("bytes"); };
  auto load = [](std::string_view) { return Status::Ok(); };
  ASSERT_EQ(*c->fleet_once("init:private", 1s, 30s, build, load), FleetOutcome::kBuilt);
  for (const char* suffix : {".lock", ".artifact", ".done"}) {
    std::string p = o.local_dir + "/" + LocalBackend::file_stem("init:private") + suffix;
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_mode & 0077, 0u) << p;
  }
}

TEST_F(LocalFallback, ALocalDirWritableByOthersIsRefusedWithItsName) {
  auto o = local_options();
  o.local_dir = dir_ + "/open";
  ASSERT_EQ(::mkdir(o.local_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(o.local_dir.c_str(), 0777), 0);
  auto c = Coordinator::create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(c.status().message().find(o.local_dir), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("0777"), std::string::npos) << c.status().message();
  // With Redis configured too: the fallback dir is checked at start-up.
  auto with_redis = options();
  with_redis.local_dir = o.local_dir;
  EXPECT_EQ(Coordinator::create(with_redis).status().code(), Code::kFailedPrecondition);
}

TEST_F(LocalFallback, ASymlinkedLocalDirIsRefused) {
  auto o = local_options();
  std::string real = dir_ + "/real";
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  o.local_dir = dir_ + "/link";
  ASSERT_EQ(::symlink(real.c_str(), o.local_dir.c_str()), 0);
  auto c = Coordinator::create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("symlink"), std::string::npos) << c.status().message();
}

TEST_F(LocalFallback, ALocalDirOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the dir away";
  auto o = local_options();
  o.local_dir = dir_ + "/theirs";
  ASSERT_EQ(::mkdir(o.local_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(o.local_dir.c_str(), 4242, 4242), 0);
  auto c = Coordinator::create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("owned by uid 4242"), std::string::npos) << c.status().message();
}

TEST_F(LocalFallback, ASymlinkedLockFileIsNotFollowed) {
  auto c = coordinator(local_options());
  std::string victim = dir_ + "/victim";
  std::ofstream(victim) << "precious contents\n";
  std::string lock = dir_ + "/local/" + LocalBackend::file_stem("init:planted") + ".lock";
  ASSERT_EQ(::symlink(victim.c_str(), lock.c_str()), 0);
  auto r = c->acquire("init:planted", 1s, 0ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("symlink"), std::string::npos) << r.status().message();
  EXPECT_EQ(testing::read_file(victim), "precious contents\n");
}

TEST_F(LocalFallback, HostileLocalDoneFlagsAndArtifactsAreRebuiltNotACrash) {
  auto c = coordinator(local_options());
  int builds = 0;
  auto build = [&](const CancelSignal&) -> Result<std::string> {
    ++builds;
    return std::string("good");
  };
  auto load = [](std::string_view) { return Status::Ok(); };
  std::string stem = dir_ + "/local/" + LocalBackend::file_stem("init:hostile");
  std::vector<std::string> dones = {std::string(2 << 20, ' ') + "{}", "{\"expires_unix_ms\":1e300}",
                                    "{\"expires_unix_ms\":\"soon\"}", "[]"};
  for (const std::string& done : dones) {
    std::ofstream(stem + ".done", std::ios::trunc) << done;
    auto r = c->fleet_once("init:hostile", 1s, 30s, build, load);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(*r, FleetOutcome::kRebuiltBadArtifact) << done.substr(0, 40);
  }
  // A done flag that is a symlink is not followed; an artifact that is a FIFO is not opened.
  ::unlink((stem + ".done").c_str());
  std::string elsewhere = dir_ + "/elsewhere";
  std::ofstream(elsewhere) << "{\"expires_unix_ms\":99999999999999}";
  ASSERT_EQ(::symlink(elsewhere.c_str(), (stem + ".done").c_str()), 0);
  ASSERT_EQ(*c->fleet_once("init:hostile", 1s, 30s, build, load), FleetOutcome::kRebuiltBadArtifact);
  ::unlink((stem + ".artifact").c_str());
  ASSERT_EQ(::mkfifo((stem + ".artifact").c_str(), 0600), 0);
  std::ofstream(stem + ".done", std::ios::trunc) << "{\"expires_unix_ms\":99999999999999}";
  auto read = c->read_meta("init:hostile", "1");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->state, ArtifactState::kBad);
  EXPECT_NE(read->problem.find("not a regular file"), std::string::npos) << read->problem;
  EXPECT_EQ(builds, 5);
}

TEST_F(LocalFallback, LocalFencesKeepGrowingWhenTheLockFileIsWiped) {
  auto c = coordinator(local_options());
  auto a = c->acquire("init:wiped", 1s, 0ms);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(*c->release(*a));
  ASSERT_EQ(::unlink((dir_ + "/local/" + LocalBackend::file_stem("init:wiped") + ".lock").c_str()), 0);
  auto b = c->acquire("init:wiped", 1s, 0ms);
  ASSERT_TRUE(b.ok());
  EXPECT_GT(b->fence, a->fence);
}

}  // namespace
}  // namespace memgate::coord
