// The test client: blocking sockets with poll() timeouts.
#include "memgate/http/test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace memgate::http::testing {

TestConnection::TestConnection(uint16_t port, std::chrono::milliseconds timeout) : timeout_(timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
}

TestConnection::~TestConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool TestConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void TestConnection::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool TestConnection::fill(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char tmp[16384];
  ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf_.append(tmp, static_cast<size_t>(n));
  return true;
}

std::optional<std::string> TestConnection::read_line() {
  while (true) {
    size_t pos = buf_.find("\r\n");
    if (pos != std::string::npos) {
      std::string line = buf_.substr(0, pos);
      buf_.erase(0, pos + 2);
      return line;
    }
    if (!fill(timeout_)) return std::nullopt;
  }
}

std::optional<std::string> TestConnection::read_exact(size_t n) {
  while (buf_.size() < n) {
    if (!fill(timeout_)) return std::nullopt;
  }
  std::string out = buf_.substr(0, n);
  buf_.erase(0, n);
  return out;
}

std::optional<ClientResponse> TestConnection::read_head() {
  auto status_line = read_line();
  if (!status_line || status_line->rfind("HTTP/1.", 0) != 0 || status_line->size() < 12) return std::nullopt;
  ClientResponse r;
  r.status = std::atoi(status_line->c_str() + 9);
  while (true) {
    auto line = read_line();
    if (!line) return std::nullopt;
    if (line->empty()) break;
    size_t colon = line->find(':');
    if (colon == std::string::npos) return std::nullopt;
    std::string name = line->substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line->substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    r.headers[name] = value;
  }
  return r;
}

std::optional<std::string> TestConnection::read_chunk() {
  auto size_line = read_line();
  if (!size_line) return std::nullopt;
  size_t size = std::strtoul(size_line->c_str(), nullptr, 16);
  if (size == 0) {
    read_line();  // the blank line after the last chunk
    return std::nullopt;
  }
  auto data = read_exact(size + 2);
  if (!data) return std::nullopt;
  data->resize(size);
  return data;
}

std::optional<ClientResponse> TestConnection::read_response(bool head_request) {
  auto r = read_head();
  if (!r) return std::nullopt;
  if (head_request || r->status == 204 || r->status == 304 || r->status < 200) return r;
  if (r->header("transfer-encoding") == "chunked") {
    while (auto chunk = read_chunk()) {
      r->body += *chunk;
      r->chunks.push_back(std::move(*chunk));
    }
    return r;
  }
  std::string cl = r->header("content-length");
  if (!cl.empty()) {
    auto body = read_exact(std::stoul(cl));
    if (!body) return std::nullopt;
    r->body = std::move(*body);
    return r;
  }
  while (fill(timeout_)) {
  }
  r->body = std::move(buf_);
  buf_.clear();
  return r;
}

std::optional<ClientResponse> TestConnection::get(std::string_view path, std::string_view extra_headers) {
  std::string req = "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
  if (!send(req)) return std::nullopt;
  return read_response();
}

bool TestConnection::closed_by_peer(std::chrono::milliseconds within) {
  auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd_, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0) return false;
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return true;  // EOF or reset
    buf_.append(tmp, static_cast<size_t>(n));
  }
  return false;
}

std::optional<ClientResponse> fetch(uint16_t port, std::string_view method, std::string_view path,
                                    std::string_view body) {
  TestConnection c(port);
  if (!c.ok()) return std::nullopt;
  std::string req = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
  if (!c.send(req)) return std::nullopt;
  return c.read_response(method == "HEAD");
}

}  // namespace memgate::http::testing
