// Logging setup: spdlog, human text on a terminal or JSON lines (LOG_FORMAT=json).
//
// Call setup_logging() once from main before any other thread starts; after that
// spdlog's default logger is thread-safe. Log lines never carry secrets: callers
// log redact_url(url), never the URL itself.
#pragma once

#include <string>

#include "memgate/base/config.h"

namespace memgate {

// Installs the default logger on stderr with the given level and format.
void setup_logging(const std::string& level, LogFormat format);

}  // namespace memgate
