// Session, reading side: the request loop (read, parse, dispatch), the watch
// on the socket while an answer is owed, error answers and closing. The
// writing side is session_write.cc; the state machine is described in
// session.h.
#include "memgate/http/session.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/beast/http/error.hpp>
#include <exception>

#include "memgate/http/io_thread.h"
#include "memgate/http/responder.h"

namespace memgate::http::detail {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr size_t kReadChunk = 4096;
constexpr int kMaxPipelinedPerTurn = 32;
constexpr int kClientClosedRequest = 499;  // nginx's status for a client that left before the answer

}  // namespace

Session::Session(IoThread& thread, tcp::socket socket)
    : thread_(thread), socket_(std::move(socket)), in_(thread.options().header_limit + 64 * 1024) {
  error_code ec;
  remote_ = format_endpoint(socket_.remote_endpoint(ec));
}

void Session::start() {
  state_ = State::kIdle;
  deadline_ = std::chrono::steady_clock::now() + thread_.options().idle_timeout;
  read();
}

void Session::check_deadline(SteadyTime now) {
  if (state_ == State::kClosed || now < deadline_) return;
  switch (state_) {
    case State::kIdle:
      bump(thread_.stats().idle_closes);
      close();
      break;
    case State::kReading:
      bump(thread_.stats().read_timeouts);
      error_response(408, "the request was not received in time");
      break;
    case State::kWriting:
    case State::kDraining:
      close();
      break;
    case State::kStreaming:
      // A stream is only on the clock while a write is outstanding: each
      // write, and each bit of progress, restarts deadline_ (start_write).
      // Between pieces a stream may stay quiet as long as its producer likes.
      if (writing_) {
        bump(thread_.stats().stream_drops);
        abandoned();
        close();
      }
      break;
    default:
      break;
  }
}

void Session::on_stop() {
  close_after_ = true;
  if (state_ == State::kIdle) close();
}

void Session::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  error_code ec;
  socket_.close(ec);
  detach_slot();
  if (ops_ == 0) {
    asio::post(thread_.ctx(), [this] { thread_.remove(this); });
  }
}

// Starts reading. Asio's reactor skips the speculative read when its last read
// drained the socket, so this costs no EAGAIN read and no epoll_ctl: the read
// happens when epoll reports data.
void Session::read() {
  if (reading_) return;
  size_t room = read_room();
  if (room == 0) {
    bump(thread_.stats().bad_requests);
    return error_response(431, "request header too large");
  }
  reading_ = true;
  ++ops_;
  socket_.async_read_some(in_.prepare(room), [this](error_code ec, size_t n) { on_read(ec, n); });
}

size_t Session::read_room() const {
  size_t max = in_.max_size() - in_.size();
  return std::min(max, std::max(kReadChunk, in_.capacity() - in_.size()));
}

void Session::on_read(error_code ec, size_t n) {
  --ops_;
  reading_ = false;
  if (state_ == State::kClosed) return done_op();
  if (state_ == State::kDraining) {
    in_.consume(in_.size());
    if (ec) return close();
    return drain();
  }
  after_read(ec, n);
}

void Session::after_read(error_code ec, size_t n) {
  // EOF or reset between requests (or inside one): nothing left to answer.
  if (ec) return close();
  in_.commit(n);
  read_time_ = std::chrono::steady_clock::now();
  if (state_ != State::kIdle && state_ != State::kReading) return;  // input parked until the response is out
  advance();
}

// While an async handler works (or a stream is open) no read is outstanding;
// the session waits for readability instead, so that a client that goes away
// is seen at once (see session.h). Bytes that arrive meanwhile (a pipelined
// request) are read at once and kept for after the response; with the buffer
// full, watching pauses until then.
void Session::watch() {
  // After the end of input a wait for readability would fire at once, for
  // ever: from then on only watch_for_reset() listens.
  if (watching_ || peer_eof_ || state_ == State::kClosed) return;
  watching_ = true;
  ++ops_;
  socket_.async_wait(tcp::socket::wait_read, [this](error_code ec) { on_watch(ec); });
}

