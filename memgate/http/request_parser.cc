#include "memgate/http/request_parser.h"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <cctype>

namespace memgate::http::detail {

namespace bhttp = boost::beast::http;
using error_code = boost::system::error_code;

namespace {

inline std::string_view sv(boost::beast::string_view v) { return {v.data(), v.size()}; }

using boost::beast::iequals;

std::string_view trim(std::string_view c) {
  while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
  while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
  return c;
}

}  // namespace

void RequestStorage::clear() {
  arena.clear();
  fields.clear();
  body.clear();
  expect_continue = false;
  method_len = target_len = 0;
  hosts = content_lengths = 0;
  transfer_encoding.clear();
  refuse_status = 0;
  refuse_reason.clear();
}

void RequestParser::on_request_impl(bhttp::verb, boost::beast::string_view method, boost::beast::string_view target,
                                    int version, error_code&) {
  s_.method_off = s_.put(sv(method));
  s_.method_len = static_cast<uint32_t>(method.size());
  s_.target_off = s_.put(sv(target));
  s_.target_len = static_cast<uint32_t>(target.size());
  s_.version = version;
}

void RequestParser::on_field_impl(bhttp::field f, boost::beast::string_view name, boost::beast::string_view value,
                                  error_code&) {
  if (f == bhttp::field::expect && iequals(sv(value), "100-continue")) s_.expect_continue = true;
  if (f == bhttp::field::host) ++s_.hosts;
  if (f == bhttp::field::content_length) ++s_.content_lengths;
  if (f == bhttp::field::transfer_encoding) {
    if (!s_.transfer_encoding.empty()) s_.transfer_encoding += ", ";
    s_.transfer_encoding.append(value.data(), std::min<size_t>(value.size(), 1024));
  }
  RequestStorage::Field field;
  field.name_off = s_.put(sv(name));
  field.name_len = static_cast<uint32_t>(name.size());
  field.value_off = s_.put(sv(value));
  field.value_len = static_cast<uint32_t>(value.size());
  s_.fields.push_back(field);
}

void RequestParser::on_header_impl(error_code& ec) {
  auto refuse = [&](int status, std::string why) {
    s_.refuse_status = status;
    s_.refuse_reason = std::move(why);
    ec = bhttp::error::bad_transfer_encoding;  // stops the parser; the status above is what is answered
  };
  if (s_.hosts > 1) return refuse(400, "more than one Host header");
  if (s_.hosts == 0 && s_.version >= 11) return refuse(400, "an HTTP/1.1 request needs a Host header");
  if (s_.transfer_encoding.empty()) return;
  if (s_.version < 11) return refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
  if (s_.content_lengths > 0) return refuse(400, "both Transfer-Encoding and Content-Length");
  // Codings, comma-separated, parameters after ';' ignored; only chunked is
  // implemented, and it must be the last one and appear once.
  std::vector<std::string> codings;
  std::string_view te = s_.transfer_encoding;
  for (size_t at = 0; at <= te.size();) {
    size_t comma = te.find(',', at);
    std::string_view c = trim(te.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at));
    if (size_t semi = c.find(';'); semi != std::string_view::npos) c = trim(c.substr(0, semi));
    std::string lower(c);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    codings.push_back(lower);
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  int chunked = 0;
  for (const std::string& c : codings) {
    if (c == "chunked") {
      ++chunked;
      continue;
    }
    if (c.empty()) return refuse(400, "an empty transfer coding");
    return refuse(501, "transfer coding '" + c.substr(0, 40) + "' is not implemented");
  }
  if (chunked != 1 || codings.back() != "chunked") return refuse(400, "chunked must be the final transfer coding, once");
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) {
  if (length) s_.body.reserve(static_cast<size_t>(*length));
}

size_t RequestParser::on_body_impl(boost::beast::string_view body, error_code&) {
  s_.body.append(body.data(), body.size());
  return body.size();
}

size_t RequestParser::on_chunk_body_impl(std::uint64_t, boost::beast::string_view body, error_code&) {
  s_.body.append(body.data(), body.size());
  return body.size();
}

}  // namespace memgate::http::detail
