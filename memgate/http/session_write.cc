// Session, writing side: responses serialised by hand into a reused string
// (the Date line comes prepared from the thread), written with a non-blocking
// write first and an async write only for what the kernel did not take;
// streams framed as chunks, their pending bytes counted for the writer; and
// what happens once a response is out (keep-alive, or a lingering close). The
// reading side is session.cc; the state machine is described in session.h.
#include <algorithm>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>

#include "memgate/http/io_thread.h"
#include "memgate/http/responder.h"
#include "memgate/http/session.h"

namespace memgate::http::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr size_t kShrinkAbove = 64 * 1024;

bool has_crlf(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n') return true;
  }
  return false;
}

}  // namespace

void Session::async_response(Response&& r) {
  detach_slot();
  send(r);
  if (finish_write_sync()) advance();
}

void Session::stream_begin(int status, std::string&& content_type,
                           std::vector<std::pair<std::string, std::string>>&& headers) {
  state_ = State::kStreaming;
  streamed_ = true;
  chunked_ = version_ >= 11;
  if (!chunked_) close_after_ = true;
  keep_ = !close_after_ && keep_;
  status_ = status;
  write_head(status, content_type, headers, std::nullopt);
  flush_and_continue();
  note_buffered();
}

void Session::stream_data(std::string&& data) {
  if (state_ != State::kStreaming || data.empty()) {
    if (slot_) slot_->pending.fetch_sub(data.size(), std::memory_order_relaxed);
    return;
  }
  if (chunked_) {
    char buf[20];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, data.size(), 16);
    pending_.append(buf, end);
    pending_ += "\r\n";
    pending_ += data;
    pending_ += "\r\n";
  } else {
    pending_ += data;
  }
  note_buffered(data.size());  // the piece moves from posted to held
  if (buffered() > StreamWriter::kMaxPending) return drop_stream();
  flush_and_continue();
  note_buffered();
}

void Session::drop_stream() {
  if (state_ != State::kStreaming) return;
  bump(thread_.stats().stream_drops);
  abandoned();
  close();
}

void Session::stream_end() {
  if (state_ != State::kStreaming) return;
  if (chunked_) pending_ += "0\r\n\r\n";
  stream_done_ = true;
  detach_slot();
  flush_and_continue();
}

// Serialises a complete response into pending_ and starts writing it.
void Session::send(const Response& r) {
  state_ = State::kWriting;
  if (r.close) keep_ = false;
  if (close_after_ || thread_.stopping()) keep_ = false;
  if (thread_.controls().keepalive_disabled.load(std::memory_order_relaxed)) keep_ = false;
  status_ = r.status;
  write_head(r.status, r.content_type, r.headers, r.body.size());
  bool no_body = head_ || r.status == 204 || r.status == 304 || r.status < 200;
  if (!no_body) pending_ += r.body;
  parser_.reset();
  sent_at_ = std::chrono::steady_clock::now();
  record(sent_at_);
  wrote_all_ = flush();
}

void Session::record(SteadyTime now) {
  if (!thread_.options().request_stats) return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count();
  thread_.stats().record(route_, method_, status_, static_cast<uint64_t>(std::max<int64_t>(ns, 0)));
}

// Serialises the status line and headers into pending_. One resize, then
// plain copies: the common header lines ("Server", "Date") come prepared from
// the thread, refreshed once a second.
void Session::write_head(int status, std::string_view content_type,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         std::optional<size_t> content_length) {
  using namespace std::string_view_literals;
  status = std::clamp(status, 100, 999);
  std::string_view reason = reason_phrase(status);
  std::string_view common = thread_.common_headers();
  bool ct = !content_type.empty() && !has_crlf(content_type);
  size_t need = 16 + reason.size() + common.size() + (ct ? 16 + content_type.size() : 0) + 48 + 26;
  for (const auto& [name, value] : headers) need += name.size() + value.size() + 4;
  std::string& o = pending_;
  size_t start = o.size();
  o.resize(start + need);
  char* p = o.data() + start;
  auto put = [&p](std::string_view v) {
    std::memcpy(p, v.data(), v.size());
    p += v.size();
  };
  put(version_ >= 11 ? "HTTP/1.1 "sv : "HTTP/1.0 "sv);
  p[0] = static_cast<char>('0' + status / 100);
  p[1] = static_cast<char>('0' + status / 10 % 10);
  p[2] = static_cast<char>('0' + status % 10);
  p[3] = ' ';
  p += 4;
  put(reason);
  put("\r\n"sv);
  put(common);
  if (ct) {
    put("Content-Type: "sv);
    put(content_type);
    put("\r\n"sv);
  }
  if (content_length) {
    put("Content-Length: "sv);
    p = std::to_chars(p, p + 20, *content_length).ptr;
    put("\r\n"sv);
  } else if (chunked_) {
    put("Transfer-Encoding: chunked\r\n"sv);
  }
  for (const auto& [name, value] : headers) {
    if (name.empty() || has_crlf(name) || has_crlf(value)) continue;
    put(name);
    put(": "sv);
    put(value);
    put("\r\n"sv);
  }
  if (!keep_) {
    put("Connection: close\r\n"sv);
  } else if (version_ < 11) {
    put("Connection: keep-alive\r\n"sv);
  }
  put("\r\n"sv);
  o.resize(static_cast<size_t>(p - o.data()));
}

