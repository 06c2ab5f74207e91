#include "memgate/coach/fake_provider.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/json.hpp>
#include <cstring>
#include <optional>
#include <sstream>

namespace memgate::coach::testing {

// One accepted connection, plain or TLS.
struct FakeProvider::Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  ssize_t recv(char* buf, size_t n) {
    if (!ssl) return ::recv(fd, buf, n, 0);
    int r = SSL_read(ssl, buf, static_cast<int>(n));
    return r > 0 ? r : 0;
  }
  bool buffered() const { return ssl && SSL_pending(ssl) > 0; }
};

namespace {

bool send_all(FakeProvider::Conn& c, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = c.ssl ? SSL_write(c.ssl, data.data(), static_cast<int>(data.size()))
                      : ::send(c.fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string chunk(std::string_view data) {
  std::ostringstream o;
  o << std::hex << data.size() << "\r\n" << data << "\r\n";
  return o.str();
}

std::string stream_event(std::string_view piece, bool last, std::string_view finish = "stop") {
  std::string e = R"(data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":"fake-model","choices":[{"index":0,"delta":{)";
  if (!piece.empty()) e += R"("content":")" + json_escape(piece) + "\"";
  e += last ? R"(},"finish_reason":")" + std::string(finish) + R"("}]})" : std::string(R"(},"finish_reason":null}]})");
  return e + "\n\n";
}

// What a request asked for, read as a server reads its JSON body.
struct Asked {
  bool stream = false;
  bool stream_options = false;  // the key is there at all
  bool include_usage = false;
  std::optional<int64_t> max_tokens;  // under either name
};
Asked read_request(const std::string& body) {
  Asked a;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return a;
  const boost::json::object& o = v.as_object();
  if (auto* s = o.if_contains("stream"); s && s->is_bool()) a.stream = s->as_bool();
  if (auto* so = o.if_contains("stream_options")) {
    a.stream_options = true;
    if (so->is_object())
      if (auto* iu = so->as_object().if_contains("include_usage"); iu && iu->is_bool()) a.include_usage = iu->as_bool();
  }
  for (const char* name : {"max_completion_tokens", "max_tokens"})
    if (auto* m = o.if_contains(name); m && m->is_int64() && m->as_int64() > 0) a.max_tokens = m->as_int64();
  return a;
}

std::string usage_json(size_t completion) {
  return R"({"prompt_tokens":10,"completion_tokens":)" + std::to_string(completion) +
         R"(,"total_tokens":)" + std::to_string(10 + completion) + "}";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::unique_ptr<FakeProvider> FakeProvider::start(const std::string& cert_file, const std::string& key_file) {
  std::unique_ptr<FakeProvider> p(new FakeProvider());
  if (!cert_file.empty()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return nullptr;
    p->tls_ = ctx;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return nullptr;
  }
  p->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listen_fd_ < 0) return nullptr;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return nullptr;
  if (::listen(p->listen_fd_, 128) != 0) return nullptr;
  socklen_t len = sizeof a;
  ::getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  p->port_ = ntohs(a.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->accept_loop(); });
  return p;
}

FakeProvider::~FakeProvider() {
  stopping_.store(true);
  cv_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (tls_) SSL_CTX_free(static_cast<SSL_CTX*>(tls_));
}

void FakeProvider::set_pieces(std::vector<std::string> pieces) {
  std::lock_guard lock(mu_);
  pieces_ = std::move(pieces);
}

void FakeProvider::set_error_body(std::string body) {
  std::lock_guard lock(mu_);
  error_body_ = std::move(body);
}

void FakeProvider::set_usage(std::string usage_json) {
  std::lock_guard lock(mu_);
  usage_ = std::move(usage_json);
}

void FakeProvider::release() {
  {
    std::lock_guard lock(mu_);
    gate_open_ = true;
  }
  cv_.notify_all();
}

int FakeProvider::requests() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(bodies_.size());
}

std::vector<std::string> FakeProvider::bodies() const {
  std::lock_guard lock(mu_);
  return bodies_;
}

std::vector<std::string> FakeProvider::authorizations() const {
  std::lock_guard lock(mu_);
  return auths_;
}

bool FakeProvider::wait_for_requests(int n, std::chrono::milliseconds within) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, within, [&] { return static_cast<int>(bodies_.size()) >= n; });
}

bool FakeProvider::wait_for_closed_by_client(int n, std::chrono::milliseconds within) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, within, [&] { return closed_by_client_.load() >= n; });
}

void FakeProvider::accept_loop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connections_.fetch_add(1);
    std::lock_guard lock(mu_);
    workers_.emplace_back([this, fd] {
      Conn c;
      c.fd = fd;
      if (tls_) {
        c.ssl = SSL_new(static_cast<SSL_CTX*>(tls_));
        SSL_set_fd(c.ssl, fd);
        timeval tv{10, 0};  // a client that never finishes its handshake
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (SSL_accept(c.ssl) == 1) serve(c);
        SSL_free(c.ssl);
      } else {
        serve(c);
      }
      ::close(fd);
    });
  }
}

