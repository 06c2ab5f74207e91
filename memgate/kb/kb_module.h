// The kb module: the knowledge base and its MCP endpoint as a heavy module of the
// staged loader.
//
// Declares: stage 1, flag ENABLE_KB_SERVICE (off by default), memory gate
// KB_HEAP_GATE (1.5 GB), fleet lock init:mcp-kb (20 s) with done flag
// init:mcp-kb:done (10 min), routes /api/kb/search, /api/kb/docs/*, /api/kb/info
// and /mcp (POST; GET and DELETE answer 405), and the job kb-refresh.
//
// build(): loads KB_ARTIFACT_FILE when set (falling back to indexing when it is
// unusable and a corpus is configured), else indexes KB_CORPUS_DIR on the worker
// pool, logging progress with a percentage and ETA; returns the artifact.
// load(): opens the artifact (decompress + deserialize, no indexing) and installs
// the handlers; later loads swap the index under queries in flight.
//
// Its input fingerprint is the corpus fingerprint (paths, sizes, mtimes), the
// chunk size and the index format: the fleet keys carry it, so a changed corpus
// is a different artifact. kb-refresh (once per period across the fleet) and a
// watcher on every instance (every KB_WATCH_INTERVAL) ask the runtime's artifact
// channel for the artifact of the corpus as it is now: one instance builds it,
// the others load it, and each swaps.
//
// Thread-safe as the Module interface requires.
#pragma once

#include <functional>
#include <memory>

#include "memgate/base/config.h"
#include "memgate/startup/module.h"

namespace memgate::mcp {
class Registry;
}

namespace memgate::kb {

class Index;

// Called with each index the module starts serving, and with null when it stops.
using IndexListener = std::function<void(std::shared_ptr<const Index>)>;

// The module's rows of the settings table (KB_*, MCP_*): what the runtime
// parses, checks and lists before any module is made.
SettingRows settings();

// Reads the module's variables (see docs/operations.md, "Knowledge base and
// MCP") through `env`: the runtime hands it settings_lookup(), so an unset
// variable reads as its row's default. A bad value is kInvalidArgument naming
// the variable; with the module enabled, a missing corpus and artifact is one too.
// `mcp_registry` is what /mcp serves, to which the module adds its tools,
// documents and templates (mcp_resources.h); null: a registry of its own, so
// /mcp offers the kb's alone.
Result<std::shared_ptr<startup::Module>> make_kb_module(const Config& config, const EnvLookup& env,
                                                        IndexListener on_index = {},
                                                        std::shared_ptr<mcp::Registry> mcp_registry = nullptr);

}  // namespace memgate::kb
