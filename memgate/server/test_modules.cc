#include "memgate/server/test_modules.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <thread>

namespace memgate::server {
namespace {

class HeavyTestModule final : public startup::Module {
 public:
  HeavyTestModule(int index, uint64_t build_bytes, uint64_t keep_bytes, std::chrono::milliseconds build_time,
                  bool ignores_stop)
      : index_(index),
        build_bytes_(build_bytes),
        keep_bytes_(keep_bytes),
        build_time_(build_time),
        ignores_stop_(ignores_stop) {}

  std::string name() const override { return "test-heavy-" + std::to_string(index_); }
  int stage() const override { return index_; }
  std::optional<startup::FleetSpec> fleet() const override {
    std::string key = "init:" + name();
    return startup::FleetSpec{key, std::chrono::seconds(5), key + ":done", std::chrono::minutes(1), "1"};
  }
  std::vector<startup::RouteDecl> routes() const override { return {{http::Method::kGet, "/api/" + name()}}; }
  std::string input_fingerprint() const override {
    return "build=" + std::to_string(build_bytes_) + " keep=" + std::to_string(keep_bytes_);
  }
  // The scratch table plus what it keeps; a load holds what it keeps.
  startup::PeakEstimate estimate_peaks() const override { return {build_bytes_ + keep_bytes_, keep_bytes_, 0}; }

  Result<ChunkedBytes> build(startup::ModuleContext& ctx) override {
    std::unique_ptr<char[]> scratch(new char[build_bytes_]);
    // Touch every page so the scratch table is resident, as a real build's would be.
    for (uint64_t i = 0; i < build_bytes_; i += 4096) scratch[i] = static_cast<char>(i >> 12);
    auto begin = std::chrono::steady_clock::now();
    auto until = begin + build_time_;
    while (std::chrono::steady_clock::now() < until) {
      if (ctx.stop.stop_requested() && !ignores_stop_) return Cancelled("stopping");
      if (ctx.progress && build_time_.count() > 0)
        ctx.progress(static_cast<int>((std::chrono::steady_clock::now() - begin) * 100 / build_time_));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // simulated slow work
    }
    // Keep a slice of the table (repeated if the slice is larger than the table).
    ChunkedBytes kept;
    while (kept.size() < keep_bytes_) {
      uint64_t n = std::min<uint64_t>({build_bytes_, keep_bytes_ - kept.size(), ChunkedBytes::kDefaultPiece});
      kept.append(std::string(scratch.get(), n));
    }
    return kept;
  }

  // Streams the pieces into the kept table: the load holds one piece at a time.
  Status load(ByteSource& artifact, startup::ModuleContext& ctx) override {
    if (artifact.size() != keep_bytes_) return InvalidArgument("artifact has the wrong size");
    std::vector<char> next;
    next.reserve(keep_bytes_);
    for (;;) {
      auto piece = artifact.next();
      if (!piece.ok()) return piece.status();
      if (piece->empty()) break;
      if (next.size() + piece->size() > keep_bytes_) return InvalidArgument("artifact is longer than it says");
      next.insert(next.end(), piece->begin(), piece->end());
    }
    {
      std::lock_guard lock(mu_);
      kept_ = std::move(next);
    }
    std::string body = "{\"module\":\"" + name() + "\",\"kept_bytes\":" + std::to_string(keep_bytes_) + "}";
    (void)ctx.router.add(http::Method::kGet, "/api/" + name(),
                         [body](const http::Request&) { return http::Response::json(200, body); });
    return Status::Ok();
  }

  void stop() override {
    std::lock_guard lock(mu_);
    kept_.clear();
    kept_.shrink_to_fit();
  }

 private:
  int index_;
  uint64_t build_bytes_;
  uint64_t keep_bytes_;
  std::chrono::milliseconds build_time_;
  bool ignores_stop_;  // a hung build, for the shutdown watchdog's tests
  std::mutex mu_;
  std::vector<char> kept_;
};

class TickJobModule final : public startup::Module {
 public:
  TickJobModule(std::string log_path, std::chrono::milliseconds period, std::string instance)
      : log_path_(std::move(log_path)), period_(period), instance_(std::move(instance)) {}
  std::string name() const override { return "test-jobs"; }
  std::vector<jobs::JobSpec> jobs() override {
    return {{"test-tick", period_, [this](std::stop_token) -> Status {
               auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
               std::string line = std::to_string(now / period_.count()) + " " + instance_ + "\n";
               int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
               if (fd < 0) return Unavailable("cannot open " + log_path_ + ": " + std::strerror(errno));
               ssize_t n = ::write(fd, line.data(), line.size());
               ::close(fd);
               return n == static_cast<ssize_t>(line.size()) ? Status::Ok() : Unavailable("short write");
             }}};
  }
  Result<ChunkedBytes> build(startup::ModuleContext&) override { return ChunkedBytes(); }
  Status load(ByteSource&, startup::ModuleContext&) override { return Status::Ok(); }

