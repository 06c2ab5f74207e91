// The knowledge base's REST routes:
//   GET /api/kb/search?q=...&k=10[&mode=advanced]
//       -> {"query","mode","k","count","hits":[{"id","title","path","heading","score","snippet"}]}
//   GET /api/kb/docs/{id}  -> {"id","title","path","chunks","text"}   (404 when unknown)
//   GET /api/kb/info       -> what the current index was built from
// User text is quoted word by word (no FTS5 operator survives) unless
// mode=advanced; a query SQLite rejects is a 400 with its reason, never a 500.
// Queries run on the worker pool, so IO threads never wait on SQLite.
//
// Thread-safe; the index is fetched per request through `current`, so a swap
// to a refreshed index never drops a query.
#pragma once

#include <boost/json/array.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "memgate/base/status.h"
#include "memgate/http/router.h"
#include "memgate/kb/index.h"

namespace memgate {
class WorkerPool;
}

namespace memgate::kb {

// The index serving now; null before the first load.
using CurrentIndex = std::function<std::shared_ptr<const Index>()>;

// Decodes %XX escapes (and '+' as a space when plus_is_space). kInvalidArgument
// on a bad escape.
Result<std::string> percent_decode(std::string_view text, bool plus_is_space);

// The handlers, callable directly (tests) or through the routes.
http::Response handle_search(const Index& index, const http::Request& request);
http::Response handle_document(const Index& index, const http::Request& request);
http::Response handle_info(const Index& index);

// Installs the three routes on `router`; handlers run on `workers`.
Status install_rest_routes(http::Router& router, CurrentIndex current, WorkerPool& workers);

// Hits as JSON objects, shared by REST and the MCP tool.
std::string hits_json(std::string_view query, std::string_view mode, int k, const std::vector<SearchHit>& hits);
// The hits as a JSON array of {id, title, path, heading, score, snippet}: the one
// shape REST and MCP both answer with.
boost::json::array hits_array(const std::vector<SearchHit>& hits);

}  // namespace memgate::kb
