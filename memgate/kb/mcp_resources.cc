// The kb's MCP resources (see mcp_resources.h for the URIs and the listing's
// positions). Each callback takes the serving index once and answers from it
// alone, so a swap in the middle of a call changes the next call only.
#include "memgate/kb/mcp_resources.h"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "memgate/kb/index.h"

namespace memgate::kb {
namespace {

constexpr std::string_view kDocPrefix = "kb://doc/";
constexpr std::string_view kSearchUri = "kb://search";
constexpr size_t kMaxId = 64;

bool is_id(std::string_view s) {
  if (s.empty() || s.size() > kMaxId) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string mime_type(std::string_view kind) { return kind == "markdown" ? "text/markdown" : "text/plain"; }

Result<std::shared_ptr<const Index>> loaded(const CurrentIndex& current) {
  auto index = current();
  if (!index) return Unavailable("the knowledge base is not loaded");
  return index;
}

Result<std::vector<mcp::ResourceText>> read_document(const Index& index, std::string_view uri, std::string_view id) {
  if (!is_id(id)) return NotFound("no such document");
  auto doc = index.document(id);
  if (!doc.ok()) return doc.status();
  auto entry = index.list_documents(id, true, 1);
  if (!entry.ok()) return entry.status();
  std::string kind = !entry->empty() && (*entry)[0].id == id ? (*entry)[0].kind : "text";
  return std::vector<mcp::ResourceText>{{std::string(uri), mime_type(kind), std::move(doc->text)}};
}

// kb://search?q=...&k=...: the hits as the search tool's JSON text.
Result<std::vector<mcp::ResourceText>> read_search(const Index& index, std::string_view uri) {
  auto parsed = boost::urls::parse_uri(uri);
  if (!parsed) return InvalidArgument("a search URI is kb://search?q=WORDS&k=N");
  std::string query;
  bool has_query = false;
  int k = 5;
  for (auto param : parsed->params()) {
    if (param.key == "q") {
      query = param.value;
      has_query = true;
    } else if (param.key == "k") {
      const std::string& v = param.value;
      if (v.empty() || v.size() > 2 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(v) < 1 || std::stoi(v) > 50)
        return InvalidArgument("k must be a whole number from 1 to 50");
      k = std::stoi(v);
    }
  }
  if (!has_query) return InvalidArgument("a search URI needs q: kb://search?q=WORDS");
  if (Status st = check_query(query, false); !st.ok()) return st;
  auto hits = index.search(query, {k, false});
  if (!hits.ok()) return hits.status();
  return std::vector<mcp::ResourceText>{{std::string(uri), "application/json", query_hits_json(query, *hits)}};
}

}  // namespace

void add_kb_resources(mcp::Registry& registry, CurrentIndex current) {
  mcp::ResourceSource docs;
  docs.list = [current](std::string_view after, size_t limit) -> Result<mcp::ResourcePage> {
    if (!after.empty() && !is_id(after)) return InvalidArgument("not a position of the kb's listing");
    auto index = loaded(current);
    if (!index.ok()) return index.status();
    // One more than the page, to know whether another page follows.
    auto entries = (*index)->list_documents(after, false, limit + 1);
    if (!entries.ok()) return entries.status();
    mcp::ResourcePage page;
    for (DocumentEntry& e : *entries) {
      if (page.items.size() == limit) {
        page.next = page.items.back().uri.substr(kDocPrefix.size());
        break;
      }
      page.items.push_back({std::string(kDocPrefix) + e.id, e.title, "", std::move(e.description), mime_type(e.kind)});
    }
    return page;
  };
  docs.read = [current](std::string_view uri) -> Result<std::vector<mcp::ResourceText>> {
    bool doc = uri.rfind(kDocPrefix, 0) == 0;
    bool search = uri.rfind(kSearchUri, 0) == 0 && (uri.size() == kSearchUri.size() || uri[kSearchUri.size()] == '?');
    if (!doc && !search) return NotFound("not a kb URI");
    auto index = loaded(current);
    if (!index.ok()) return index.status();
    if (doc) return read_document(**index, uri, uri.substr(kDocPrefix.size()));
    return read_search(**index, uri);
  };
  registry.add_resources(std::move(docs));

  registry.add_template({std::string(kDocTemplate), "kb-document", "A knowledge-base document",
                         "The whole text of one document, by the id a search hit or resources/list gives.", ""});
  registry.add_template({std::string(kSearchTemplate), "kb-search", "Search the knowledge base",
                         "The best-matching documents for q (words), at most k (1..50, default 5), as JSON with a "
                         "highlighted snippet each.",
                         "application/json"});

  mcp::Completer ids;
  ids.ref = mcp::Completer::Ref::kResource;
  ids.target = std::string(kDocTemplate);
  ids.argument = "id";
  ids.complete = [current](std::string_view value, size_t limit, bool* more) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    if (!value.empty() && !is_id(value)) return out;  // no id starts so
    auto index = loaded(current);
    if (!index.ok()) return index.status();
    auto entries = (*index)->list_documents(value, true, limit + 1);
    if (!entries.ok()) return entries.status();
    for (DocumentEntry& e : *entries) {
      if (e.id.rfind(value, 0) != 0) break;  // id order: the prefix's ids come together
      if (out.size() == limit) {
        *more = true;
        break;
      }
      out.push_back(std::move(e.id));
    }
    return out;
  };
  registry.add_completer(std::move(ids));
}

}  // namespace memgate::kb
