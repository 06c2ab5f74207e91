// Response: what a handler returns, and the helpers that build the usual ones.
//
// A Response is a plain value (copyable, movable, no thread affinity). The server
// adds Server, Date, Content-Length and Connection; a handler sets status, content
// type, body and any extra headers. Errors are JSON everywhere in memgate:
//   {"error":{"code":"not_found","message":"no route for /x"}}
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "memgate/base/json_escape.h"  // append_json_escaped, for bodies built by hand
#include "memgate/base/status.h"

namespace memgate::http {

struct Response {
  int status = 200;
  std::string content_type;  // empty: no Content-Type header
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, sent as given
  bool close = false;  // close the connection after this response

  Response& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }

  // A JSON body sent as is (the caller made it valid JSON).
  static Response json(int status, std::string body);
  // A text/plain; charset=utf-8 body.
  static Response text(int status, std::string body);
  // {"error":{"code":code,"message":message}} with the given status.
  static Response error(int status, std::string_view code, std::string_view message);
  // The same, with the code named after the status (404 -> "not_found").
  static Response error(int status, std::string_view message);
  // A non-OK Status at the edge: http_status_for(code), code_name(code), message.
  static Response from_status(const Status& status);
};

// The lower-case error code used for an HTTP status ("payload_too_large").
std::string_view error_code_for_status(int status);

// The reason phrase of a status ("Not Found"); "Unknown" for unlisted codes.
std::string_view reason_phrase(int status);

// One Server-Sent Events message: optional "event:" and "id:" lines, one "data:"
// line per line of data, and the blank line that ends the event.
std::string sse_event(std::string_view data, std::string_view event = {}, std::string_view id = {});

}  // namespace memgate::http
