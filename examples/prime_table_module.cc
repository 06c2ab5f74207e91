#include "examples/prime_table_module.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <shared_mutex>
#include <vector>

namespace memgate::examples {
namespace {

class PrimeTable final : public startup::Module {
 public:
  explicit PrimeTable(uint32_t limit) : limit_(limit) {}

  std::string name() const override { return "example-primes"; }
  int stage() const override { return 2; }
  startup::FlagSpec flag() const override { return {"ENABLE_EXAMPLE_MODULE", false}; }
  std::optional<SizeSpec> memory_gate() const override { return SizeSpec::Share(0.5); }
  std::optional<startup::FleetSpec> fleet() const override {
    return startup::FleetSpec{"init:example-primes", std::chrono::seconds(15), "init:example-primes:done",
                              std::chrono::minutes(5), "1"};
  }
  std::vector<startup::RouteDecl> routes() const override {
    return {{http::Method::kGet, "/api/example/primes"}};
  }
  // The artifact is a function of the limit alone.
  std::string input_fingerprint() const override { return "limit=" + std::to_string(limit_); }
  // The sieve is a byte per number; the primes are about n / ln n of 4 bytes,
  // held twice while a load unpacks them (the artifact and the table).
  startup::PeakEstimate estimate_peaks() const override {
    uint64_t primes = static_cast<uint64_t>(static_cast<double>(limit_) / std::max(1.0, std::log(static_cast<double>(limit_))));
    return {limit_ + 2 * 4 * primes, 2 * 4 * primes, 0};
  }

  // The heavy part: a sieve over [0, limit], then the primes packed as
  // little-endian uint32 values: that byte string is the artifact.
  Result<ChunkedBytes> build(startup::ModuleContext& ctx) override {
    std::vector<uint8_t> composite(static_cast<size_t>(limit_) + 1, 0);
    for (uint64_t i = 2; i * i <= limit_; ++i) {
      if (composite[i]) continue;
      if ((i & 1023) == 0 && ctx.stop.stop_requested()) return Cancelled("stopping");
      for (uint64_t j = i * i; j <= limit_; j += i) composite[j] = 1;
    }
    std::string out;
    for (uint32_t n = 2; n <= limit_ && n >= 2; ++n) {
      if (composite[n]) continue;
      char b[4] = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                   static_cast<char>(n >> 24)};
      out.append(b, 4);
      if (n == limit_) break;
    }
    return ChunkedBytes::from_string(std::move(out));
  }

  // Unpacks the artifact and serves it. A malformed artifact is refused (the
  // loader then builds instead of serving garbage).
  Status load(ByteSource& bytes, startup::ModuleContext& ctx) override {
    auto whole = startup::read_artifact(bytes, 4ull * limit_ + 4);
    if (!whole.ok()) return whole.status();
    std::string_view artifact = *whole;
    if (artifact.size() % 4 != 0) return InvalidArgument("artifact size is not a multiple of 4");
    std::vector<uint32_t> primes(artifact.size() / 4);
    std::memcpy(primes.data(), artifact.data(), artifact.size());
    if (!std::is_sorted(primes.begin(), primes.end())) return InvalidArgument("artifact is not sorted");
    {
      std::unique_lock lock(mu_);
      primes_ = std::move(primes);
    }
    (void)ctx.router.add(http::Method::kGet, "/api/example/primes", [this](const http::Request& req) {
      auto below = parse_int(req.query_param("below"), 0, 4'000'000'000LL);
      if (!below.ok()) return http::Response::error(400, "below must be a whole number from 0 to 4000000000");
      std::shared_lock lock(mu_);
      auto end = std::lower_bound(primes_.begin(), primes_.end(), static_cast<uint64_t>(*below));
      size_t count = static_cast<size_t>(end - primes_.begin());
      std::string body = "{\"below\":" + std::to_string(*below) + ",\"count\":" + std::to_string(count) +
                         ",\"largest\":" + (count ? std::to_string(*(end - 1)) : "null") + "}";
      return http::Response::json(200, std::move(body));
    });
    return Status::Ok();
  }

  void stop() override {
    std::unique_lock lock(mu_);
    primes_.clear();
    primes_.shrink_to_fit();
  }

 private:
  uint32_t limit_;
  std::shared_mutex mu_;
  std::vector<uint32_t> primes_;
};

}  // namespace

namespace {

const std::vector<OptionRow<uint32_t>>& prime_rows() {
  static const std::vector<OptionRow<uint32_t>> rows = {
      {SettingRow{"EXAMPLE_PRIMES_LIMIT", "example-primes-limit", "20000000",
                  "How far the example module sieves (its build's temporary table is this many bytes)", false,
                  "Example module (ENABLE_EXAMPLE_MODULE)", "", {}},
       [](const std::string& t, uint32_t& limit) {
         auto v = parse_int(t, 2, 2'000'000'000);
         if (!v.ok()) return InvalidArgument("expected a whole number from 2 to 2000000000");
         limit = static_cast<uint32_t>(*v);
         return Status::Ok();
       }},
  };
  return rows;
}

}  // namespace

SettingRows settings() {
  // The flag is read by the loader (FlagSpec); its row makes it a setting like any other.
  SettingRows rows = {SettingRow{"ENABLE_EXAMPLE_MODULE", "enable-example-module", "false",
                                 "Load the example module example-primes (GET /api/example/primes?below=N)", false,
                                 "Example module (ENABLE_EXAMPLE_MODULE)", "",
                                 [](const std::string& t) {
                                   auto v = parse_bool(t);
                                   return v.ok() ? Status::Ok() : InvalidArgument("expected " + std::string(kBoolForm));
                                 }}};
  for (SettingRow& r : to_rows(prime_rows())) rows.push_back(std::move(r));
  return rows;
}

Result<std::shared_ptr<startup::Module>> make_prime_table_module(const EnvLookup& env) {
  uint32_t limit = 20'000'000;
  if (Status st = apply_rows(prime_rows(), env, limit); !st.ok()) return st;
  return std::shared_ptr<startup::Module>(std::make_shared<PrimeTable>(limit));
}

}  // namespace memgate::examples
