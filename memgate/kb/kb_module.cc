// The kb module.
//
// The serving index is one shared_ptr behind a mutex: handlers copy it per
// request, load() and the refresh path replace it. An index in use by a query
// stays alive until that query lets go, so a swap never fails a request; the old
// image is freed by whichever request finishes last.
//
// The artifact is addressed by its inputs: the corpus fingerprint (every file's
// path, size and mtime), the chunk size and the index format, so an instance
// only ever serves an index of its own corpus. The refresh job and the watcher
// do not publish or read anything themselves: they ask the runtime's artifact
// channel for the artifact of the inputs now, which loads a peer's or builds it
// once for the fleet, and hands it to load(), which swaps.
#include "memgate/kb/kb_module.h"

#include "memgate/http/origin.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "memgate/base/worker_pool.h"
#include "memgate/coord/coordinator.h"
#include "memgate/kb/build_budget.h"
#include "memgate/kb/corpus.h"
#include "memgate/kb/index.h"
#include "memgate/kb/mcp_resources.h"
#include "memgate/kb/routes.h"
#include "memgate/mcp/bearer_metrics.h"
#include "memgate/mcp/bearer_settings.h"
#include "memgate/mcp/http_endpoint.h"
#include "memgate/mcp/server.h"
#include "memgate/metrics/metrics.h"

namespace memgate::kb {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

// The tools /mcp offers (MCP_AUTH_TOOL_SCOPES may name them).
constexpr const char* kSearchTool = "search_knowledge_base";
constexpr const char* kGetTool = "get_document";

struct Settings {
  // Told of every index the module starts serving (null when it stops): how other
  // modules, the coach's retrieval, follow swaps without reaching into this one.
  std::function<void(std::shared_ptr<const Index>)> on_index;
  bool enabled = false;
  std::string corpus_dir;
  std::string artifact_file;
  size_t chunk_size = 1200;
  uint64_t max_file_bytes = kDefaultMaxFileBytes;
  int pool_size = 4;
  milliseconds refresh_period{300'000};
  milliseconds watch_interval{10'000};
  SizeSpec heap_gate = SizeSpec::Bytes(1536ull << 20);
  mcp::ServerOptions mcp;
  // MCP_AUTH_*: read here, turned into mcp.bearer by make_kb_module.
  mcp::BearerSettings auth;
  // What /mcp offers: the runtime's registry, shared with the modules that add
  // to it (the coach's prompt), or the module's own.
  std::shared_ptr<mcp::Registry> mcp_registry;
};

std::string mib(uint64_t bytes) { return format_bytes(bytes); }


Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Unavailable("cannot open '" + path + "'");
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

json::object search_output_schema() {
  return json::parse(R"({
    "type": "object",
    "properties": {
      "query": {"type": "string"},
      "hits": {
        "type": "array",
        "items": {
          "type": "object",
          "properties": {
            "id": {"type": "string", "description": "document id, for get_document"},
            "title": {"type": "string"},
            "path": {"type": "string"},
            "heading": {"type": "string"},
            "score": {"type": "number", "description": "bm25, higher is better"},
            "snippet": {"type": "string", "description": "matches marked with <mark></mark>"}
          },
          "required": ["id", "title", "path", "heading", "score", "snippet"]
        }
      }
    },
    "required": ["query", "hits"]
  })").as_object();
}

class KbModule final : public startup::Module, public std::enable_shared_from_this<KbModule> {
 public:
  explicit KbModule(Settings s) : s_(std::move(s)) {}
  ~KbModule() override { stop(); }

