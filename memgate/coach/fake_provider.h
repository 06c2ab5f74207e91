// FakeProvider: a stand-in OpenAI-compatible chat-completions server for tests.
//
// It listens on a free loopback port and answers POST /v1/chat/completions with
// the real wire format: a chat.completion JSON object, or, for "stream": true, a
// chunked text/event-stream of chat.completion.chunk events ("data: {...}" with
// choices[0].delta.content) ending with "data: [DONE]". Connections are
// keep-alive. Switches make it misbehave on purpose:
//   kOk     answer at once;
//   kError  answer 500 with an OpenAI-style error body;
//   kHang   read the request and never answer (until the peer or the test goes);
//   kDrop   start the answer, then close the connection in the middle of it;
//   kGated  hold each request (a stream after its first piece) until release();
//   kEndlessHead         answer 200 with a header line that never ends;
//   kEndlessChunkHeader  answer 200, chunked, with a chunk-size line (a size and
//                        an extension) that never ends.
// The two endless modes send kEndlessBytes bytes of it (or until the client
// closes), then close: enough to show whether the client bounds what it holds.
// It records each request's body and Authorization header, and counts the
// connections that the client closed while the provider was holding them.
// Like a real server it reads the answer cap under either name
// ("max_completion_tokens" or "max_tokens"; each piece counts as a token: the
// answer stops after that many with finish_reason "length"), reports "usage"
// on a plain answer (prompt 10, completion the pieces sent), and on a stream
// that asked with stream_options.include_usage ends with a usage chunk whose
// choices are empty. set_reject_stream_options() makes it an older server that
// answers 400 to any request carrying stream_options; set_usage() replaces the
// usage object it sends (to try hostile counts).
//
// With a certificate and key it speaks TLS (OpenSSL) instead of plain TCP.
// Blocking sockets, a thread per connection; every wait is bounded and wakes
// when the test stops the provider. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace memgate::coach::testing {

class FakeProvider {
 public:
  enum class Mode { kOk, kError, kHang, kDrop, kGated, kEndlessHead, kEndlessChunkHeader };
  static constexpr size_t kEndlessBytes = 16u << 20;

  // Listens on 127.0.0.1 and a free port; null when it cannot. With cert_file and
  // key_file (PEM), every connection is TLS.
  static std::unique_ptr<FakeProvider> start(const std::string& cert_file = "", const std::string& key_file = "");
  ~FakeProvider();

  uint16_t port() const { return port_; }
  std::string base_url() const { return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_); }

  void set_mode(Mode mode) { mode_.store(mode); }
  // The answer, piece by piece (streamed one event each; joined otherwise).
  void set_pieces(std::vector<std::string> pieces);
  // The body of a kError answer (an OpenAI-style error object by default).
  void set_error_body(std::string body);
  // Answer 400 (an OpenAI-style invalid_request_error naming the parameter) to
  // any request with stream_options, as servers that predate it do.
  void set_reject_stream_options(bool reject) { reject_stream_options_.store(reject); }
  // The usage object sent, verbatim JSON; empty: the real counts.
  void set_usage(std::string usage_json);
  // Opens the gate for every held request, now and later.
  void release();

  int requests() const;
  std::vector<std::string> bodies() const;
  std::vector<std::string> authorizations() const;
  // Waits (for real, bounded) until at least n requests arrived.
  bool wait_for_requests(int n, std::chrono::milliseconds within = std::chrono::seconds(10)) const;
  // Connections the client closed while the provider held or streamed to them.
  int closed_by_client() const { return closed_by_client_.load(); }
  bool wait_for_closed_by_client(int n, std::chrono::milliseconds within = std::chrono::seconds(10)) const;
  int connections() const { return connections_.load(); }

  struct Conn;  // one accepted connection (fake_provider.cc)

 private:
  FakeProvider() = default;
  void accept_loop();
  void serve(Conn& c);
  // Waits for the gate; false when the peer closed first or the provider stops.
  bool wait_gate(int fd);
  bool peer_closed(int fd) const;

  void* tls_ = nullptr;  // SSL_CTX*, when serving TLS

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<Mode> mode_{Mode::kOk};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> reject_stream_options_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> closed_by_client_{0};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool gate_open_ = false;               // guarded by mu_
  std::vector<std::string> pieces_{"Turn ", "the heap ", "every two weeks [1]."};  // guarded by mu_
  std::string error_body_ = R"({"error":{"message":"the model is overloaded","type":"server_error"}})";  // guarded by mu_
  std::string usage_;                    // guarded by mu_
  std::vector<std::string> bodies_;      // guarded by mu_
  std::vector<std::string> auths_;       // guarded by mu_
  std::thread acceptor_;
  std::vector<std::thread> workers_;     // guarded by mu_
};

}  // namespace memgate::coach::testing
