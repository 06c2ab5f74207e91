// Registry: what an MCP endpoint offers — tools, resources, resource templates,
// prompts and argument completions — as modules contribute them.
//
// The runtime makes one Registry and hands it to every module that offers
// something over MCP (the kb its tools, documents and templates; the coach its
// prompt); the module that serves /mcp puts an McpServer over it. A module
// knows the Registry, never the other modules nor the protocol's framing:
// McpServer turns what is here into JSON-RPC results for both protocol eras.
//
// Thread-safe: add_* may be called while the endpoint serves (a module that
// loads later adds its prompt then, and clients see it from their next list).
// Readers take a snapshot (catalog()), a shared_ptr to an immutable Catalog,
// so a request never holds a lock while a module's callback runs. Callbacks
// must themselves be thread-safe: they run on worker threads, several at once.
#pragma once

#include <boost/json/object.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/base/status.h"

namespace memgate::mcp {

// What a tool returns: text for people (content) and, when the tool declares an
// output schema, the same as structured JSON.
struct ToolResult {
  std::string text;
  std::optional<boost::json::object> structured;
  bool is_error = false;

  static ToolResult error(std::string message) { return {std::move(message), std::nullopt, true}; }
};

struct Tool {
  std::string name;
  std::string title;
  std::string description;
  boost::json::object input_schema;
  std::optional<boost::json::object> output_schema;
  bool read_only = true;
  // Runs the tool. Arguments were checked to be an object; the tool checks their
  // fields and answers invalid ones with ToolResult::error. Must be thread-safe.
  std::function<ToolResult(const boost::json::object& arguments)> run;
};

// One entry of resources/list.
struct Resource {
  std::string uri;          // "kb://doc/0123456789abcdef"
  std::string name;         // for people: the document's title
  std::string title;        // optional display name ("" omits it)
  std::string description;  // optional ("" omits it)
  std::string mime_type;    // "text/markdown", "text/plain"
};

// One item of a resources/read result (text only: nothing here serves blobs).
struct ResourceText {
  std::string uri;
  std::string mime_type;
  std::string text;
};

// A page of one source's resources. `next` is the source's own position after
// the last item ("" when the source has no more); McpServer wraps it in the
// opaque cursor clients see.
struct ResourcePage {
  std::vector<Resource> items;
  std::string next;
};

// A module's resources.
struct ResourceSource {
  // The resources after position `after` ("" from the start; otherwise a `next`
  // this source returned, which comes back from a client and is hostile input:
  // kInvalidArgument when it is not one of ours), at most `limit` (>= 1). For
  // cursors to always advance, a non-empty `next` must be a position strictly
  // after every item returned so far. Other errors (kUnavailable: nothing
  // loaded) become -32603.
  std::function<Result<ResourcePage>(std::string_view after, size_t limit)> list;
  // The contents of `uri`: kNotFound when the source has no such resource (or
  // the URI is not of its scheme), kInvalidArgument for a URI of its scheme it
  // cannot parse.
  std::function<Result<std::vector<ResourceText>>(std::string_view uri)> read;
};

// One entry of resources/templates/list (RFC 6570 `uri_template`). Reads of URIs
// it expands to go to the sources like any other read.
struct ResourceTemplate {
  std::string uri_template;  // "kb://doc/{id}"
  std::string name;
  std::string title;
  std::string description;
  std::string mime_type;
};

struct PromptArgument {
  std::string name;
  std::string description;
  bool required = false;
};

struct PromptMessage {
  std::string role;  // "user" or "assistant"
  std::string text;
};

struct PromptText {
  std::string description;
  std::vector<PromptMessage> messages;
};

using PromptArguments = std::map<std::string, std::string, std::less<>>;

struct Prompt {
  std::string name;
  std::string title;
  std::string description;
  std::vector<PromptArgument> arguments;
  // Fills the prompt. Required arguments are present (McpServer checks), each a
  // string of at most kMaxPromptArgument bytes; the prompt checks their content:
  // kInvalidArgument becomes -32602, other errors -32603.
  std::function<Result<PromptText>(const PromptArguments& arguments)> get;
};

// Completion values for one argument of a resource template or a prompt.
struct Completer {
  enum class Ref { kResource, kPrompt };
  Ref ref = Ref::kResource;
  std::string target;    // the template's uri_template, or the prompt's name
  std::string argument;  // "id"
  // The values that complete `value` (at most kMaxCompletionValues are sent),
  // and whether there are more than it returned.
  std::function<Result<std::vector<std::string>>(std::string_view value, size_t limit, bool* more)> complete;
};

inline constexpr size_t kMaxPromptArgument = 4000;
inline constexpr size_t kMaxCompletionValues = 100;  // the spec's cap per response

// What the registry holds at one moment; immutable once published.
struct Catalog {
  std::vector<Tool> tools;
  std::vector<ResourceSource> sources;
  std::vector<ResourceTemplate> templates;
  std::vector<Prompt> prompts;
  std::vector<Completer> completers;
};

class Registry {
 public:
  Registry() : catalog_(std::make_shared<const Catalog>()) {}

  void add_tool(Tool tool) {
    update([&](Catalog& c) { c.tools.push_back(std::move(tool)); });
  }
  void add_resources(ResourceSource source) {
    update([&](Catalog& c) { c.sources.push_back(std::move(source)); });
  }
  void add_template(ResourceTemplate t) {
    update([&](Catalog& c) { c.templates.push_back(std::move(t)); });
  }
  // Adds a prompt, or replaces the one of the same name (a module that loads
  // again registers again).
  void add_prompt(Prompt prompt) {
    update([&](Catalog& c) {
      for (Prompt& p : c.prompts)
        if (p.name == prompt.name) {
          p = std::move(prompt);
          return;
        }
      c.prompts.push_back(std::move(prompt));
    });
  }
  void add_completer(Completer completer) {
    update([&](Catalog& c) { c.completers.push_back(std::move(completer)); });
  }

  // The current contents; cheap (one shared_ptr copy under a mutex).
  std::shared_ptr<const Catalog> catalog() const {
    std::lock_guard lock(mu_);
    return catalog_;
  }

 private:
  template <typename F>
  void update(F&& change) {
    std::lock_guard lock(mu_);
    auto next = std::make_shared<Catalog>(*catalog_);
    change(*next);
    catalog_ = std::move(next);
  }

  mutable std::mutex mu_;
  std::shared_ptr<const Catalog> catalog_;  // guarded by mu_
};

}  // namespace memgate::mcp
