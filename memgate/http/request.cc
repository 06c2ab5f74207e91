// Request accessors. Header lookup is a linear, case-insensitive scan: requests
// carry a handful of headers and a scan beats building an index per request. The
// generated request id is written lazily into a buffer the connection owns, so a
// handler that never asks for it costs nothing.
#include "memgate/http/request.h"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <cstdio>

namespace memgate::http {
namespace {

using boost::beast::iequals;

bool usable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::string_view method_name(Method method) {
  switch (method) {
    case Method::kGet: return "GET";
    case Method::kHead: return "HEAD";
    case Method::kPost: return "POST";
    case Method::kPut: return "PUT";
    case Method::kDelete: return "DELETE";
    case Method::kPatch: return "PATCH";
    case Method::kOptions: return "OPTIONS";
    case Method::kOther: break;
  }
  return "OTHER";
}

Method parse_method(std::string_view t) {
  if (t == "GET") return Method::kGet;
  if (t == "POST") return Method::kPost;
  if (t == "HEAD") return Method::kHead;
  if (t == "PUT") return Method::kPut;
  if (t == "DELETE") return Method::kDelete;
  if (t == "PATCH") return Method::kPatch;
  if (t == "OPTIONS") return Method::kOptions;
  return Method::kOther;
}

std::string_view Request::header(std::string_view name) const {
  for (const Header& h : headers_) {
    if (iequals(h.name, name)) return h.value;
  }
  return {};
}

bool Request::has_header(std::string_view name) const {
  for (const Header& h : headers_) {
    if (iequals(h.name, name)) return true;
  }
  return false;
}

std::string_view Request::request_id() const {
  if (!client_request_id_.empty()) return client_request_id_;
  if (id_buffer_ == nullptr) return {};
  if (id_length_ == 0) {
    int n = std::snprintf(id_buffer_, kIdBufferSize, "%016llx-%llx",
                          static_cast<unsigned long long>(id_seed_),
                          static_cast<unsigned long long>(id_serial_));
    id_length_ = static_cast<uint8_t>(std::clamp(n, 0, kIdBufferSize - 1));
  }
  return {id_buffer_, id_length_};
}

std::string_view Request::query_param(std::string_view name) const {
  std::string_view q = query_;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

RequestBuilder& RequestBuilder::method(std::string_view token) {
  r_.method_string_ = token;
  r_.method_ = parse_method(token);
  return *this;
}

RequestBuilder& RequestBuilder::target(std::string_view target) {
  r_.target_ = target;
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    r_.path_ = target;
    r_.query_ = {};
  } else {
    r_.path_ = target.substr(0, q);
    r_.query_ = target.substr(q + 1);
  }
  return *this;
}

RequestBuilder& RequestBuilder::headers(std::span<const Header> h) {
  r_.headers_ = h;
  r_.client_request_id_ = {};
  for (const Header& header : h) {
    if (iequals(header.name, "x-request-id")) {
      if (usable_request_id(header.value)) r_.client_request_id_ = header.value;
      break;
    }
  }
  return *this;
}

}  // namespace memgate::http
