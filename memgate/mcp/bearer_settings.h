// The MCP_AUTH_* rows of the settings table: how an operator turns /mcp into
// an OAuth 2.1 resource server (bearer_auth.h), and the start-up check of the
// rows taken together.
//
// The module that serves /mcp (the kb) lists these rows among its own and
// reads them with apply_rows() into BearerSettings, then calls
// make_bearer_auth(): null when MCP_AUTH_JWKS is unset, the BearerAuth when it
// is set and the rest agrees, and otherwise kInvalidArgument with a message
// naming the setting, which stops start-up (exit 2). Each row reads only its
// own text; MCP_AUTH_JWKS reads its file there, so check-config also checks
// the key set.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "memgate/base/config.h"
#include "memgate/base/status.h"
#include "memgate/mcp/bearer_auth.h"

namespace memgate::mcp {

struct BearerSettings {
  BearerOptions options;  // keys null while MCP_AUTH_JWKS is unset
  bool any_set = false;   // some MCP_AUTH_* row other than the clock skew was given
};

// The rows, in --help `section`.
const std::vector<OptionRow<BearerSettings>>& bearer_rows(const std::string& section);

// The BearerAuth the settings describe (null: MCP_AUTH_JWKS unset). `tools`
// are the names MCP_AUTH_TOOL_SCOPES may name; `static_token` tells whether
// MCP_AUTH_TOKEN is set too (the two are exclusive).
Result<std::shared_ptr<const BearerAuth>> make_bearer_auth(BearerSettings settings,
                                                           const std::vector<std::string>& tools, bool static_token);

}  // namespace memgate::mcp