void Session::on_watch(error_code ec) {
  --ops_;
  watching_ = false;
  if (state_ == State::kClosed) return done_op();
  if (state_ != State::kHandling && state_ != State::kStreaming) return;  // answered: reads took over
  if (ec) {
    abandoned();
    return close();
  }
  size_t room = read_room();
  if (room == 0) return;  // full of pipelined input: the read after the response resumes
  error_code rec;
  size_t n = socket_.read_some(in_.prepare(room), rec);
  if (rec == asio::error::would_block || rec == asio::error::try_again) return watch();
  if (rec == asio::error::eof) return peer_finished_sending();
  if (rec) {  // reset: the client is gone
    abandoned();
    return close();
  }
  in_.commit(n);
  read_time_ = std::chrono::steady_clock::now();
  watch();
}

// FIN while an answer is owed: the client sends no more, but may still read.
// The answer (and any complete request pipelined before the FIN) is served;
// the read after it sees the end of input and closes. An HTTP/1.1 client is
// sent an interim 100 once, so that a client that had closed for good answers
// with a reset the watch sees.
void Session::peer_finished_sending() {
  if (peer_eof_) return;
  peer_eof_ = true;
  if (version_ >= 11 && state_ == State::kHandling && !writing_ && pending_.empty()) {
    static constexpr std::string_view kProbe = "HTTP/1.1 100 Continue\r\n\r\n";
    error_code ec;
    socket_.write_some(asio::buffer(kProbe.data(), kProbe.size()), ec);  // best effort
  }
  watch_for_reset();
}

// Waits for the socket's error condition alone (EPOLLERR/EPOLLHUP): after a
// FIN, reads report end of input even once a reset has come, but the error
// condition is raised by the reset. Armed once; close() cancels it.
void Session::watch_for_reset() {
  if (state_ == State::kClosed) return;
  ++ops_;
  socket_.async_wait(tcp::socket::wait_error, [this](error_code ec) {
    --ops_;
    if (state_ == State::kClosed) return done_op();
    if (ec) return;  // cancelled: the session is closing anyway
    if (state_ == State::kHandling || state_ == State::kStreaming) abandoned();
    close();
  });
}

// The client went away before the response was complete: count the request
// (499, "client closed request", when no response had begun; a stream keeps
// the status it started with).
void Session::abandoned() {
  if (state_ == State::kHandling) status_ = kClientClosedRequest;
  bump(thread_.stats().client_aborts);
  record(std::chrono::steady_clock::now());
  streamed_ = false;
}

// Parses and serves what is buffered, then waits for more.
void Session::advance() {
  for (int turn = 0; turn < kMaxPipelinedPerTurn; ++turn) {
    switch (parse()) {
      case Parse::kNeedMore:
        return read();
      case Parse::kFailed:
        return;
      case Parse::kComplete:
        break;
    }
    if (!dispatch()) return;
  }
  // Many pipelined requests: let other connections run before continuing.
  ++ops_;
  asio::post(thread_.ctx(), [this] {
    --ops_;
    if (state_ == State::kClosed) return done_op();
    advance();
  });
}

Session::Parse Session::parse() {
  if (!parser_) {
    storage_.clear();
    parser_.emplace(storage_);
    parser_->header_limit(static_cast<uint32_t>(std::min<size_t>(thread_.options().header_limit, UINT32_MAX)));
    parser_->body_limit(static_cast<uint64_t>(thread_.options().body_limit));
    parser_->eager(true);
  }
  if (in_.size() == 0) return Parse::kNeedMore;
  if (state_ == State::kIdle) {
    state_ = State::kReading;
    deadline_ = read_time_ + thread_.options().read_timeout;
  }
  while (in_.size() > 0) {
    error_code ec;
    auto data = in_.data();
    size_t used = parser_->put(asio::const_buffer(data.data(), data.size()), ec);
    in_.consume(used);
    if (ec == bhttp::error::need_more) {
      maybe_continue();
      return Parse::kNeedMore;
    }
    if (ec) {
      bump(thread_.stats().bad_requests);
      if (storage_.refuse_status) {
        error_response(storage_.refuse_status, storage_.refuse_reason);
      } else if (ec == bhttp::error::header_limit) {
        error_response(431, "request header too large");
      } else if (ec == bhttp::error::body_limit) {
        error_response(413, "request body too large");
      } else {
        error_response(400, "malformed request: " + ec.message());
      }
      return Parse::kFailed;
    }
    if (parser_->is_done()) return Parse::kComplete;
    if (used == 0) break;
  }
  maybe_continue();
  return Parse::kNeedMore;
}

// Answers "Expect: 100-continue" once the header is in and the body is not.
void Session::maybe_continue() {
  if (storage_.expect_continue && parser_->is_header_done() && !parser_->is_done()) {
    storage_.expect_continue = false;
    std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
    error_code ec;
    socket_.write_some(asio::buffer(cont.data(), cont.size()), ec);  // best effort
  }
}

