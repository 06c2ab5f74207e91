// The knowledge base's REST routes:
//   GET /api/kb/search?q=...&k=10[&mode=advanced]
//       -> {"query","mode","k","count","hits":[{"id","title","path","heading","score","snippet"}]}
//   GET /api/kb/docs/{id}  -> {"id","title","path","chunks","text"}   (404 when unknown)
//   GET /api/kb/info       -> what the current index was built from
// User text is quoted word by word (no FTS5 operator survives) unless
// mode=advanced; a query SQLite rejects is a 400 with its reason, never a 500.
// Queries run on the worker pool, so IO threads never wait on SQLite; a search
// whose parameters are wrong (no q, bad k or mode, no word, over 1000 bytes) is
// answered 400 on the IO thread, before the hop.
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

// A search request as the route reads it: q percent-decoded, k 1..50
// (default 10), mode simple or advanced.
struct SearchRequest {
  std::string query;
  int k = 10;
  bool advanced = false;
};
// Reads and checks q, k and mode (and check_query) without touching the
// index, so the route answers a bad request on the IO thread. kInvalidArgument
// with the reason the 400 carries.
Result<SearchRequest> parse_search(const http::Request& request);
// The search's answer: 200 with hits_json, or the index's error as a status.
http::Response run_search(const Index& index, const SearchRequest& search);

// The handlers, callable directly (tests) or through the routes.
http::Response handle_search(const Index& index, const http::Request& request);
http::Response handle_document(const Index& index, const http::Request& request);
http::Response handle_info(const Index& index);

// Installs the three routes on `router`; handlers run on `workers`.
Status install_rest_routes(http::Router& router, CurrentIndex current, WorkerPool& workers);

// The REST answer: {"query","mode","k","count","hits"}, written without a JSON
// tree (an invalid UTF-8 query is echoed with U+FFFD in place of bad bytes).
std::string hits_json(std::string_view query, std::string_view mode, int k, const std::vector<SearchHit>& hits);
// The MCP tool's text: {"query","hits"}, the same document its structured
// content holds, written the same way.
std::string query_hits_json(std::string_view query, const std::vector<SearchHit>& hits);
// The hits as a JSON array of {id, title, path, heading, score, snippet}: the one
// shape REST and MCP both answer with.
boost::json::array hits_array(const std::vector<SearchHit>& hits);

}  // namespace memgate::kb
