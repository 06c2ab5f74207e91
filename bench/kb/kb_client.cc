// kb_client: the load generator bench/kb/run drives memgate's search with.
//
// CONNECTIONS threads, one keep-alive loopback connection each (TCP_NODELAY),
// share one counter over PASSES x the requests in REQUESTS, so every request is
// sent exactly once per pass whatever the concurrency; each thread times its
// own requests (send to the last byte of the body). A thread stops when the
// counter is spent or MAX_SECONDS have passed, whichever comes first.
//
// Usage: kb_client PORT REQUESTS PASSES CONNECTIONS MAX_SECONDS [BODIES]
//   REQUESTS  one request a line: "GET <target>" or "POST <target> <json body>"
//   BODIES    if given, the body of every answer of the first pass is written
//             there, one line each: "<request index>\t<body>" (bodies are JSON
//             on one line)
// Prints one JSON object: requests, errors (non-2xx or broken), seconds, qps,
// p50_ms, p90_ms, p99_ms.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Request {
  std::string wire;  // the whole HTTP/1.1 request
};

struct Sample {
  size_t index;
  double ms;
};

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One connection's reader: keeps the bytes past the current answer.
class Conn {
 public:
  explicit Conn(int port) : port_(port) { fd_ = connect_to(port); }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Sends `wire` and reads the answer; false when the connection broke (it is
  // reopened for the next request).
  bool exchange(const std::string& wire, int* status, std::string* body) {
    if (fd_ < 0) fd_ = connect_to(port_);
    if (fd_ < 0) return false;
    size_t sent = 0;
    while (sent < wire.size()) {
      ssize_t n = ::send(fd_, wire.data() + sent, wire.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return reset();
      sent += static_cast<size_t>(n);
    }
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return reset();
    std::string head = buf_.substr(0, head_end);
    buf_.erase(0, head_end + 4);
    if (head.size() < 12) return reset();
    *status = std::atoi(head.c_str() + 9);
    std::string lower = head;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    body->clear();
    if (size_t p = lower.find("\r\ncontent-length:"); p != std::string::npos) {
      size_t len = std::strtoull(lower.c_str() + p + 17, nullptr, 10);
      while (buf_.size() < len)
        if (!fill()) return reset();
      body->assign(buf_, 0, len);
      buf_.erase(0, len);
    } else if (lower.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
      for (;;) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos)
          if (!fill()) return reset();
        size_t len = std::strtoull(buf_.c_str(), nullptr, 16);
        while (buf_.size() < eol + 2 + len + 2)
          if (!fill()) return reset();
        body->append(buf_, eol + 2, len);
        buf_.erase(0, eol + 2 + len + 2);
        if (len == 0) break;
      }
    } else {
      return reset();  // no framing we can follow
    }
    return true;
  }

 private:
  bool fill() {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  bool reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
    return false;
  }
  int port_;
  int fd_ = -1;
  std::string buf_;
};

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: kb_client PORT REQUESTS PASSES CONNECTIONS MAX_SECONDS [BODIES]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  int passes = std::clamp(std::atoi(argv[3]), 1, 1000);
  int connections = std::clamp(std::atoi(argv[4]), 1, 64);
  double max_seconds = std::clamp(std::atof(argv[5]), 0.1, 600.0);
  std::vector<Request> requests;
  {
    std::ifstream in(argv[2]);
    std::string line;
    while (std::getline(in, line) && requests.size() < 100000) {
      if (line.empty()) continue;
      size_t s1 = line.find(' ');
      if (s1 == std::string::npos) continue;
      std::string method = line.substr(0, s1);
      size_t s2 = line.find(' ', s1 + 1);
      std::string target = line.substr(s1 + 1, s2 == std::string::npos ? std::string::npos : s2 - s1 - 1);
      std::string wire = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      if (method == "POST") {
        std::string body = s2 == std::string::npos ? std::string() : line.substr(s2 + 1);
        wire += "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      } else {
        wire += "\r\n";
      }
      requests.push_back({std::move(wire)});
    }
  }
  if (requests.empty()) {
    std::fprintf(stderr, "kb_client: no requests in %s\n", argv[2]);
    return 2;
  }
  const size_t total = requests.size() * static_cast<size_t>(passes);
  std::atomic<size_t> next{0};
  std::atomic<size_t> errors{0};
  std::mutex mu;
  std::vector<Sample> samples;
  std::vector<std::pair<size_t, std::string>> bodies;
  bool keep_bodies = argc > 6;
  auto started = Clock::now();
  auto deadline = started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(max_seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&] {
      Conn conn(port);
      std::vector<Sample> mine;
      std::vector<std::pair<size_t, std::string>> my_bodies;
      std::string body;
      for (;;) {
        size_t i = next.fetch_add(1);
        if (i >= total || Clock::now() >= deadline) break;
        size_t r = i % requests.size();
        int status = 0;
        auto t0 = Clock::now();
        bool ok = conn.exchange(requests[r].wire, &status, &body);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!ok || status < 200 || status > 299) errors.fetch_add(1);
        mine.push_back({r, ms});
        if (keep_bodies && i < requests.size()) my_bodies.emplace_back(r, body);
      }
      std::lock_guard lock(mu);
      samples.insert(samples.end(), mine.begin(), mine.end());
      for (auto& b : my_bodies) bodies.push_back(std::move(b));
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  if (keep_bodies) {
    std::ofstream out(argv[6]);
    for (auto& [i, b] : bodies) out << i << '\t' << b << '\n';
  }
  std::vector<double> ms;
  ms.reserve(samples.size());
  for (const Sample& s : samples) ms.push_back(s.ms);
  size_t n = ms.size();
  double p50 = pct(ms, 50), p90 = pct(ms, 90), p99 = pct(ms, 99);
  std::printf(
      "{\"requests\": %zu, \"errors\": %zu, \"seconds\": %.3f, \"qps\": %.1f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
      "\"p99_ms\": %.3f}\n",
      n, errors.load(), seconds, static_cast<double>(n) / seconds, p50, p90, p99);
  return 0;
}
