// REDIS_URL parsing on top of Boost.URL, with our own checks for what Redis needs
// (a host, a port in range, a whole db number, a socket path). Messages describe the
// problem without quoting the URL, because the URL may carry a password.
#include "memgate/coord/redis_settings.h"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <charconv>

namespace memgate::coord {
namespace {

constexpr std::string_view kForms =
    " (expected redis://[user][:password]@host:port[/db], rediss://... for TLS, or unix:///path/to/socket)";

Status bad(std::string what) {
  return InvalidArgument(std::string(kRedisUrlVariable) + " is not valid: " + what + std::string(kForms));
}

Result<int> parse_db(std::string_view text) {
  int db = -1;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), db);
  if (ec != std::errc() || p != text.data() + text.size() || db < 0 || db > 1'000'000) {
    return bad("the database number must be a whole number >= 0");
  }
  return db;
}

}  // namespace

std::string Endpoint::describe() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedisSettings::describe() const {
  switch (transport) {
    case Transport::kUnix:
      return "unix://" + unix_path + (db ? "?db=" + std::to_string(db) : "");
    case Transport::kTcp:
    case Transport::kTls: {
      bool v6 = host.find(':') != std::string::npos;
      std::string h = v6 ? "[" + host + "]" : host;
      return std::string(transport == Transport::kTls ? "rediss://" : "redis://") + h + ":" +
             std::to_string(port) + "/" + std::to_string(db);
    }
  }
  return "";
}

Result<RedisSettings> parse_redis_url(std::string_view text) {
  if (text.empty()) return bad("it is empty");
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) return bad("it is not a URL");
  const boost::urls::url_view& u = *parsed;
  RedisSettings s;
  std::string scheme(u.scheme());
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "redis") s.transport = Transport::kTcp;
  else if (scheme == "rediss") s.transport = Transport::kTls;
  else if (scheme == "unix") s.transport = Transport::kUnix;
  else return bad("the scheme must be redis, rediss or unix");

  if (u.has_userinfo()) {
    s.username = u.user();
    if (u.has_password()) s.password = u.password();
  }

  if (s.transport == Transport::kUnix) {
    if (!u.encoded_host().empty()) return bad("a unix socket URL has no host (use unix:///path/to/socket)");
    s.unix_path = u.path();
    if (s.unix_path.empty() || s.unix_path[0] != '/') return bad("the unix socket path must be absolute");
    for (auto param : u.params()) {
      if (param.key == "db") {
        auto db = parse_db(param.value);
        if (!db.ok()) return db.status();
        s.db = *db;
      } else if (param.key == "password") {
        s.password = param.value;
      } else if (param.key == "user" || param.key == "username") {
        s.username = param.value;
      } else {
        return bad("unknown query parameter '" + std::string(param.key) + "' (known: db, user, password)");
      }
    }
    return s;
  }

  if (!u.has_authority() || u.encoded_host().empty()) return bad("the host is missing");
  s.host = u.host_address();
  if (u.has_port()) {
    std::string_view port = u.port();
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
      return bad("the port must be a number 1-65535");
    }
    s.port = static_cast<uint16_t>(value);
  }
  std::string path = u.path();
  if (!path.empty() && path != "/") {
    auto db = parse_db(std::string_view(path).substr(1));
    if (!db.ok()) return db.status();
    s.db = *db;
  }
  if (u.has_query() || u.has_fragment()) {
    return bad("query parameters and fragments are not accepted in redis:// URLs");
  }
  return s;
}

}  // namespace memgate::coord
