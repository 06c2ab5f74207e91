// The registry and the extra collectables are gathered at scrape time, never
// cached: a scrape is rare (seconds apart) and the figures must be current. The
// list of collectables is guarded by a mutex that is held only to copy it, so a
// slow collector (one reading /proc) never blocks registration, and weak entries
// whose owner is gone are pruned on the way.
#include "memgate/metrics/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <utility>

namespace memgate::metrics {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}
Metrics::~Metrics() = default;

void Metrics::add_collectable(std::weak_ptr<prometheus::Collectable> collectable) {
  std::lock_guard lock(mu_);
  // Pruning here too keeps the list bounded when collectables come and go
  // between scrapes (adds are rare, so the linear pass costs nothing).
  std::erase_if(collectables_, [](const auto& weak) { return weak.expired(); });
  collectables_.push_back(std::move(collectable));
}

void Metrics::own_collectable(std::shared_ptr<prometheus::Collectable> collectable) {
  std::lock_guard lock(mu_);
  collectables_.push_back(collectable);
  owned_.push_back(std::move(collectable));
}

std::string Metrics::serialize() const {
  std::vector<std::shared_ptr<prometheus::Collectable>> live;
  {
    std::lock_guard lock(mu_);
    std::erase_if(collectables_, [](const auto& weak) { return weak.expired(); });
    live.reserve(collectables_.size());
    for (const auto& weak : collectables_) {
      if (auto strong = weak.lock()) live.push_back(std::move(strong));
    }
  }
  // Collect outside the lock: collectors read files, and one may register more.
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (const auto& collectable : live) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace memgate::metrics