  std::string name() const override { return "kb"; }
  int stage() const override { return 1; }
  startup::FlagSpec flag() const override { return {"ENABLE_KB_SERVICE", false}; }
  std::optional<SizeSpec> memory_gate() const override { return s_.heap_gate; }
  std::optional<startup::FleetSpec> fleet() const override {
    const coord::FleetTaskSpec& t = coord::kMcpKbInit;
    return startup::FleetSpec{std::string(t.lock_key), t.lock_ttl, std::string(t.done_key), t.done_ttl,
                              version()};
  }
  std::vector<startup::RouteDecl> routes() const override {
    std::vector<startup::RouteDecl> r = {{http::Method::kGet, "/api/kb/search"}, {http::Method::kGet, "/api/kb/docs/*"},
                                         {http::Method::kGet, "/api/kb/info"},   {http::Method::kPost, "/mcp"},
                                         {http::Method::kGet, "/mcp"},           {http::Method::kDelete, "/mcp"}};
    if (s_.mcp.bearer) {
      r.push_back({http::Method::kGet, std::string(mcp::kResourceMetadataPath)});
      r.push_back({http::Method::kGet, std::string(mcp::kResourceMetadataPath) + "/mcp"});
    }
    return r;
  }
  std::vector<jobs::JobSpec> jobs() override {
    if (!s_.enabled || s_.corpus_dir.empty()) return {};
    std::weak_ptr<KbModule> weak = weak_from_this();
    return {{"kb-refresh", s_.refresh_period, [weak](std::stop_token stop) -> Status {
               auto self = weak.lock();
               return self ? self->refresh(stop) : Status::Ok();
             }}};
  }
  std::string memory_gate_setting() const override { return "KB_HEAP_GATE"; }

  // What the index is built from. For a corpus: every file's path, size and
  // mtime (corpus_fingerprint), the chunk size and the index format; for
  // KB_ARTIFACT_FILE: the file's size and mtime. Scanning stats every file but
  // reads none.
  std::string input_fingerprint() const override {
    std::string out = version();
    if (!s_.artifact_file.empty()) {
      struct stat st {};
      if (::stat(s_.artifact_file.c_str(), &st) == 0)
        out += " file " + std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
               std::to_string(st.st_mtim.tv_nsec);
    }
    if (!s_.corpus_dir.empty()) {
      auto files = scan_corpus(s_.corpus_dir, s_.max_file_bytes);
      out += " corpus " + (files.ok() ? corpus_fingerprint(*files) : "unreadable: " + files.status().message());
    }
    return out;
  }

  // From the corpus's file sizes by kind (build_budget.cc has the measured
  // ratios); for KB_ARTIFACT_FILE, from the image size its header declares.
  startup::PeakEstimate estimate_peaks() const override {
    if (!s_.corpus_dir.empty()) {
      auto files = scan_corpus(s_.corpus_dir, s_.max_file_bytes);
      if (!files.ok()) return {};
      PeakEstimate e = kb::estimate_peaks(*files, s_.chunk_size);
      // The ratios are medians of a few corpora; a corpus of another shape
      // measured up to 12% above them (a generated Markdown one), so the
      // prediction carries a quarter on top until the fleet has measured it.
      auto padded = [](uint64_t b) { return b + b / 4; };
      return {padded(e.build_bytes), padded(e.load_bytes), e.disk_build_bytes};
    }
    if (!s_.artifact_file.empty()) {
      std::ifstream in(s_.artifact_file, std::ios::binary);
      char head[64] = {};
      in.read(head, sizeof head);
      auto image = artifact_image_size(std::string_view(head, static_cast<size_t>(in.gcount())));
      if (image.ok()) return {load_peak_for_image(*image) * 2, load_peak_for_image(*image), 0};
    }
    return {};
  }

  Result<ChunkedBytes> build(startup::ModuleContext& ctx) override {
    if (!s_.artifact_file.empty()) {
      auto bytes = read_file(s_.artifact_file);
      Status why = bytes.status();
      if (bytes.ok()) {
        auto probe = Index::open(*bytes, 1);
        if (probe.ok()) {
          spdlog::info("kb: using KB_ARTIFACT_FILE {} ({}, {} documents)", s_.artifact_file, mib(bytes->size()),
                       (*probe)->info().documents);
          return ChunkedBytes::copy_of(*bytes);
        }
        why = probe.status();
      }
      if (s_.corpus_dir.empty())
        return InvalidArgument("KB_ARTIFACT_FILE='" + s_.artifact_file + "' is not usable: " + why.message());
      spdlog::warn("kb: KB_ARTIFACT_FILE {} is not usable ({}); indexing KB_CORPUS_DIR instead", s_.artifact_file,
                   why.message());
    }
    return index_corpus(&ctx.workers, ctx.stop, ctx.workers.size(), ctx.memory_budget, ctx.progress);
  }