// Hands pending_ to the socket. Returns true when all of it was written at
// once; otherwise an async write is under way (or the connection closed).
bool Session::flush() {
  if (writing_) return false;
  if (pending_.empty()) return true;
  out_.swap(pending_);
  pending_.clear();
  error_code ec;
  size_t n = socket_.write_some(asio::buffer(out_), ec);
  if (!ec && n == out_.size()) {
    out_.clear();
    out_off_ = 0;
    return true;
  }
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    close();
    return false;
  }
  out_off_ = ec ? 0 : n;
  start_write();
  return false;
}

// Writes the rest of out_ piece by piece (write_some, not the composed
// async_write), so that every bit of progress is seen: it restarts the write
// deadline (a write that makes no progress for read_timeout is closed by the
// sweep) and updates what a stream's writer sees as pending.
void Session::start_write() {
  writing_ = true;
  ++ops_;
  deadline_ = std::chrono::steady_clock::now() + thread_.options().read_timeout;
  socket_.async_write_some(asio::buffer(out_.data() + out_off_, out_.size() - out_off_),
                           [this](error_code ec, size_t n) { on_written(ec, n); });
}

// Brings the slot's pending count up to date; `taken` bytes of the change
// were already counted there as posted (modular arithmetic: may go down).
void Session::note_buffered(size_t taken) {
  if (!slot_) return;
  size_t now = buffered();
  slot_->pending.fetch_add(now - noted_ - taken, std::memory_order_relaxed);
  noted_ = now;
}

void Session::on_written(error_code ec, size_t n) {
  --ops_;
  writing_ = false;
  if (state_ == State::kClosed) return done_op();
  if (ec) {
    if (state_ == State::kStreaming) abandoned();
    return close();
  }
  out_off_ += n;
  if (out_off_ < out_.size()) {
    start_write();
    return note_buffered();
  }
  out_.clear();
  out_off_ = 0;
  if (!pending_.empty()) {
    bool all = flush();
    note_buffered();
    if (!all) return;
  }
  note_buffered();
  if (state_ == State::kStreaming) {
    if (stream_done_ && finish_response()) advance();
    return;
  }
  if (state_ == State::kWriting && finish_response()) advance();
}

// After send(): if the write completed at once, finish the response.
bool Session::finish_write_sync() {
  if (state_ == State::kClosed || !wrote_all_) return false;
  return finish_response();
}

void Session::flush_and_continue() {
  if (flush() && state_ == State::kStreaming && stream_done_ && finish_response()) advance();
}

// The response is fully written: count it, then keep the connection or close
// it. Returns true when the session is ready for the next request.
bool Session::finish_response() {
  SteadyTime now = sent_at_;
  if (streamed_) {  // a stream counts when it ends; others when handed to the socket
    now = std::chrono::steady_clock::now();
    record(now);
  }
  streamed_ = false;
  // Bytes already buffered (pipelined) start their clock now, not when they arrived.
  if (read_time_ < now) read_time_ = now;
  chunked_ = false;
  stream_done_ = false;
  if (!keep_) {
    linger_close(now);
    return false;
  }
  if (out_.capacity() > kShrinkAbove) std::string().swap(out_);
  if (pending_.capacity() > kShrinkAbove) std::string().swap(pending_);
  if (storage_.body.capacity() > kShrinkAbove) std::string().swap(storage_.body);
  state_ = State::kIdle;
  deadline_ = now + thread_.options().idle_timeout;
  return true;
}

// Half-closes and reads until the peer closes (or the deadline), so a client
// still sending does not get a reset that would destroy our response.
void Session::linger_close(SteadyTime now) {
  state_ = State::kDraining;
  deadline_ = now + std::min<std::chrono::milliseconds>(thread_.options().read_timeout, std::chrono::seconds(2));
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  drain();
}

void Session::drain() {
  if (reading_) return;
  in_.consume(in_.size());
  reading_ = true;
  ++ops_;
  socket_.async_read_some(in_.prepare(4096), [this](error_code ec, size_t n) { on_read(ec, n); });
}

}  // namespace memgate::http::detail