 private:
  std::string log_path_;
  std::chrono::milliseconds period_;
  std::string instance_;
};

struct TestOptions {
  int heavy_modules = 0;
  uint64_t build_bytes = 64ull << 20;
  uint64_t keep_bytes = 8ull << 20;
  std::chrono::milliseconds build_time{0};
  bool ignores_stop = false;
  std::string job_log;
  std::chrono::milliseconds job_period{1000};
};

SettingRow row(const char* env, const char* flag, const char* def, const char* help) {
  return module_row("For tests only (MEMGATE_TEST_ROUTES)", env, flag, def, help);
}

std::function<Status(const std::string&, TestOptions&)> mebibytes(uint64_t TestOptions::*field, uint64_t min) {
  return [field, min](const std::string& t, TestOptions& o) {
    auto v = parse_int(t, static_cast<int64_t>(min), 64 * 1024);
    if (!v.ok()) return InvalidArgument("expected a whole number of MiB from " + std::to_string(min) + " to 65536");
    o.*field = static_cast<uint64_t>(*v) << 20;
    return Status::Ok();
  };
}

const std::vector<OptionRow<TestOptions>>& test_rows() {
  static const std::vector<OptionRow<TestOptions>> rows = {
      {row("MEMGATE_TEST_HEAVY_MODULES", "test-heavy-modules", "0", "N modules test-heavy-1..N, one per stage"),
       [](const std::string& t, TestOptions& o) {
         auto v = parse_int(t, 0, 32);
         if (!v.ok()) return InvalidArgument("expected a whole number from 0 to 32");
         o.heavy_modules = static_cast<int>(*v);
         return Status::Ok();
       }},
      {row("MEMGATE_TEST_BUILD_MB", "test-build-mb", "64", "Scratch memory each test build allocates and touches"),
       mebibytes(&TestOptions::build_bytes, 1)},
      {row("MEMGATE_TEST_KEEP_MB", "test-keep-mb", "8", "What each test module keeps (its artifact)"),
       mebibytes(&TestOptions::keep_bytes, 0)},
      {row("MEMGATE_TEST_BUILD_MS", "test-build-ms", "0", "Extra milliseconds each test build takes"),
       [](const std::string& t, TestOptions& o) {
         auto v = parse_int(t, 0, 3'600'000);
         if (!v.ok()) return InvalidArgument("expected a whole number of milliseconds from 0 to 3600000");
         o.build_time = std::chrono::milliseconds(*v);
         return Status::Ok();
       }},
      {row("MEMGATE_TEST_BUILD_IGNORES_STOP", "test-build-ignores-stop", "false",
           "The test builds keep going after SIGTERM (a hung step)"),
       [](const std::string& t, TestOptions& o) {
         auto v = parse_bool(t);
         if (!v.ok()) return InvalidArgument("expected " + std::string(kBoolForm));
         o.ignores_stop = *v;
         return Status::Ok();
       }},
      {row("MEMGATE_TEST_JOB_LOG", "test-job-log", "",
           "Adds the job test-tick, appending '<period> <instance>' to this file"),
       [](const std::string& t, TestOptions& o) {
         o.job_log = t;
         return Status::Ok();
       }},
      {row("MEMGATE_TEST_JOB_PERIOD", "test-job-period", "1s", "The period of test-tick"),
       [](const std::string& t, TestOptions& o) {
         auto v = parse_duration(t);
         if (!v.ok() || v->count() <= 0) return InvalidArgument("expected a duration such as 1s");
         o.job_period = *v;
         return Status::Ok();
       }},
  };
  return rows;
}

}  // namespace

SettingRows test_settings() { return to_rows(test_rows()); }

Result<startup::ModuleList> test_modules(const Config& config, const EnvLookup& env) {
  startup::ModuleList out;
  if (!config.test_routes) return out;
  TestOptions o;
  if (Status st = apply_rows(test_rows(), env, o); !st.ok()) return st;
  for (int i = 1; i <= o.heavy_modules; ++i)
    out.push_back(std::make_shared<HeavyTestModule>(i, o.build_bytes, o.keep_bytes, o.build_time, o.ignores_stop));
  if (!o.job_log.empty()) out.push_back(std::make_shared<TickJobModule>(o.job_log, o.job_period, config.instance_id));
  return out;
}

}  // namespace memgate::server