  Status load(ByteSource& artifact, startup::ModuleContext& ctx) override {
    auto index = open_index(artifact);
    if (!index.ok()) return index.status();
    const IndexInfo& info = (*index)->info();
    spdlog::info("kb: ready: {} documents, {} chunks, database {}, corpus {}", info.documents, info.chunks,
                 mib(info.database_bytes), info.fingerprint);
    swap(*index);
    std::lock_guard lock(wiring_mu_);
    if (installed_) return Status::Ok();
    artifacts_ = ctx.artifacts;
    std::weak_ptr<KbModule> weak = weak_from_this();
    CurrentIndex current = [weak]() -> std::shared_ptr<const Index> {
      auto self = weak.lock();
      return self ? self->current() : nullptr;
    };
    if (Status st = install_rest_routes(ctx.router, current, ctx.workers); !st.ok()) return st;
    auto server = std::make_shared<mcp::McpServer>(s_.mcp, s_.mcp_registry);
    add_tools(*server, current);
    add_kb_resources(server->registry(), current);
    if (Status st = mcp::install_endpoint(ctx.router, "/mcp", server, ctx.workers); !st.ok()) return st;
    if (s_.mcp.bearer) {
      if (Status st = mcp::install_resource_metadata(ctx.router, "/mcp", s_.mcp.bearer); !st.ok()) return st;
      if (ctx.metrics) ctx.metrics->own_collectable(std::make_shared<mcp::BearerCollector>(s_.mcp.bearer));
    }
    installed_ = true;
    if (artifacts_ && !s_.corpus_dir.empty() && s_.watch_interval.count() > 0)
      watcher_ = std::jthread([this](std::stop_token stop) { watch(stop); });
    return Status::Ok();
  }

  void stop() override {
    if (watcher_.joinable()) {
      watcher_.request_stop();
      watch_cv_.notify_all();
      watcher_.join();
    }
    {
      std::lock_guard lock(mu_);
      index_.reset();
    }
    if (s_.on_index) s_.on_index(nullptr);
  }

 private:
  std::string version() const { return "kb1-c" + std::to_string(s_.chunk_size); }

  std::shared_ptr<const Index> current() const {
    std::lock_guard lock(mu_);
    return index_;
  }
  void swap(std::shared_ptr<Index> next) {
    std::shared_ptr<const Index> old;
    std::shared_ptr<const Index> now = next;
    {
      std::lock_guard lock(mu_);
      old = std::move(index_);
      index_ = std::move(next);
    }
    if (s_.on_index) s_.on_index(now);
    // `old` is released here, outside the lock (queries may still hold it).
  }

  Result<std::shared_ptr<Index>> open_index(ByteSource& artifact) {
    OpenOptions o;
    o.pool_size = s_.pool_size;
    return Index::open(artifact, o);
  }

  // `report` (may be null) hears the percentage, for the loader's status line.
  Result<ChunkedBytes> index_corpus(WorkerPool* workers, std::stop_token stop, size_t helpers, uint64_t budget,
                                    const std::function<void(int)>& report) {
    BuildOptions o;
    o.chunk_size = s_.chunk_size;
    o.max_file_bytes = s_.max_file_bytes;
    o.workers = workers;
    o.max_helpers = helpers;
    o.stop = stop;
    o.progress = [&report](const BuildProgress& p) {
      if (report) report(p.percent());
      if (p.finished) return;
      spdlog::info("kb: indexing {}% ({}/{} files, {} of {}), ETA {}s", p.percent(), p.files_done, p.files_total,
                   format_bytes(p.bytes_done), format_bytes(p.bytes_total), (p.eta().count() + 999) / 1000);
    };
    o.memory_budget = budget;
    BuildStats stats;
    auto artifact = build_artifact_chunked(s_.corpus_dir, o, &stats);
    if (!artifact.ok()) return artifact.status();
    double seconds = static_cast<double>((stats.index_time + stats.compress_time).count()) / 1000.0;
    spdlog::info(
        "kb: indexed {} documents ({} chunks) from {} in {:.2f}s ({:.1f} MB/s{}); database {}, artifact {} (zstd)",
        stats.documents, stats.chunks, s_.corpus_dir, seconds,
        seconds > 0 ? static_cast<double>(stats.source_bytes) / 1e6 / seconds : 0.0,
        stats.on_disk ? ", on disk within a budget of " + mib(budget) : std::string(), mib(stats.database_bytes),
        mib(stats.artifact_bytes));
    return artifact;
  }

