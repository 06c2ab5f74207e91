#include "memgate/kb/routes.h"

#include <boost/json.hpp>
#include <boost/url/pct_string_view.hpp>
#include <charconv>
#include <chrono>
#include <cmath>

#include "memgate/base/json_escape.h"
#include "memgate/base/units.h"
#include "memgate/base/worker_pool.h"
#include "memgate/kb/corpus.h"

namespace memgate::kb {
namespace {

namespace json = boost::json;

constexpr std::string_view kDocsPrefix = "/api/kb/docs/";

http::Response unavailable() {
  return http::Response::error(503, "unavailable", "the knowledge base is not loaded");
}

// The worker pool's request queue is full (or the server is stopping).
http::Response busy() {
  http::Response r = http::Response::error(503, "unavailable", "the server is busy; retry shortly");
  r.header("Retry-After", "1");
  return r;
}

// `s` as a JSON string. Strings from the index are valid UTF-8 already; the
// query is the client's bytes, so it is made valid first (a JSON parser
// refuses invalid UTF-8).
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  append_json_escaped(out, s);
  out += '"';
}

void append_json_number(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

Result<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  auto pct = boost::urls::make_pct_string_view(text);
  if (!pct) return InvalidArgument("a '%' escape is malformed (" + pct.error().message() + ")");
  boost::urls::encoding_opts opt;
  opt.space_as_plus = plus_is_space;
  return pct->decode(opt);
}

json::array hits_array(const std::vector<SearchHit>& hits) {
  json::array list;
  for (const SearchHit& h : hits)
    list.push_back(json::object{{"id", h.doc_id},
                                {"title", h.title},
                                {"path", h.path},
                                {"heading", h.heading},
                                {"score", h.score},
                                {"snippet", h.snippet}});
  return list;
}

namespace {

// The hits as a JSON array, appended to `out`: the one shape REST and MCP both
// answer with (hits_array's), written straight into the string.
void append_hits(std::string& out, const std::vector<SearchHit>& hits) {
  out += '[';
  for (size_t i = 0; i < hits.size(); ++i) {
    const SearchHit& h = hits[i];
    if (i) out += ',';
    out += "{\"id\":";
    append_json_string(out, h.doc_id);
    out += ",\"title\":";
    append_json_string(out, h.title);
    out += ",\"path\":";
    append_json_string(out, h.path);
    out += ",\"heading\":";
    append_json_string(out, h.heading);
    out += ",\"score\":";
    append_json_number(out, h.score);
    out += ",\"snippet\":";
    append_json_string(out, h.snippet);
    out += '}';
  }
  out += ']';
}

size_t hits_size(const std::vector<SearchHit>& hits) {
  size_t size = 2;
  for (const SearchHit& h : hits)
    size += 96 + h.doc_id.size() + h.title.size() + h.path.size() + h.heading.size() + h.snippet.size() * 9 / 8;
  return size;
}

}  // namespace

// Written straight into one string (no JSON tree): the document
// json::serialize gave for the same object, keys in the same order.
std::string hits_json(std::string_view query, std::string_view mode, int k, const std::vector<SearchHit>& hits) {
  std::string out;
  out.reserve(64 + query.size() + hits_size(hits));
  out += "{\"query\":";
  append_json_string(out, to_valid_utf8(query, true));
  out += ",\"mode\":";
  append_json_string(out, mode);
  out += ",\"k\":";
  out += std::to_string(k);
  out += ",\"count\":";
  out += std::to_string(hits.size());
  out += ",\"hits\":";
  append_hits(out, hits);
  out += '}';
  return out;
}

std::string query_hits_json(std::string_view query, const std::vector<SearchHit>& hits) {
  std::string out;
  out.reserve(32 + query.size() + hits_size(hits));
  out += "{\"query\":";
  append_json_string(out, to_valid_utf8(query, true));
  out += ",\"hits\":";
  append_hits(out, hits);
  out += '}';
  return out;
}

Result<SearchRequest> parse_search(const http::Request& request) {
  std::string_view raw_q = request.query_param("q");
  if (raw_q.empty()) return InvalidArgument("q is required: /api/kb/search?q=words");
  auto q = percent_decode(raw_q, true);
  if (!q.ok()) return InvalidArgument("q: " + q.status().message());
  SearchRequest out;
  out.query = std::move(*q);
  if (std::string_view raw_k = request.query_param("k"); !raw_k.empty()) {
    auto v = parse_int(raw_k, 1, 50);
    if (!v.ok()) return InvalidArgument("k must be a whole number from 1 to 50");
    out.k = static_cast<int>(*v);
  }
  std::string_view mode = request.query_param("mode");
  if (!mode.empty() && mode != "simple" && mode != "advanced")
    return InvalidArgument("mode must be simple or advanced");
  out.advanced = mode == "advanced";
  if (Status st = check_query(out.query, out.advanced); !st.ok()) return st;
  return out;
}

http::Response run_search(const Index& index, const SearchRequest& s) {
  auto hits = index.search(s.query, {s.k, s.advanced});
  if (!hits.ok()) return http::Response::from_status(hits.status());
  return http::Response::json(200, hits_json(s.query, s.advanced ? "advanced" : "simple", s.k, *hits));
}

http::Response handle_search(const Index& index, const http::Request& request) {
  auto s = parse_search(request);
  if (!s.ok()) return http::Response::error(400, "bad_request", std::string(s.status().message()));
  return run_search(index, *s);
}

http::Response handle_document(const Index& index, const http::Request& request) {
  std::string_view path = request.path();
  std::string_view raw = path.size() > kDocsPrefix.size() ? path.substr(kDocsPrefix.size()) : std::string_view();
  if (raw.empty()) return http::Response::error(404, "not_found", "a document id is required: /api/kb/docs/{id}");
  auto id = percent_decode(raw, false);
  if (!id.ok()) return http::Response::error(400, "bad_request", "id: " + id.status().message());
  auto doc = index.document(*id);
  if (!doc.ok()) return http::Response::from_status(doc.status());
  json::object out{{"id", doc->id},
                   {"title", doc->title},
                   {"path", doc->path},
                   {"chunks", doc->chunks},
                   {"text", doc->text}};
  return http::Response::json(200, json::serialize(out));
}

http::Response handle_info(const Index& index) {
  const IndexInfo& i = index.info();
  json::object out{{"fingerprint", i.fingerprint},     {"built_at", i.built_at},
                   {"documents", i.documents},         {"chunks", i.chunks},
                   {"chunk_size", i.chunk_size},       {"database_bytes", i.database_bytes},
                   {"artifact_bytes", i.artifact_bytes}};
  return http::Response::json(200, json::serialize(out));
}

Status install_rest_routes(http::Router& router, CurrentIndex current, WorkerPool& workers) {
  // Each route copies what it needs from the request, then answers on a worker.
  auto on_worker = [current, &workers](auto handler) {
    return [current, &workers, handler](const http::Request& req, http::Responder r) {
      auto target = std::make_shared<std::string>(req.target());
      auto responder = std::make_shared<http::Responder>(std::move(r));
      // Request work: refused when the pool's queue is full, skipped if the
      // client has gone by the time a thread is free, dropped on shutdown.
      bool queued = workers.try_post(
          [current, handler, target, responder] {
            std::shared_ptr<const Index> index = current();
            if (!index) {
              std::move(*responder).send(unavailable());
              return;
            }
            http::RequestBuilder b;
            b.method("GET").target(*target);
            std::move(*responder).send(handler(*index, b.get()));
          },
          [responder] { return responder->connected(); },
          [responder] { std::move(*responder).send(busy()); });
      if (!queued) std::move(*responder).send(busy());
    };
  };
  // A search is checked on the IO thread, so a bad one is answered without
  // waiting for a worker; only the parsed query crosses over.
  auto search = [current, &workers](const http::Request& req, http::Responder r) {
    auto parsed = parse_search(req);
    if (!parsed.ok()) {
      std::move(r).send(http::Response::error(400, "bad_request", std::string(parsed.status().message())));
      return;
    }
    if (!current()) {
      std::move(r).send(unavailable());
      return;
    }
    auto s = std::make_shared<SearchRequest>(std::move(*parsed));
    auto responder = std::make_shared<http::Responder>(std::move(r));
    bool queued = workers.try_post(
        [current, s, responder] {
          std::shared_ptr<const Index> index = current();
          std::move(*responder).send(index ? run_search(*index, *s) : unavailable());
        },
        [responder] { return responder->connected(); },
        [responder] { std::move(*responder).send(busy()); });
    if (!queued) std::move(*responder).send(busy());
  };
  auto a = router.add(http::Method::kGet, "/api/kb/search", search);
  if (!a.ok()) return a.status();
  auto b = router.add(http::Method::kGet, "/api/kb/docs/*", on_worker(handle_document));
  if (!b.ok()) return b.status();
  auto c = router.add(http::Method::kGet, "/api/kb/info",
                      on_worker([](const Index& index, const http::Request&) { return handle_info(index); }));
  if (!c.ok()) return c.status();
  return Status::Ok();
}

}  // namespace memgate::kb
