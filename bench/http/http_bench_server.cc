// memgate_http_bench_server: the HTTP layer alone, serving /healthz as the real
// server does, for bench/http/run to compare with nginx.
//
// Environment: PORT (default 8080; 0 picks one), IO_THREADS (default 1),
// HOST (default 127.0.0.1). Request statistics are on, as in production. Prints
// "listening on <port>" once bound, and stops on SIGINT/SIGTERM.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "memgate/http/server.h"

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

}  // namespace

int main() {
  using memgate::http::Method;
  using memgate::http::Request;
  using memgate::http::Response;
  memgate::http::ServerOptions options;
  const char* host = std::getenv("HOST");
  options.host = host && *host ? host : "127.0.0.1";
  options.port = static_cast<uint16_t>(env_int("PORT", 8080));
  options.io_threads = env_int("IO_THREADS", 1);
  options.request_stats = true;
  memgate::http::Server server(options);
  auto route = server.router().add(Method::kGet, "/healthz",
                                   [](const Request&) { return Response::json(200, R"({"status":"ok"})"); });
  if (!route.ok()) return 1;
  memgate::Status s = server.start();
  if (!s.ok()) {
    std::fprintf(stderr, "memgate_http_bench_server: %s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("listening on %u\n", server.port());
  std::fflush(stdout);
  memgate::http::stop_on_signal(server, std::chrono::milliseconds(2000));
  uint64_t total = 0;
  for (const auto& row : server.stats()) total += row.count;
  std::fprintf(stderr, "memgate_http_bench_server: served %llu requests\n", static_cast<unsigned long long>(total));
  return 0;
}