  void add_tools(mcp::McpServer& server, const CurrentIndex& current) {
    mcp::Tool search;
    search.name = kSearchTool;
    search.title = "Search the knowledge base";
    search.description =
        "Full-text search over the knowledge base (bm25 ranking, titles weighted above body text). Returns the best "
        "matching documents with a highlighted snippet each; pass a hit's id to get_document for the whole text.";
    search.input_schema = json::parse(R"({
      "type": "object",
      "properties": {
        "query": {"type": "string", "description": "words to search for"},
        "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5, "description": "how many hits"}
      },
      "required": ["query"]
    })").as_object();
    search.output_schema = search_output_schema();
    search.run = [current](const json::object& args) -> mcp::ToolResult {
      const json::value* q = args.if_contains("query");
      if (!q || !q->is_string()) return mcp::ToolResult::error("query must be a string");
      int k = 5;
      if (const json::value* kv = args.if_contains("k")) {
        std::optional<int64_t> v;
        if (kv->is_int64()) v = kv->as_int64();
        else if (kv->is_uint64() && kv->as_uint64() <= 50) v = static_cast<int64_t>(kv->as_uint64());
        else if (kv->is_double() && kv->as_double() == static_cast<double>(static_cast<int64_t>(kv->as_double())))
          v = static_cast<int64_t>(kv->as_double());
        if (!v || *v < 1 || *v > 50) return mcp::ToolResult::error("k must be a whole number from 1 to 50");
        k = static_cast<int>(*v);
      }
      auto index = current();
      if (!index) return mcp::ToolResult::error("the knowledge base is not loaded");
      std::string query(q->as_string());
      auto hits = index->search(query, {k, false});
      if (!hits.ok()) return mcp::ToolResult::error(hits.status().message());
      json::object structured{{"query", query}, {"hits", hits_array(*hits)}};
      return {query_hits_json(query, *hits), std::move(structured), false};
    };
    server.add_tool(std::move(search));

    mcp::Tool get;
    get.name = kGetTool;
    get.title = "Read a document";
    get.description = "Returns the whole text of one knowledge-base document by the id search_knowledge_base gave.";
    get.input_schema = json::parse(R"({
      "type": "object",
      "properties": {"id": {"type": "string", "description": "the document id from a search hit"}},
      "required": ["id"]
    })").as_object();
    get.output_schema = json::parse(R"({
      "type": "object",
      "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "path": {"type": "string"},
        "chunks": {"type": "integer"}, "text": {"type": "string"}
      },
      "required": ["id", "title", "path", "chunks", "text"]
    })").as_object();
    get.run = [current](const json::object& args) -> mcp::ToolResult {
      const json::value* id = args.if_contains("id");
      if (!id || !id->is_string()) return mcp::ToolResult::error("id must be a string");
      auto index = current();
      if (!index) return mcp::ToolResult::error("the knowledge base is not loaded");
      auto doc = index->document(std::string_view(id->as_string()));
      if (!doc.ok()) return mcp::ToolResult::error(doc.status().message());
      json::object structured{
          {"id", doc->id}, {"title", doc->title}, {"path", doc->path}, {"chunks", doc->chunks}, {"text", doc->text}};
      return {"# " + doc->title + " (" + doc->path + ")\n\n" + doc->text, std::move(structured), false};
    };
    server.add_tool(std::move(get));
  }

  // kb-refresh (once per period across the fleet) and the watcher (every
  // instance, every KB_WATCH_INTERVAL) ask the same thing: the artifact of the
  // corpus as it is now. The runtime does nothing when the inputs did not
  // change; otherwise one instance builds it for the fleet and the others load
  // it, each swapping through load().
  Status refresh(std::stop_token stop) {
    if (!artifacts_ || !current()) return Status::Ok();  // not loaded (yet): start-up builds
    auto changed = artifacts_->refresh(stop);
    if (!changed.ok()) return changed.status();
    return Status::Ok();
  }

  void watch(std::stop_token stop) {
    while (!stop.stop_requested()) {
      {
        std::unique_lock lock(watch_mu_);
        watch_cv_.wait_for(lock, stop, s_.watch_interval, [] { return false; });
      }
      if (stop.stop_requested()) return;
      try {
        if (Status st = refresh(stop); !st.ok())
          spdlog::warn("kb: could not follow the corpus's change: {}", st.to_string());
      } catch (const std::exception& e) {
        spdlog::error("kb: the watcher caught: {}", e.what());
      }
    }
  }

  Settings s_;
  mutable std::mutex mu_;
  std::shared_ptr<const Index> index_;  // guarded by mu_
  std::mutex wiring_mu_;
  bool installed_ = false;  // guarded by wiring_mu_
  startup::ArtifactChannel* artifacts_ = nullptr;  // set once, before the watcher starts
  std::mutex watch_mu_;
  std::condition_variable_any watch_cv_;
  std::jthread watcher_;
};

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}


