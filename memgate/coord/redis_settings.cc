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
    " (expected redis://[user][:password]@host:port[/db], rediss://... for TLS, unix:///path/to/socket, or "
    "redis-sentinel://[user:password@]host1:26379,host2:26379/MASTER_NAME[?db=N], or "
    "redis-cluster://[user:password@]host1:6379,host2:6379)";

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

// The "db=N&db=M" query of a sentinel or cluster URL: the last db given, or
// `db` unchanged when there is none; any other parameter is refused.
Result<int> parse_db_query(std::string_view query, int db) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    if (key != "db" || eq == std::string_view::npos)
      return bad("unknown query parameter '" + std::string(key.substr(0, 40)) + "' (known: db)");
    auto parsed = parse_db(param.substr(eq + 1));
    if (!parsed.ok()) return parsed.status();
    db = *parsed;
  }
  return db;
}

Result<std::string> percent_decode(std::string_view in, std::string_view what) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = i + 1 < in.size() ? hex(in[i + 1]) : -1, lo = i + 2 < in.size() ? hex(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return bad("a bad percent-escape in the " + std::string(what));
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

Result<uint16_t> parse_port(std::string_view port) {
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
    return bad("the port must be a number 1-65535");
  }
  return static_cast<uint16_t>(value);
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

// "[user[:password]@]" at the front of `authority`, percent-decoded into `s`;
// returns what follows the '@'.
Result<std::string_view> take_userinfo(std::string_view authority, RedisSettings& s) {
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return authority;
  std::string_view userinfo = authority.substr(0, at);
  size_t colon = userinfo.find(':');
  auto user = percent_decode(userinfo.substr(0, colon), "user name");
  if (!user.ok()) return user.status();
  s.username = *user;
  if (colon != std::string_view::npos) {
    auto password = percent_decode(userinfo.substr(colon + 1), "password");
    if (!password.ok()) return password.status();
    s.password = *password;
  }
  return authority.substr(at + 1);
}

// "h1[:p1],h2[:p2],..." (IPv6 in brackets); `what` names an item in errors.
Result<std::vector<Endpoint>> parse_host_list(std::string_view authority, uint16_t default_port,
                                              const std::string& what) {
  std::vector<Endpoint> out;
  while (!authority.empty()) {
    size_t comma = authority.find(',');
    std::string_view item = authority.substr(0, comma);
    authority = comma == std::string_view::npos ? std::string_view() : authority.substr(comma + 1);
    if (comma != std::string_view::npos && authority.empty()) return bad("a " + what + " address is empty");
    Endpoint e;
    e.port = default_port;
    std::string_view port;
    if (!item.empty() && item[0] == '[') {
      size_t close = item.find(']');
      if (close == std::string_view::npos) return bad("an IPv6 " + what + " address lacks its ']'");
      e.host = std::string(item.substr(1, close - 1));
      std::string_view after = item.substr(close + 1);
      if (!after.empty()) {
        if (after[0] != ':') return bad("a " + what + " address is not host:port");
        port = after.substr(1);
        if (port.empty()) return bad("the port must be a number 1-65535");
      }
    } else {
      size_t colon = item.find(':');
      e.host = std::string(item.substr(0, colon));
      if (colon != std::string_view::npos) {
        port = item.substr(colon + 1);
        if (port.empty()) return bad("the port must be a number 1-65535");
      }
    }
    if (e.host.empty()) return bad("a " + what + " address has no host");
    if (!port.empty()) {
      auto p = parse_port(port);
      if (!p.ok()) return p.status();
      e.port = *p;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// redis-sentinel://[user:password@]host1[:port1],host2[:port2]/MASTER_NAME[?db=N]
Result<RedisSettings> parse_sentinel_url(std::string_view rest, Transport transport) {
  RedisSettings s;
  s.transport = transport;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return bad("the master name is missing (.../MASTER_NAME)");
  std::string_view tail = rest.substr(slash + 1);
  auto authority = take_userinfo(rest.substr(0, slash), s);
  if (!authority.ok()) return authority.status();
  if (authority->empty()) return bad("no sentinel is given (host1:26379,host2:26379)");
  auto sentinels = parse_host_list(*authority, 26379, "sentinel");
  if (!sentinels.ok()) return sentinels.status();
  s.sentinels = std::move(*sentinels);
  std::string_view name = tail.substr(0, tail.find('?'));
  auto master = percent_decode(name, "master name");
  if (!master.ok()) return master.status();
  if (master->empty() || master->find('/') != std::string::npos)
    return bad("the master name is missing (.../MASTER_NAME)");
  s.sentinel_master = *master;
  if (size_t q = tail.find('?'); q != std::string_view::npos) {
    auto db = parse_db_query(tail.substr(q + 1), s.db);
    if (!db.ok()) return db.status();
    s.db = *db;
  }
  s.host = s.sentinels.front().host;  // until resolved; never used to connect
  s.port = 0;
  return s;
}


// redis-cluster://[user:password@]host1[:port1],host2[:port2][/][?db=0]
Result<RedisSettings> parse_cluster_url(std::string_view rest, Transport transport) {
  RedisSettings s;
  s.transport = transport;
  size_t end = rest.find_first_of("/?");
  std::string_view tail = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  auto authority = take_userinfo(rest.substr(0, std::min(end, rest.size())), s);
  if (!authority.ok()) return authority.status();
  if (authority->empty()) return bad("no cluster node is given (host1:6379,host2:6379)");
  auto seeds = parse_host_list(*authority, 6379, "cluster node");
  if (!seeds.ok()) return seeds.status();
  if (seeds->size() > 64) return bad("more than 64 cluster nodes are given");
  s.cluster_seeds = std::move(*seeds);
  if (!tail.empty() && tail[0] == '/') tail.remove_prefix(1);
  if (!tail.empty() && tail[0] != '?') return bad("a Redis Cluster has only database 0: nothing may follow the '/'");
  if (!tail.empty()) tail.remove_prefix(1);
  auto db = parse_db_query(tail, 0);
  if (!db.ok()) return db.status();
  if (*db != 0) return bad("a Redis Cluster has only database 0");
  s.host = s.cluster_seeds.front().host;
  s.port = s.cluster_seeds.front().port;
  return s;
}
}  // namespace

std::string Endpoint::describe() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedisSettings::describe() const {
  if (!cluster_seeds.empty()) {
    std::string out = transport == Transport::kTls ? "rediss-cluster://" : "redis-cluster://";
    for (size_t i = 0; i < cluster_seeds.size(); ++i) out += (i ? "," : "") + cluster_seeds[i].describe();
    return out;
  }
  if (!sentinels.empty()) {
    std::string out = transport == Transport::kTls ? "rediss-sentinel://" : "redis-sentinel://";
    for (size_t i = 0; i < sentinels.size(); ++i) out += (i ? "," : "") + sentinels[i].describe();
    return out + "/" + sentinel_master + "/" + std::to_string(db);
  }
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
  if (starts_with_ci(text, "redis-sentinel://")) return parse_sentinel_url(text.substr(17), Transport::kTcp);
  if (starts_with_ci(text, "rediss-sentinel://")) return parse_sentinel_url(text.substr(18), Transport::kTls);
  if (starts_with_ci(text, "redis-cluster://")) return parse_cluster_url(text.substr(16), Transport::kTcp);
  if (starts_with_ci(text, "rediss-cluster://")) return parse_cluster_url(text.substr(17), Transport::kTls);
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
