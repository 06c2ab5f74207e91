// Session: one client connection's state machine, on its IO thread.
//
// Internal to http/. A Session is created by its IoThread on accept and
// deleted by it (IoThread::remove) once closed and no operation of its socket
// is outstanding. Every method runs on that thread; Responders and
// StreamWriters on other threads reach it only by posting through an AsyncSlot,
// which the session detaches from when the response is complete or it closes.
//
// States: Idle -> Reading (first byte of a request) -> Handling (a handler
// runs, or an async Responder owes the answer) -> Writing -> Idle, or
// Streaming for a chunked response, Draining for the lingering close after the
// last response, Closed. One deadline per session, acted on by the thread's
// sweep (check_deadline): idle -> close silently; reading -> 408; a write with
// no progress for read_timeout -> close (a quiet stream is not on the clock).
//
// The two sides live in two files: session.cc reads, parses and dispatches
// (and watches the socket while an answer is owed); session_write.cc
// serialises responses and streams, writes them and decides what comes after.
//
// A client that leaves, or only stops sending. While an answer is owed the
// session waits for the socket to turn readable (a wait, not a read, so parsing
// owns the input buffer again as soon as the answer is out). A reset closes the
// connection and marks the slot disconnected: the handler's connected() turns
// false and the request counts as 499. End of input (FIN) is ambiguous: the
// client may have closed for good or only shut its sending side and still want
// the answer. So a FIN is taken as "no more requests": the answer is still sent,
// then the connection closed. To learn which it was, an HTTP/1.1 client is sent
// an interim "100 Continue" (every HTTP/1.1 client must accept 1xx responses):
// a client that had closed for good answers it with a reset, which the watch
// sees within a round trip; a half-closed one ignores it. HTTP/1.0 clients get
// no 1xx, so for them a full close is only seen when the answer is written.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "memgate/http/request.h"
#include "memgate/http/request_parser.h"
#include "memgate/http/response.h"
#include "memgate/http/router.h"

namespace memgate::http::detail {

class IoThread;
class Session;

using SteadyTime = std::chrono::steady_clock::time_point;

// Shared by a session waiting on an async handler and the Responder (or
// StreamWriter) that will complete it. `session` is read and written only on the
// session's IO thread; the rest may be touched from any thread.
struct AsyncSlot {
  std::weak_ptr<boost::asio::io_context> ctx;
  Session* session = nullptr;
  std::atomic<bool> connected{true};
  // Bytes of the stream not yet accepted by the kernel: pieces posted by the
  // writer (added by write()) plus what the session holds (it adds framing and
  // takes off what the kernel accepts). One word, so a reader never sees a
  // piece counted twice or not at all.
  std::atomic<size_t> pending{0};
};

class Session {
 public:
  enum class State : uint8_t { kIdle, kReading, kHandling, kWriting, kStreaming, kDraining, kClosed };

  Session(IoThread& thread, boost::asio::ip::tcp::socket socket);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the idle clock and the first read.
  void start();
  // Called by the sweep; `now` is the sweep's time. Never frees the session
  // synchronously.
  void check_deadline(SteadyTime now);
  // Posted by begin_stop: idle connections go now, others after their response.
  void on_stop();
  // Closes the socket and detaches the slot; the session is removed once no
  // operation is outstanding. Idempotent.
  void close();

  bool idle() const { return state_ == State::kIdle; }
  bool closed() const { return state_ == State::kClosed; }
  State state() const { return state_; }
  int ops() const { return ops_; }

  // --- from Responders and StreamWriters (posted to this thread) ---
  void async_response(Response&& r);
  void stream_begin(int status, std::string&& content_type,
                    std::vector<std::pair<std::string, std::string>>&& headers);
  // Appends a piece (framed when chunked); drops the stream past the cap.
  void stream_data(std::string&& data);
  // The stream's client is too far behind (or the writer saw it so): close the
  // connection, so the slot reads disconnected and later writes are refused.
  void drop_stream();
  void stream_end();

  Session* prev_ = nullptr;  // the IoThread's list
  Session* next_ = nullptr;

 private:
  enum class Parse { kNeedMore, kComplete, kFailed };

  // --- reading side (session.cc) ---
  void read();
  size_t read_room() const;
  void on_read(boost::system::error_code ec, size_t n);
  void after_read(boost::system::error_code ec, size_t n);
  void watch();
  void on_watch(boost::system::error_code ec);
  void peer_finished_sending();
  void watch_for_reset();
  void abandoned();
  void advance();
  Parse parse();
  void maybe_continue();
  bool dispatch();
  void error_response(int status, std::string message);
  void detach_slot();
  void done_op();

  // --- writing side (session_write.cc) ---
  void send(const Response& r);
  void record(SteadyTime now);
  void write_head(int status, std::string_view content_type,
                  const std::vector<std::pair<std::string, std::string>>& headers,
                  std::optional<size_t> content_length);
  bool flush();
  void start_write();
  size_t buffered() const { return pending_.size() + out_.size() - out_off_; }
  void note_buffered(size_t taken = 0);
  void on_written(boost::system::error_code ec, size_t n);
  bool finish_write_sync();
  void flush_and_continue();
  bool finish_response();
  void linger_close(SteadyTime now);
  void drain();

  IoThread& thread_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer in_;
  RequestStorage storage_;
  std::optional<RequestParser> parser_;
  std::string out_;      // being written
  size_t out_off_ = 0;   // of out_, already written
  size_t noted_ = 0;     // of buffered(), counted in slot_->pending
  std::string pending_;  // to write next
  std::string remote_;
  std::shared_ptr<AsyncSlot> slot_;
  SteadyTime deadline_{};
  SteadyTime read_time_{};
  SteadyTime started_{};
  SteadyTime sent_at_{};
  State state_ = State::kIdle;
  RouteId route_ = kUnmatchedRoute;
  Method method_ = Method::kGet;
  int status_ = 0;
  int version_ = 11;
  int ops_ = 0;
  bool reading_ = false;
  bool watching_ = false;
  bool writing_ = false;
  bool wrote_all_ = false;
  bool keep_ = true;
  bool head_ = false;
  bool close_after_ = false;
  bool chunked_ = false;
  bool stream_done_ = false;
  bool streamed_ = false;
  bool peer_eof_ = false;  // the client sent FIN: answer what is owed, then close
  char id_buffer_[Request::kIdBufferSize];
};

}  // namespace memgate::http::detail
