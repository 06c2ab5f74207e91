// Responder and StreamWriter: completing a request later, from any thread.
//
// An async route's handler receives a Responder. It may return at once and hand
// the Responder to a worker; whoever holds it later calls send() exactly once
// (it is move-only and send() consumes it), or stream() to start a chunked
// response such as Server-Sent Events. Both are safe to call from any thread: the
// work is posted to the connection's IO thread. If a Responder is destroyed
// without being used, the client gets a 500, so a request never hangs on a lost
// Responder. If the client has gone (or the server stopped) by then, the
// response is dropped silently. While the response is owed (and while a stream
// is open) the connection watches its socket, so a client that closes or resets
// it is noticed at once, not when the answer is written: connected() turns false
// and a long job (an upstream call) should give up. Such a request is counted
// with status 499 (memgate_http_client_aborts_total). A half-close (the client shut
// its sending side only) is not leaving: the answer is still sent, then the
// connection closed. To tell the two apart an HTTP/1.1 client is sent an
// interim 100, which a closed socket answers with a reset (session.h); an open
// stream's client that closes is seen at the stream's next piece.
//
// A StreamWriter (move-only, any thread) writes the body in pieces: write()
// queues a chunk, finish() ends the response. Destroying it finishes the
// response.
//
// Back-pressure. queued_bytes() is what is really pending for the stream:
// pieces posted but not yet taken by the IO thread plus bytes the connection
// holds that the kernel has not accepted yet (chunk framing included). A
// producer that may outrun its client should check it and slow down (or give
// up) well before kMaxPending. Past kMaxPending the stream is dropped: the
// connection is closed, connected() turns false and later writes return false;
// so a client that stops reading costs at most kMaxPending plus one piece.
// Write deadline: a stream whose write makes no progress for
// ServerOptions::read_timeout is closed the same way (a quiet stream with
// nothing to write is not on the clock). Both count as a client abort.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "memgate/http/response.h"

namespace memgate::http {

namespace detail {
struct AsyncSlot;  // shared between the connection (on its IO thread) and the holder
}  // namespace detail

class StreamWriter {
 public:
  StreamWriter() = default;
  StreamWriter(StreamWriter&&) noexcept = default;
  StreamWriter& operator=(StreamWriter&& other) noexcept;
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;
  ~StreamWriter();

  // Queues a piece of the body. Returns false (and drops it) when the client has
  // gone or the stream was finished. An empty piece is ignored.
  bool write(std::string data);
  // Ends the body (the last chunk). Later writes return false. Idempotent.
  void finish();
  // False once the connection is gone (or the stream was dropped).
  bool connected() const;
  // Bytes written but not yet accepted by the kernel: queued for the IO thread
  // plus held by the connection (see above). One counter, so a snapshot counts
  // every piece exactly once. Meaningless once !connected().
  size_t queued_bytes() const;

  // Pending bytes (queued_bytes()) past which the stream is dropped.
  static constexpr size_t kMaxPending = size_t{4} << 20;

 private:
  friend class Responder;
  explicit StreamWriter(std::shared_ptr<detail::AsyncSlot> slot) : slot_(std::move(slot)) {}
  std::shared_ptr<detail::AsyncSlot> slot_;
};

class Responder {
 public:
  Responder() = default;
  explicit Responder(std::shared_ptr<detail::AsyncSlot> slot) : slot_(std::move(slot)) {}
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&& other) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  // Sends a 500 if neither send() nor stream() was called.
  ~Responder();

  // Completes the request with this response.
  void send(Response response) &&;
  // Starts a streamed (chunked) response: status line and headers now, the body
  // through the returned writer. HTTP/1.0 clients get the body unframed and the
  // connection closed at the end. No Content-Length is sent.
  StreamWriter stream(int status, std::string content_type,
                      std::vector<std::pair<std::string, std::string>> headers = {}) &&;
  // False once the client has gone or the server is stopping.
  bool connected() const;
  // True while this Responder still owes the response.
  bool valid() const { return slot_ != nullptr; }

 private:
  std::shared_ptr<detail::AsyncSlot> slot_;
};

}  // namespace memgate::http
