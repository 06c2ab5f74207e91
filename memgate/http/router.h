// Router: maps (method, path) to a handler; routes can be added while serving.
//
// Patterns are exact ("/healthz") or prefix ("/api/kb/docs/*" matches
// "/api/kb/docs/" and everything below it; the longest prefix wins, an exact
// route beats any prefix). Each pattern gets a RouteId, stable for the life of the
// Router, used to label statistics by pattern (never by raw path); id 0 is the
// "unmatched" label for paths no route claims.
//
// A (method, pattern) endpoint is one of:
//   sync    Response(const Request&), run on the IO thread: keep it short;
//   async   void(const Request&, Responder), completes later from any thread;
//   pending answers 503 with Retry-After and a JSON reason naming the module and
//           its state, until a real handler replaces it (add() again).
// Registering an endpoint that exists replaces it (pending -> ready, or back to
// pending when a module is shed). HEAD is served by the GET endpoint when no
// HEAD endpoint exists. Method mismatch -> 405 with Allow; no route -> 404.
//
// Thread-safety: every method is safe from any thread. Writers take a mutex and
// publish a new immutable RouteTable; readers (the IO threads) keep their own
// reference to the current table and only compare version() — an acquire load of
// a rarely written word — on each request, so the read path takes no lock and
// writes no shared memory.
#pragma once

#include <array>
#include <atomic>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "memgate/base/status.h"
#include "memgate/http/request.h"
#include "memgate/http/responder.h"
#include "memgate/http/response.h"

namespace memgate::http {

using RouteId = uint32_t;
inline constexpr RouteId kUnmatchedRoute = 0;
inline constexpr std::string_view kUnmatchedLabel = "unmatched";

using SyncHandler = std::function<Response(const Request&)>;
using AsyncHandler = std::function<void(const Request&, Responder)>;

// Why a route is not ready yet, for the 503 body.
struct Pending {
  std::string module;             // "kb"
  std::string state;              // "building", "waiting", "skipped(memory)"
  int retry_after_seconds = 5;
  std::string message;            // empty: "<module> is <state>"

  static Pending of(std::string module, std::string state, int retry_after_seconds = 5) {
    Pending p;
    p.module = std::move(module);
    p.state = std::move(state);
    p.retry_after_seconds = retry_after_seconds;
    return p;
  }
};

struct Endpoint {
  enum class Kind : uint8_t { kSync, kAsync, kPending };
  Kind kind = Kind::kSync;
  SyncHandler sync;
  AsyncHandler async;
  // For kPending: the prepared 503 response.
  std::shared_ptr<const Response> pending;
};

struct Route {
  RouteId id = 0;
  std::string pattern;  // as registered, with the trailing '*' for prefixes
  bool prefix = false;
  std::array<std::shared_ptr<const Endpoint>, kMethodCount> endpoints;
  std::string allow;  // "GET, HEAD, POST", for 405
  // When the server sheds load this route answers 503: 0 never (health, admin),
  // 1 first (at the lighter shed level), 2 with every heavy route.
  int shed_priority = 0;
};

// An immutable set of routes. Safe to read from any number of threads.
class RouteTable {
 public:
  struct Match {
    const Route* route = nullptr;        // null: no route (404)
    const Endpoint* endpoint = nullptr;  // null with a route: wrong method (405)
  };
  Match find(Method method, std::string_view path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  friend class Router;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void index();
  std::vector<Route> routes_;
  std::unordered_map<std::string, size_t, Hash, std::equal_to<>> exact_;
  std::vector<size_t> prefixes_;  // longest first
};

class Router {
 public:
  Router();

  // Registers or replaces a handler. F is either Response(const Request&) or
  // void(const Request&, Responder). Returns the pattern's RouteId, or
  // InvalidArgument for a pattern that does not start with '/'.
  template <typename F>
  Result<RouteId> add(Method method, std::string_view pattern, F&& handler) {
    if constexpr (std::is_invocable_r_v<Response, F&, const Request&>) {
      return add_sync(method, pattern, SyncHandler(std::forward<F>(handler)));
    } else {
      static_assert(std::is_invocable_v<F&, const Request&, Responder>,
                    "a handler is Response(const Request&) or void(const Request&, Responder)");
      return add_async(method, pattern, AsyncHandler(std::forward<F>(handler)));
    }
  }
  Result<RouteId> add_sync(Method method, std::string_view pattern, SyncHandler handler);
  Result<RouteId> add_async(Method method, std::string_view pattern, AsyncHandler handler);
  // Registers (or turns an existing endpoint into) a pending one.
  Result<RouteId> add_pending(Method method, std::string_view pattern, Pending pending);

  // Sets a pattern's shed priority (see Route::shed_priority): while the
  // server's shed level (Server::set_shed_level) is at least that priority, its
  // requests get 503 + Retry-After without reaching the handler. Applies to a
  // route registered later under that pattern too.
  void set_shed_priority(std::string_view pattern, int priority);
  // set_shed_priority(pattern, 2) or (pattern, 0).
  void set_sheddable(std::string_view pattern, bool sheddable) { set_shed_priority(pattern, sheddable ? 2 : 0); }

  // The current table; readers keep it as long as they like.
  std::shared_ptr<const RouteTable> snapshot() const;
  // Bumped on every change (acquire load). Compare with the version a snapshot
  // was taken at to know whether to take a new one.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  // The table and the version it belongs to, taken together.
  std::shared_ptr<const RouteTable> snapshot(uint64_t* version) const;

  // The pattern for a RouteId ("unmatched" for 0), or empty if unknown.
  std::string pattern(RouteId id) const;
  // Number of RouteIds handed out, including 0.
  size_t route_id_count() const;

 private:
  Result<RouteId> put(Method method, std::string_view pattern, Endpoint endpoint);

  mutable std::mutex mu_;
  std::shared_ptr<const RouteTable> table_;  // guarded by mu_
  std::vector<std::string> patterns_;        // by RouteId, guarded by mu_
  std::vector<std::pair<std::string, int>> shed_priorities_;  // by pattern, guarded by mu_
  std::atomic<uint64_t> version_{1};
};

}  // namespace memgate::http
