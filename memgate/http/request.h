// Request: what a handler sees of one HTTP request.
//
// A Request is a read-only view. Its string_views point into buffers the
// connection owns and reuses, so they are valid only for the duration of the
// handler call; an async handler copies what it needs before returning. A Request
// is used by one thread at a time (the IO thread that parsed it) and must not be
// retained. Header names are matched case-insensitively.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace memgate::http {

enum class Method : uint8_t { kGet, kHead, kPost, kPut, kDelete, kPatch, kOptions, kOther };
inline constexpr int kMethodCount = 8;

// "GET", "POST", ...; "OTHER" for kOther.
std::string_view method_name(Method method);
// The Method for a token ("GET" -> kGet); kOther for anything not listed above.
Method parse_method(std::string_view token);

struct Header {
  std::string_view name;
  std::string_view value;
};

class Request {
 public:
  Method method() const { return method_; }
  // The method token as sent ("GET", "PROPFIND").
  std::string_view method_string() const { return method_string_; }
  // The request-target as sent: "/api/kb/search?q=x".
  std::string_view target() const { return target_; }
  // The target up to '?', not percent-decoded: "/api/kb/search".
  std::string_view path() const { return path_; }
  // The part after '?', without it; empty when there is none.
  std::string_view query() const { return query_; }
  // 10 for HTTP/1.0, 11 for HTTP/1.1.
  int version() const { return version_; }
  bool keep_alive() const { return keep_alive_; }

  // The first header with this name (case-insensitive), or an empty view.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  std::span<const Header> headers() const { return headers_; }

  // The decoded body (chunked bodies are joined); empty when there is none.
  std::string_view body() const { return body_; }

  // X-Request-Id when the client sent a usable one (1..128 visible ASCII chars),
  // else an id generated for this request, unique within the process.
  std::string_view request_id() const;

  // The peer as "address:port" ("127.0.0.1:53012", "[::1]:53012").
  std::string_view remote_address() const { return remote_address_; }

  // The value of a query parameter (first occurrence), not percent-decoded;
  // empty when absent.
  std::string_view query_param(std::string_view name) const;

 private:
  friend class RequestBuilder;
  Method method_ = Method::kGet;
  int version_ = 11;
  bool keep_alive_ = true;
  std::string_view method_string_, target_, path_, query_, body_, remote_address_;
  std::string_view client_request_id_;
  std::span<const Header> headers_;
  // Filled lazily by request_id() when the client sent none.
  mutable char* id_buffer_ = nullptr;  // at least kIdBufferSize bytes, owned by the connection
  mutable uint8_t id_length_ = 0;
  uint64_t id_seed_ = 0;
  uint64_t id_serial_ = 0;

 public:
  static constexpr int kIdBufferSize = 40;
};

// Builds Request values; used by the server and by tests that call handlers
// directly. Every view handed in must outlive the Request.
class RequestBuilder {
 public:
  RequestBuilder& method(std::string_view token);
  RequestBuilder& target(std::string_view target);
  RequestBuilder& version(int v) { r_.version_ = v; return *this; }
  RequestBuilder& keep_alive(bool k) { r_.keep_alive_ = k; return *this; }
  RequestBuilder& headers(std::span<const Header> h);
  RequestBuilder& body(std::string_view b) { r_.body_ = b; return *this; }
  RequestBuilder& remote_address(std::string_view a) { r_.remote_address_ = a; return *this; }
  // Where a generated request id is written (kIdBufferSize bytes) and what it is made of.
  RequestBuilder& id_source(char* buffer, uint64_t seed, uint64_t serial) {
    r_.id_buffer_ = buffer; r_.id_seed_ = seed; r_.id_serial_ = serial; r_.id_length_ = 0;
    return *this;
  }
  const Request& get() const { return r_; }
  Request& mutable_get() { return r_; }

 private:
  Request r_;
};

}  // namespace memgate::http
