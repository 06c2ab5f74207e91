// Router: copy-on-write route tables.
//
// Route changes are rare (startup, a module becoming ready or being shed) and
// lookups happen on every request, so writers pay: each change copies the table,
// edits the copy, and publishes it under the mutex with a version bump. The IO
// threads hold a shared_ptr to the table they use and swap it only when the
// version moved, so the hot path is one acquire load plus a hash lookup.
// Endpoints are shared_ptrs so copying a table copies no std::function.
#include "memgate/http/router.h"

#include <algorithm>

namespace memgate::http {

RouteTable::Match RouteTable::find(Method method, std::string_view path) const {
  const Route* route = nullptr;
  if (auto it = exact_.find(path); it != exact_.end()) {
    route = &routes_[it->second];
  } else {
    for (size_t i : prefixes_) {
      const Route& r = routes_[i];
      std::string_view prefix(r.pattern.data(), r.pattern.size() - 1);  // drop '*'
      if (path.size() >= prefix.size() && path.compare(0, prefix.size(), prefix) == 0) {
        route = &r;
        break;
      }
    }
  }
  if (route == nullptr) return {};
  const Endpoint* e = route->endpoints[static_cast<int>(method)].get();
  if (e == nullptr && method == Method::kHead) e = route->endpoints[static_cast<int>(Method::kGet)].get();
  return {route, e};
}

void RouteTable::index() {
  exact_.clear();
  prefixes_.clear();
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (routes_[i].prefix) {
      prefixes_.push_back(i);
    } else {
      exact_.emplace(routes_[i].pattern, i);
    }
  }
  std::sort(prefixes_.begin(), prefixes_.end(), [this](size_t a, size_t b) {
    return routes_[a].pattern.size() > routes_[b].pattern.size();
  });
}

Router::Router() : table_(std::make_shared<RouteTable>()) { patterns_.emplace_back(kUnmatchedLabel); }

Result<RouteId> Router::add_sync(Method method, std::string_view pattern, SyncHandler handler) {
  Endpoint e;
  e.kind = Endpoint::Kind::kSync;
  e.sync = std::move(handler);
  return put(method, pattern, std::move(e));
}

Result<RouteId> Router::add_async(Method method, std::string_view pattern, AsyncHandler handler) {
  Endpoint e;
  e.kind = Endpoint::Kind::kAsync;
  e.async = std::move(handler);
  return put(method, pattern, std::move(e));
}

Result<RouteId> Router::add_pending(Method method, std::string_view pattern, Pending pending) {
  std::string message = pending.message.empty() ? pending.module + " is " + pending.state : pending.message;
  std::string body = R"({"error":{"code":"unavailable","message":")";
  append_json_escaped(body, message);
  body += R"(","module":")";
  append_json_escaped(body, pending.module);
  body += R"(","state":")";
  append_json_escaped(body, pending.state);
  body += "\"}}";
  auto response = std::make_shared<Response>(Response::json(503, std::move(body)));
  response->header("Retry-After", std::to_string(std::max(0, pending.retry_after_seconds)));
  Endpoint e;
  e.kind = Endpoint::Kind::kPending;
  e.pending = std::move(response);
  return put(method, pattern, std::move(e));
}

Result<RouteId> Router::put(Method method, std::string_view pattern, Endpoint endpoint) {
  if (pattern.empty() || pattern.front() != '/') {
    return InvalidArgument("route pattern must start with '/': '" + std::string(pattern) + "'");
  }
  if (method == Method::kOther) return InvalidArgument("routes need a concrete method");
  bool prefix = pattern.back() == '*';
  if (pattern.find('*') != pattern.size() - 1 && pattern.find('*') != std::string_view::npos) {
    return InvalidArgument("'*' may only end a route pattern: '" + std::string(pattern) + "'");
  }
  auto shared = std::make_shared<const Endpoint>(std::move(endpoint));

  std::lock_guard lock(mu_);
  auto next = std::make_shared<RouteTable>(*table_);
  auto it = std::find_if(next->routes_.begin(), next->routes_.end(),
                         [&](const Route& r) { return r.pattern == pattern; });
  if (it == next->routes_.end()) {
    Route r;
    r.id = static_cast<RouteId>(patterns_.size());
    r.pattern = std::string(pattern);
    r.prefix = prefix;
    for (auto& [known, priority] : shed_priorities_)
      if (known == pattern) r.shed_priority = priority;
    patterns_.emplace_back(pattern);
    next->routes_.push_back(std::move(r));
    it = next->routes_.end() - 1;
  }
  it->endpoints[static_cast<int>(method)] = std::move(shared);
  std::string allow;
  for (int m = 0; m < kMethodCount; ++m) {
    bool has = it->endpoints[m] != nullptr ||
               (m == static_cast<int>(Method::kHead) && it->endpoints[static_cast<int>(Method::kGet)]);
    if (!has) continue;
    if (!allow.empty()) allow += ", ";
    allow += method_name(static_cast<Method>(m));
  }
  it->allow = std::move(allow);
  RouteId id = it->id;
  next->index();
  table_ = std::move(next);
  version_.fetch_add(1, std::memory_order_acq_rel);
  return id;
}

void Router::set_shed_priority(std::string_view pattern, int priority) {
  std::lock_guard lock(mu_);
  auto known = std::find_if(shed_priorities_.begin(), shed_priorities_.end(),
                            [&](const auto& p) { return p.first == pattern; });
  if (known == shed_priorities_.end()) shed_priorities_.emplace_back(std::string(pattern), priority);
  else known->second = priority;
  auto next = std::make_shared<RouteTable>(*table_);
  for (Route& r : next->routes_)
    if (r.pattern == pattern) r.shed_priority = priority;
  next->index();
  table_ = std::move(next);
  version_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const RouteTable> Router::snapshot() const {
  std::lock_guard lock(mu_);
  return table_;
}

std::shared_ptr<const RouteTable> Router::snapshot(uint64_t* version) const {
  std::lock_guard lock(mu_);
  *version = version_.load(std::memory_order_relaxed);
  return table_;
}

std::string Router::pattern(RouteId id) const {
  std::lock_guard lock(mu_);
  return id < patterns_.size() ? patterns_[id] : std::string();
}

size_t Router::route_id_count() const {
  std::lock_guard lock(mu_);
  return patterns_.size();
}

}  // namespace memgate::http
