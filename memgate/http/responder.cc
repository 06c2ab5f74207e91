// Responder and StreamWriter (responder.h): what a handler on any thread does
// reaches its connection by posting to the connection's IO thread through the
// AsyncSlot they share; once the session has detached, a post does nothing.
#include "memgate/http/responder.h"

#include <boost/asio/post.hpp>

#include "memgate/http/session.h"

namespace memgate::http {

namespace asio = boost::asio;

namespace {

template <typename F>
void post_to_session(const std::shared_ptr<detail::AsyncSlot>& slot, F&& f) {
  if (auto ctx = slot->ctx.lock()) {
    asio::post(*ctx, [slot, f = std::forward<F>(f)]() mutable {
      if (slot->session) f(*slot->session);
    });
  }
}

}  // namespace

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (slot_) std::move(*this).send(Response::error(500, "internal", "the handler dropped its responder"));
    slot_ = std::move(other.slot_);
  }
  return *this;
}

Responder::~Responder() {
  if (slot_) std::move(*this).send(Response::error(500, "internal", "the handler dropped its responder"));
}

void Responder::send(Response response) && {
  if (!slot_) return;
  auto slot = std::move(slot_);
  post_to_session(slot, [r = std::move(response)](detail::Session& s) mutable { s.async_response(std::move(r)); });
}

StreamWriter Responder::stream(int status, std::string content_type,
                               std::vector<std::pair<std::string, std::string>> headers) && {
  if (!slot_) return StreamWriter();
  auto slot = std::move(slot_);
  post_to_session(slot, [status, ct = std::move(content_type), h = std::move(headers)](detail::Session& s) mutable {
    s.stream_begin(status, std::move(ct), std::move(h));
  });
  return StreamWriter(std::move(slot));
}

bool Responder::connected() const { return slot_ && slot_->connected.load(std::memory_order_acquire); }

StreamWriter& StreamWriter::operator=(StreamWriter&& other) noexcept {
  if (this != &other) {
    finish();
    slot_ = std::move(other.slot_);
  }
  return *this;
}

StreamWriter::~StreamWriter() { finish(); }

bool StreamWriter::write(std::string data) {
  if (!slot_ || !slot_->connected.load(std::memory_order_acquire)) return false;
  if (data.empty()) return true;
  if (slot_->pending.load(std::memory_order_relaxed) > kMaxPending) {  // the client is this far behind: drop it
    slot_->connected.store(false, std::memory_order_release);
    post_to_session(slot_, [](detail::Session& s) { s.drop_stream(); });
    return false;
  }
  size_t n = data.size();
  slot_->pending.fetch_add(n, std::memory_order_relaxed);
  if (auto ctx = slot_->ctx.lock()) {
    asio::post(*ctx, [n, slot = slot_, d = std::move(data)]() mutable {
      if (slot->session) {
        slot->session->stream_data(std::move(d));  // takes the piece over in the count
      } else {
        slot->pending.fetch_sub(n, std::memory_order_relaxed);
      }
    });
  } else {
    slot_->pending.fetch_sub(n, std::memory_order_relaxed);
  }
  return true;
}

void StreamWriter::finish() {
  if (!slot_) return;
  auto slot = std::move(slot_);
  post_to_session(slot, [](detail::Session& s) { s.stream_end(); });
}

bool StreamWriter::connected() const { return slot_ && slot_->connected.load(std::memory_order_acquire); }

size_t StreamWriter::queued_bytes() const { return slot_ ? slot_->pending.load(std::memory_order_relaxed) : 0; }

}  // namespace memgate::http