// Runs the handler for the parsed request. Returns true when the response was
// written at once and the connection is ready for the next request.
bool Session::dispatch() {
  state_ = State::kHandling;
  keep_ = parser_->keep_alive() && !close_after_ && !thread_.stopping();
  version_ = storage_.version;
  started_ = read_time_;
  parser_.reset();  // the request lives on in storage_; the next one gets a fresh parser

  RequestStorage& s = storage_;
  s.views.clear();
  for (const auto& f : s.fields) s.views.push_back({s.at(f.name_off, f.name_len), s.at(f.value_off, f.value_len)});
  RequestBuilder builder;
  builder.method(s.at(s.method_off, s.method_len))
      .target(s.at(s.target_off, s.target_len))
      .version(s.version)
      .keep_alive(keep_)
      .headers(s.views)
      .body(s.body)
      .remote_address(remote_)
      .id_source(id_buffer_, thread_.id_seed(), thread_.next_serial());
  const Request& req = builder.get();
  method_ = req.method();
  head_ = method_ == Method::kHead;

  RouteTable::Match match = thread_.routes().find(method_, req.path());
  route_ = match.route ? match.route->id : kUnmatchedRoute;
  if (match.route == nullptr) {
    Response r = Response::error(404, "not_found", "no route for " + std::string(req.path()));
    send(r);
    return finish_write_sync();
  }
  if (match.endpoint == nullptr) {
    Response r = Response::error(405, "method_not_allowed",
                                 std::string(req.method_string()) + " is not allowed on " + match.route->pattern);
    r.header("Allow", match.route->allow);
    send(r);
    return finish_write_sync();
  }
  const Endpoint& e = *match.endpoint;
  if (int priority = match.route->shed_priority;
      priority > 0 && priority <= thread_.controls().shed_level.load(std::memory_order_relaxed)) {
    thread_.controls().shed_requests.fetch_add(1, std::memory_order_relaxed);
    Response r = Response::error(503, "unavailable", "shedding load: the server is under memory pressure");
    r.header("Retry-After", "5");
    send(r);
    return finish_write_sync();
  }
  RequestObserver* observer = thread_.observer();
  switch (e.kind) {
    case Endpoint::Kind::kPending:
      send(*e.pending);
      return finish_write_sync();
    case Endpoint::Kind::kSync: {
      if (observer) observer->on_request_begin(route_, req);
      std::optional<Response> r;
      try {
        r.emplace(e.sync(req));
      } catch (const std::exception& ex) {
        r.emplace(Response::error(500, "internal", std::string("handler failed: ") + ex.what()));
      } catch (...) {
        r.emplace(Response::error(500, "internal", "handler failed"));
      }
      if (observer) observer->on_request_end(route_, r->status);
      send(*r);
      return finish_write_sync();
    }
    case Endpoint::Kind::kAsync: {
      auto slot = std::make_shared<AsyncSlot>();
      slot->ctx = thread_.shared_ctx();
      slot->session = this;
      slot_ = slot;
      noted_ = 0;
      if (observer) observer->on_request_begin(route_, req);
      try {
        e.async(req, Responder(std::move(slot)));
      } catch (...) {
        // The Responder, destroyed during unwinding, has already posted a 500.
      }
      if (observer) observer->on_request_end(route_, 0);
      if (slot_) watch();  // still owed: see the client go if it does
      return false;
    }
  }
  return false;
}

// Sends a final error response and closes after it.
void Session::error_response(int status, std::string message) {
  detach_slot();
  close_after_ = true;
  keep_ = false;
  route_ = kUnmatchedRoute;
  method_ = storage_.method_len ? parse_method(storage_.at(storage_.method_off, storage_.method_len)) : Method::kOther;
  head_ = false;
  started_ = std::chrono::steady_clock::now();
  pending_.clear();
  if (state_ == State::kStreaming || writing_) {  // cannot answer mid-response
    close();
    return;
  }
  Response r = Response::error(status, message);
  send(r);
  finish_write_sync();
}

void Session::detach_slot() {
  if (slot_) {
    slot_->session = nullptr;
    slot_->connected.store(false, std::memory_order_release);
    slot_.reset();
  }
}

void Session::done_op() {
  if (ops_ == 0) thread_.remove(this);
}

}  // namespace memgate::http::detail
