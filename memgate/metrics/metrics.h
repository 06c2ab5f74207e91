// Metrics: the process's Prometheus registry and its text exposition.
//
// A Metrics object owns a prometheus::Registry (for counters, gauges and
// histograms made with prometheus-cpp's builders) and a list of extra
// Collectables: objects asked for their figures at scrape time, such as the
// process and memory collectors (process_collector.h, memory_collector.h) or a
// hand-made collectable summing per-thread counters (families.h). serialize()
// gathers all of them and renders the Prometheus text format (version 0.0.4) that
// /metrics serves.
//
// Thread-safe: every method may be called from any thread, including while
// another thread serializes. A Collectable's Collect() runs on the thread that
// calls serialize(), without any Metrics lock held.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace prometheus {
class Registry;
class Collectable;
}  // namespace prometheus

namespace memgate::metrics {

// The Content-Type of serialize()'s output.
inline constexpr std::string_view kExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The registry; lives as long as this object (or longer, through the shared_ptr).
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() const { return registry_; }

  // Adds a collectable the caller keeps alive. It is collected while it lives
  // and forgotten once it expires, so its owner may simply destroy it.
  void add_collectable(std::weak_ptr<prometheus::Collectable> collectable);
  // Adds a collectable that this object keeps alive until it is destroyed.
  void own_collectable(std::shared_ptr<prometheus::Collectable> collectable);

  // The registry's families followed by each live collectable's, in the order
  // they were added, as Prometheus text. Families are not merged: two
  // collectables reporting the same name produce two blocks (avoid that).
  // Cost grows with the number of series; collectors read /proc here.
  std::string serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mu_;
  mutable std::vector<std::weak_ptr<prometheus::Collectable>> collectables_;  // pruned when expired
  std::vector<std::shared_ptr<prometheus::Collectable>> owned_;
};

}  // namespace memgate::metrics
