// The knowledge base over MCP as resources: every document is a resource
// `kb://doc/{id}` (name: its title; mimeType text/markdown for Markdown,
// text/plain for text and HTML, whose text is what was extracted; description:
// its first heading or line), listed in id order; two templates, `kb://doc/{id}`
// and `kb://search{?q,k}` (reading one returns the search's hits as JSON, the
// search tool's text); and completion of the doc template's `id` from id
// prefixes.
//
// A listing's position is the last id it returned, so a page is found through
// the id index alone, a position stays valid across index swaps (it names a
// place in id order, not a row), and no document appears twice. Positions and
// URIs come from clients: an id is at most 64 lowercase hex digits, a search as
// Index::search takes it (check_query), k 1..50.
//
// Thread-safe: what it registers reads the index `current` gives per call.
#pragma once

#include "memgate/kb/routes.h"
#include "memgate/mcp/registry.h"

namespace memgate::kb {

inline constexpr std::string_view kDocTemplate = "kb://doc/{id}";
inline constexpr std::string_view kSearchTemplate = "kb://search{?q,k}";

// Adds the documents, both templates and the id completion to `registry`.
void add_kb_resources(mcp::Registry& registry, CurrentIndex current);

}  // namespace memgate::kb
