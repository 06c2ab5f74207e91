// RequestParser: one HTTP/1.1 request's bytes into a connection's reusable
// storage, with the framing rules of RFC 9112 that Beast leaves to us.
//
// Internal to http/ (it names Beast's parser): the session state machine owns
// one RequestStorage for its whole life and re-creates a RequestParser over it
// for each request. Fields are copied into one arena string and the body into
// one string, so after warm-up a request allocates nothing here.
//
// Framing (checked when the header is complete, RFC 9112 3.2, 6.1, 6.3): at
// most one Host (exactly one in HTTP/1.1); Transfer-Encoding only in HTTP/1.1,
// never with Content-Length, `chunked` once and last; any other coding is not
// implemented. A request that breaks one stops the parser with refuse_status
// set (400, or 501 for an unknown coding) and refuse_reason saying why: its
// body's length cannot be known, so the session answers and closes.
//
// Not thread-safe: one connection's IO thread only.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memgate/http/request.h"

namespace memgate::http::detail {

// Per-connection storage the parser fills; reused, so it keeps its capacity.
struct RequestStorage {
  struct Field {
    uint32_t name_off, name_len, value_off, value_len;
  };
  std::string arena;
  std::vector<Field> fields;
  std::vector<Header> views;
  std::string body;
  uint32_t method_off = 0, method_len = 0, target_off = 0, target_len = 0;
  int version = 11;
  bool expect_continue = false;
  // RFC 9112 framing, checked when the header is complete.
  int hosts = 0;
  int content_lengths = 0;
  std::string transfer_encoding;  // every Transfer-Encoding line, joined with ", "
  int refuse_status = 0;          // set: answer this and close (400 or 501)
  std::string refuse_reason;

  void clear();
  uint32_t put(std::string_view s) {
    auto off = static_cast<uint32_t>(arena.size());
    arena.append(s);
    return off;
  }
  std::string_view at(uint32_t off, uint32_t len) const { return {arena.data() + off, len}; }
};

class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  explicit RequestParser(RequestStorage& s) : s_(s) {}

 private:
  using error_code = boost::system::error_code;
  void on_request_impl(boost::beast::http::verb, boost::beast::string_view method, boost::beast::string_view target,
                       int version, error_code&) override;
  void on_response_impl(int, boost::beast::string_view, int, error_code&) override {}
  void on_field_impl(boost::beast::http::field f, boost::beast::string_view name, boost::beast::string_view value,
                     error_code&) override;
  void on_header_impl(error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override;
  size_t on_body_impl(boost::beast::string_view body, error_code&) override;
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body, error_code&) override;
  void on_finish_impl(error_code&) override {}

  RequestStorage& s_;
};

}  // namespace memgate::http::detail
