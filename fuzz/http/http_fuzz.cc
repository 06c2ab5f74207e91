// libFuzzer target: request handling (parsing, routing, limits) through the real
// server. One in-process memgate http::Server listens on a loopback port; each
// input is written to a fresh connection as raw bytes, the write side is shut, and
// whatever the server answers is read until it closes. The properties checked:
//   - the server never crashes (ASan/UBSan watch the parsing and routing code);
//   - every answer starts with a well-formed HTTP/1.1 status line;
//   - the server always closes a connection whose client is done (no stall);
//   - after every input, a plain GET /healthz is still answered 200.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "memgate/http/server.h"

namespace {

using namespace std::chrono_literals;
using memgate::http::Method;
using memgate::http::Request;
using memgate::http::Response;

memgate::http::Server* server() {
  static memgate::http::Server* s = [] {
    memgate::http::ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.io_threads = 1;
    o.header_limit = 4096;
    o.body_limit = 8192;
    o.read_timeout = 200ms;
    o.idle_timeout = 200ms;
    auto* srv = new memgate::http::Server(o);
    auto& r = srv->router();
    (void)r.add(Method::kGet, "/healthz", [](const Request&) { return Response::json(200, R"({"status":"ok"})"); });
    (void)r.add(Method::kPost, "/echo", [](const Request& q) { return Response::text(200, std::string(q.body())); });
    (void)r.add(Method::kGet, "/docs/*", [](const Request& q) {
      return Response::json(200, "{\"id\":\"" + std::string(q.query_param("id")) + "\"}");
    });
    (void)r.add_pending(Method::kGet, "/api/kb/search", {"kb", "building", 2, ""});
    if (!srv->start().ok()) std::abort();
    return srv;
  }();
  return s;
}

// Writes `bytes`, shuts the write side, reads to EOF. Returns what was read, or
// nullopt-like "\x01" if the server did not close within the bound.
std::string exchange(uint16_t port, const uint8_t* data, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  size_t off = 0;
  while (off < size) {
    ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before reading it all
    off += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + 3s;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0 || poll(&p, 1, left) <= 0) {
      close(fd);
      return "\x01";
    }
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 32 * 1024) return 0;
  uint16_t port = server()->port();
  std::string reply = exchange(port, data, size);
  if (reply == "\x01") std::abort();  // the server did not close a finished connection
  if (!reply.empty() && reply.compare(0, 9, "HTTP/1.1 ") != 0 && reply.compare(0, 9, "HTTP/1.0 ") != 0)
    std::abort();
  static const char kHealth[] = "GET /healthz HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n";
  std::string health = exchange(port, reinterpret_cast<const uint8_t*>(kHealth), sizeof kHealth - 1);
  if (health.compare(0, 12, "HTTP/1.1 200") != 0) std::abort();
  return 0;
}
