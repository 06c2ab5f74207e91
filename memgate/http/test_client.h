// A blocking HTTP/1.1 test client over plain POSIX sockets, for the http tests.
//
// It speaks just enough HTTP to read back what the server sends (Content-Length
// and chunked bodies, or until close) and never hides what arrived: tests can
// send raw bytes and inspect raw responses. One TestConnection per thread; every
// read has a timeout so a broken server fails a test instead of hanging it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memgate::http::testing {

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::vector<std::string> chunks;  // chunked bodies, piece by piece
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class TestConnection {
 public:
  // Connects to 127.0.0.1:port; ok() says whether it worked.
  explicit TestConnection(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~TestConnection();
  TestConnection(const TestConnection&) = delete;
  TestConnection& operator=(const TestConnection&) = delete;

  bool ok() const { return fd_ >= 0; }
  // Sends all bytes; false on error.
  bool send(std::string_view bytes);
  // Half-closes: the server sees end of input.
  void shutdown_write();
  // Reads one response; nullopt on timeout, close before a full response, or garbage.
  std::optional<ClientResponse> read_response(bool head_request = false);
  // GET path with keep-alive, then read_response().
  std::optional<ClientResponse> get(std::string_view path, std::string_view extra_headers = "");
  // True if the server closed the connection (EOF) within the timeout.
  bool closed_by_peer(std::chrono::milliseconds within = std::chrono::seconds(3));
  // Reads one chunk of a chunked body after the headers; nullopt at the end or on error.
  std::optional<std::string> read_chunk();
  // Reads the status line and headers only.
  std::optional<ClientResponse> read_head();

 private:
  bool fill(std::chrono::milliseconds timeout);
  std::optional<std::string> read_line();
  std::optional<std::string> read_exact(size_t n);

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  std::string buf_;
};

// One request on a fresh connection.
std::optional<ClientResponse> fetch(uint16_t port, std::string_view method, std::string_view path,
                                    std::string_view body = "");

}  // namespace memgate::http::testing