bool FakeProvider::peer_closed(int fd) const {
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

bool FakeProvider::wait_gate(int fd) {
  std::unique_lock lock(mu_);
  for (int i = 0; i < 3000; ++i) {  // at most ~60 s
    if (gate_open_) return true;
    if (stopping_.load()) return false;
    if (peer_closed(fd)) {
      closed_by_client_.fetch_add(1);
      cv_.notify_all();
      return false;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(20));
  }
  return false;
}

void FakeProvider::serve(Conn& conn) {
  int fd = conn.fd;
  std::string in;
  char buf[8192];
  for (int request = 0; request < 1000 && !stopping_.load(); ++request) {
    // Read a head and its body, polling so a stop wakes us.
    size_t head_end;
    int idle_polls = 0;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      if (!conn.buffered()) {
        pollfd p{fd, POLLIN, 0};
        int r = ::poll(&p, 1, 50);
        if (stopping_.load() || ++idle_polls > 1200) return;
        if (r <= 0) continue;
      }
      ssize_t n = conn.recv(buf, sizeof buf);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    std::string head = lower(in.substr(0, head_end));
    size_t length = 0;
    if (size_t at = head.find("content-length:"); at != std::string::npos) length = std::stoul(head.substr(at + 15));
    std::string auth;
    if (size_t at = head.find("authorization:"); at != std::string::npos) {
      size_t eol = head.find("\r\n", at);
      auth = in.substr(at + 14, (eol == std::string::npos ? head.size() : eol) - at - 14);
      while (!auth.empty() && auth.front() == ' ') auth.erase(0, 1);
    }
    while (in.size() < head_end + 4 + length) {
      ssize_t n = conn.recv(buf, sizeof buf);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
    }
    std::string body = in.substr(head_end + 4, length);
    in.erase(0, head_end + 4 + length);
    Asked asked = read_request(body);
    bool stream = asked.stream;
    std::vector<std::string> pieces;
    std::string error_body;
    std::string usage_override;
    {
      std::lock_guard lock(mu_);
      bodies_.push_back(body);
      auths_.push_back(auth);
      pieces = pieces_;
      error_body = error_body_;
      usage_override = usage_;
    }
    std::string finish = "stop";
    if (asked.max_tokens && pieces.size() > static_cast<size_t>(*asked.max_tokens)) {
      pieces.resize(static_cast<size_t>(*asked.max_tokens));
      finish = "length";
    }
    std::string usage = usage_override.empty() ? usage_json(pieces.size()) : usage_override;
    cv_.notify_all();

    Mode mode = mode_.load();
    if (head.rfind("post /v1/chat/completions ", 0) != 0) {
      std::string b = R"({"error":{"message":"no such route"}})";
      send_all(conn, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(b.size()) + "\r\n\r\n" + b);
      continue;
    }
    if (asked.stream_options && reject_stream_options_.load()) {
      std::string b = R"({"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error","param":"stream_options","code":null}})";
      if (!send_all(conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(b.size()) + "\r\n\r\n" + b))
        return;
      continue;
    }
    switch (mode) {
      case Mode::kError: {
        const std::string& b = error_body;
        if (!send_all(conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(b.size()) + "\r\n\r\n" + b))
          return;
        continue;
      }
      case Mode::kHang:
        wait_gate(fd);  // the gate stays shut unless the test opens it
        return;
      case Mode::kDrop:
        if (stream) {
          send_all(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           chunk(stream_event(pieces.empty() ? "" : pieces[0], false)));
        } else {
          send_all(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"id\":");
        }
        return;
      case Mode::kEndlessHead:
      case Mode::kEndlessChunkHeader: {
        std::string start = mode == Mode::kEndlessHead
                                ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Endless: "
                                : "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "1;ext=";
        if (!send_all(conn, start)) return;
        const std::string filler(64 * 1024, 'a');
        for (size_t sent = 0; sent < kEndlessBytes && !stopping_.load(); sent += filler.size())
          if (!send_all(conn, filler)) break;  // the client gave up: what we want
        return;
      }
      case Mode::kOk:
      case Mode::kGated:
        break;
    }
    std::string all;
    for (auto& p : pieces) all += p;
    if (!stream) {
      if (mode == Mode::kGated && !wait_gate(fd)) return;
      std::string b = R"({"id":"chatcmpl-fake","object":"chat.completion","created":1700000000,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":")" +
                      json_escape(all) + R"("},"finish_reason":")" + finish + R"("}],"usage":)" + usage + "}";
      if (!send_all(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(b.size()) + "\r\n\r\n" + b))
        return;
      continue;
    }
    if (!send_all(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"))
      return;
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (!send_all(conn, chunk(stream_event(pieces[i], false)))) return;
      if (i == 0 && mode == Mode::kGated && !wait_gate(fd)) return;
    }
    std::string end = chunk(stream_event("", true, finish));
    if (asked.include_usage)
      end += chunk(R"(data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":"fake-model","choices":[],"usage":)" +
                   usage + "}\n\n");
    if (!send_all(conn, end + chunk("data: [DONE]\n\n") + "0\r\n\r\n")) return;
  }
}

}  // namespace memgate::coach::testing
