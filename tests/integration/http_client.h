// A small blocking HTTP/1.1 client for integration tests, over loopback only.
//
// Each call opens a connection, sends, and reads one response (Beast's parser does
// the reading, so a malformed reply from the server fails the test rather than
// being misread). Not thread-safe per object; use one client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

namespace memgate::testing {

struct HttpReply {
  int status = 0;                          // 0: no response (connection failed or closed)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string error;                       // why status is 0
  bool closed_after = false;               // the server closed the connection after replying
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// GET (or another method) with an optional body and extra headers.
HttpReply http_request(uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body = "",
                       const std::map<std::string, std::string>& headers = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
inline HttpReply http_get(uint16_t port, const std::string& target) { return http_request(port, "GET", target); }

// Sends raw bytes, optionally in pieces with a pause between them, then reads one response.
HttpReply http_raw(uint16_t port, const std::string& bytes,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));
HttpReply http_raw_trickle(uint16_t port, const std::string& bytes, std::chrono::milliseconds pause,
                           std::chrono::milliseconds timeout);

// Polls GET target until it answers `status` or `within` runs out; returns whether it did.
// (Polling a socket for a process to come up is not waiting on a timer.)
bool wait_for_status(uint16_t port, const std::string& target, int status, std::chrono::milliseconds within);

// The module named `name` in the server's /startupz; empty when the server
// does not answer or has no such module.
boost::json::object startup_module(uint16_t port, const std::string& name);
// A string field of a JSON object; "" when absent or not a string.
std::string text_of(const boost::json::object& o, const char* field);
// The paths of the hits GET /api/kb/search?q=... returns; empty on none or an error.
std::vector<std::string> hit_paths(uint16_t port, const std::string& q);

}  // namespace memgate::testing
