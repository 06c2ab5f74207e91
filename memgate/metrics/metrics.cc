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
