#include "tests/integration/http_client.h"

#include <boost/json.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <thread>

namespace memgate::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Runs the io_context until `done` or the deadline; returns false on timeout.
bool run_until(asio::io_context& io, const bool& done, std::chrono::milliseconds timeout) {
  io.restart();
  io.run_for(timeout);
  return done;
}

HttpReply exchange(uint16_t port, const std::string& bytes, std::chrono::milliseconds pause,
                   std::chrono::milliseconds timeout) {
  HttpReply reply;
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) {
    reply.error = "connect: " + ec.message();
    return reply;
  }
  socket.set_option(tcp::no_delay(true));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  parser.header_limit(64 * 1024);
  bool done = false;
  boost::system::error_code read_ec;
  // The read is pending while we write, so a server that answers early (408, 431)
  // is heard even if it closes before the client has sent everything.
  http::async_read(socket, buffer, parser, [&](boost::system::error_code e, size_t) {
    read_ec = e;
    done = true;
  });
  asio::steady_timer timer(io);
  size_t sent = 0;
  std::function<void()> send_next = [&] {
    if (done || sent >= bytes.size()) return;
    size_t n = pause.count() == 0 ? bytes.size() - sent : 1;
    asio::async_write(socket, asio::buffer(bytes.data() + sent, n), [&, n](boost::system::error_code e, size_t) {
      if (e) return;  // the server closed; the pending read tells what it said
      sent += n;
      if (pause.count() == 0) return send_next();
      timer.expires_after(pause);  // the client is slow on purpose
      timer.async_wait([&](boost::system::error_code te) {
        if (!te) send_next();
      });
    });
  };
  send_next();
  io.run_for(timeout);
  timer.cancel();
  if (!done) {
    reply.error = "timed out waiting for a response";
    return reply;
  }
  if (read_ec) {
    reply.error = "read: " + read_ec.message();
    return reply;
  }
  auto& res = parser.get();
  reply.status = res.result_int();
  for (auto& field : res) {
    std::string name(field.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    reply.headers[name] = std::string(field.value());
  }
  reply.body = res.body();
  // Did the server close? Try one more read with a short bound.
  bool closed = false;
  done = false;
  char byte;
  socket.async_read_some(asio::buffer(&byte, 1), [&](boost::system::error_code e, size_t) {
    closed = e == asio::error::eof || e == asio::error::connection_reset;
    done = true;
  });
  run_until(io, done, std::chrono::milliseconds(!res.keep_alive() ? 1000 : 50));
  reply.closed_after = closed;
  return reply;
}

}  // namespace

HttpReply http_request(uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body, const std::map<std::string, std::string>& headers,
                       std::chrono::milliseconds timeout) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req += body;
  return exchange(port, req, std::chrono::milliseconds(0), timeout);
}

HttpReply http_raw(uint16_t port, const std::string& bytes, std::chrono::milliseconds timeout) {
  return exchange(port, bytes, std::chrono::milliseconds(0), timeout);
}

HttpReply http_raw_trickle(uint16_t port, const std::string& bytes, std::chrono::milliseconds pause,
                           std::chrono::milliseconds timeout) {
  return exchange(port, bytes, pause, timeout);
}

bool wait_for_status(uint16_t port, const std::string& target, int status, std::chrono::milliseconds within) {
  auto deadline = std::chrono::steady_clock::now() + within;
  for (int attempt = 0; attempt < 100000 && std::chrono::steady_clock::now() < deadline; ++attempt) {
    HttpReply r = http_request(port, "GET", target, "", {}, std::chrono::milliseconds(1000));
    if (r.status == status) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

boost::json::object startup_module(uint16_t port, const std::string& name) {
  HttpReply r = http_get(port, "/startupz");
  if (r.status != 200) return {};
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(r.body, ec);
  if (ec || !doc.is_object()) return {};
  if (const boost::json::value* mods = doc.as_object().if_contains("modules"); mods && mods->is_array())
    for (const boost::json::value& m : mods->as_array())
      if (m.is_object() && text_of(m.as_object(), "name") == name) return m.as_object();
  return {};
}

std::string text_of(const boost::json::object& o, const char* field) {
  const boost::json::value* v = o.if_contains(field);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::vector<std::string> hit_paths(uint16_t port, const std::string& q) {
  HttpReply r = http_get(port, "/api/kb/search?q=" + q);
  std::vector<std::string> out;
  if (r.status != 200) return out;
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(r.body, ec);
  if (ec || !doc.is_object() || !doc.as_object().contains("hits")) return out;
  for (const boost::json::value& h : doc.as_object().at("hits").as_array())
    if (h.is_object()) out.push_back(text_of(h.as_object(), "path"));
  return out;
}

}  // namespace memgate::testing