constexpr const char* kSection = "Knowledge base and MCP (ENABLE_KB_SERVICE)";

SettingRow row(const char* env, const char* flag, const char* def, const char* help, bool secret = false) {
  return module_row(kSection, env, flag, def, help, secret);
}

// The module's rows. The folder checks (KB_CORPUS_DIR is a folder, ...) need
// the module to be on, so they run only when `enabled` is set in the options.
// `rows` followed by MCP_AUTH_JWKS and the rest of the OAuth resource server's rows.
std::vector<OptionRow<Settings>> with_auth_rows(std::vector<OptionRow<Settings>> rows) {
  for (const OptionRow<mcp::BearerSettings>& b : mcp::bearer_rows(kSection))
    rows.push_back({b.row, [apply = b.apply](const std::string& t, Settings& s) { return apply(t, s.auth); }});
  return rows;
}

const std::vector<OptionRow<Settings>>& kb_rows() {
  static const std::vector<OptionRow<Settings>> rows = with_auth_rows({
      {row("KB_CORPUS_DIR", "kb-corpus-dir", "",
           "Folder of Markdown, text and HTML files the knowledge base indexes"),
       [](const std::string& t, Settings& s) {
         struct stat st {};
         if (s.enabled && (::stat(t.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
           return InvalidArgument("expected a folder of Markdown, text or HTML files");
         s.corpus_dir = t;
         return Status::Ok();
       }},
      {row("KB_ARTIFACT_FILE", "kb-artifact-file", "",
           "An index made by `memgate kb build DIR -o FILE`, loaded at start instead of indexing"),
       [](const std::string& t, Settings& s) {
         struct stat st {};
         if (s.enabled && (::stat(t.c_str(), &st) != 0 || !S_ISREG(st.st_mode)))
           return InvalidArgument("expected a file made by `memgate kb build DIR -o FILE`");
         s.artifact_file = t;
         return Status::Ok();
       }},
      {row("KB_CHUNK_SIZE", "kb-chunk-size", "1200", "Largest chunk of a document, in bytes (200..65536)"),
       [](const std::string& t, Settings& s) {
         auto n = parse_int(t, 200, 65536);
         if (!n.ok()) return InvalidArgument("expected a number of bytes from 200 to 65536");
         s.chunk_size = static_cast<size_t>(*n);
         return Status::Ok();
       }},
      {row("KB_MAX_FILE_SIZE", "kb-max-file-size", "64MB",
           "Largest corpus file indexed; larger ones are skipped with a warning (1KB..4GB)"),
       [](const std::string& t, Settings& s) {
         auto v = parse_size(t);
         if (!v.ok() || v->is_share || v->bytes < 1024 || v->bytes > (uint64_t{4} << 30))
           return InvalidArgument("expected a size from 1KB to 4GB, such as 64MB");
         s.max_file_bytes = v->bytes;
         return Status::Ok();
       }},
      {[] {
         SettingRow r = row("KB_QUERY_CONNECTIONS", "kb-query-connections", "",
                            "Read-only SQLite connections over the in-memory index (1..256)");
         r.default_note = "WORKER_THREADS, at least 2";
         return r;
       }(),
       [](const std::string& t, Settings& s) {
         auto n = parse_int(t, 1, 256);
         if (!n.ok()) return InvalidArgument("expected a whole number from 1 to 256");
         s.pool_size = static_cast<int>(*n);
         return Status::Ok();
       }},
      {row("KB_REFRESH_PERIOD", "kb-refresh-period", "5m",
           "Period of the kb-refresh job (with ENABLE_SCHEDULED_JOBS): re-index a changed corpus once per fleet"),
       [](const std::string& t, Settings& s) {
         auto d = parse_duration(t);
         if (!d.ok() || d->count() < 1000) return InvalidArgument("expected a duration of at least 1s, such as 5m");
         s.refresh_period = *d;
         return Status::Ok();
       }},
      {row("KB_WATCH_INTERVAL", "kb-watch-interval", "10s",
           "How often each instance looks for a changed corpus (0s: do not watch)"),
       [](const std::string& t, Settings& s) {
         auto d = parse_duration(t);
         if (!d.ok()) return InvalidArgument("expected " + std::string(kDurationForm) + " (0s: do not watch)");
         s.watch_interval = *d;
         return Status::Ok();
       }},
      {row("MCP_AUTH_TOKEN", "mcp-auth-token", "", "When set, POST /mcp needs Authorization: Bearer <token>",
           true),
       [](const std::string& t, Settings& s) {
         for (char c : t)
           if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F)
             return InvalidArgument("expected a token without spaces or control characters");
         s.mcp.auth_token = t;
         return Status::Ok();
       }},
      {row("MCP_ALLOWED_ORIGINS", "mcp-allowed-origins",
           "http://localhost,http://127.0.0.1,http://[::1],https://localhost,https://127.0.0.1,https://[::1]",
           "Origins allowed to call /mcp (an entry without a port allows any port; * for all)"),
       [](const std::string& t, Settings& s) {
         if (Status st = http::check_origin_list(t); !st.ok()) return st;
         s.mcp.allowed_origins = http::split_origin_list(t);
         return Status::Ok();
       }},
      {row("MCP_RESOURCE_PAGE_SIZE", "mcp-resource-page-size", "50",
           "Resources per resources/list page (1..1000)"),
       [](const std::string& t, Settings& s) {
         auto n = parse_int(t, 1, 1000);
         if (!n.ok()) return InvalidArgument("expected a whole number from 1 to 1000");
         s.mcp.resource_page_size = static_cast<size_t>(*n);
         return Status::Ok();
       }},
  });
  return rows;
}

}  // namespace

SettingRows settings() { return to_rows(kb_rows()); }

Result<std::shared_ptr<startup::Module>> make_kb_module(const Config& config, const EnvLookup& env,
                                                        IndexListener on_index,
                                                        std::shared_ptr<mcp::Registry> mcp_registry) {
  Settings s;
  s.on_index = std::move(on_index);
  s.mcp_registry = std::move(mcp_registry);
  s.heap_gate = config.kb_heap_gate;
  s.enabled = config.enable_kb_service;  // flag, then ENABLE_KB_SERVICE, then the default
  s.pool_size = std::max(2, config.worker_threads);
  if (Status st = apply_rows(kb_rows(), env, s); !st.ok()) return st;
  if (s.enabled && s.corpus_dir.empty() && s.artifact_file.empty())
    return InvalidArgument(
        "ENABLE_KB_SERVICE=true needs KB_CORPUS_DIR (a folder to index) or KB_ARTIFACT_FILE (an index built by "
        "`memgate kb build`)");
  s.mcp.name = "memgate-kb";
  s.mcp.instructions =
      "Search the knowledge base with search_knowledge_base, then read a whole document with get_document.";
  auto bearer = mcp::make_bearer_auth(std::move(s.auth), {kSearchTool, kGetTool}, !s.mcp.auth_token.empty());
  if (!bearer.ok()) return bearer.status();
  s.mcp.bearer = *bearer;
  if (s.enabled && !is_loopback(config.host) && s.mcp.auth_token.empty() && !s.mcp.bearer)
    spdlog::warn("kb: /mcp is served on {} (not loopback) without MCP_AUTH_TOKEN or MCP_AUTH_JWKS", config.host);
  return std::shared_ptr<startup::Module>(std::make_shared<KbModule>(std::move(s)));
}

}  // namespace memgate::kb
