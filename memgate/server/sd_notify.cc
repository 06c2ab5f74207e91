// The few lines of the sd_notify protocol. systemd's own client (libsystemd's
// sd_notify) does the same: parse $NOTIFY_SOCKET into a sockaddr_un, send the
// text with sendmsg. We open the socket once at start rather than per call,
// because WATCHDOG=1 goes out from an IO thread every few seconds and
// socket()+close() there would be two more syscalls each time; the address is
// given per datagram (no connect()), so a systemd that re-creates its socket
// keeps receiving. Sends are MSG_DONTWAIT: an IO thread must never wait for
// systemd, and a dropped WATCHDOG=1 is followed by the next one.
#include "memgate/server/sd_notify.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "memgate/base/units.h"

namespace memgate::server {

SdNotifier::SdNotifier(const EnvLookup& env) {
  std::optional<std::string> socket = env("NOTIFY_SOCKET");
  if (!socket || socket->empty()) return;
  const std::string& name = *socket;
  if (name[0] != '/' && name[0] != '@') {
    why_ = "NOTIFY_SOCKET=" + name + " is neither a path nor an abstract name ('@...'); only AF_UNIX is supported";
    return;
  }
  if (name.size() >= sizeof(addr_.sun_path)) {
    why_ = "NOTIFY_SOCKET is longer than a unix socket address (" + std::to_string(sizeof(addr_.sun_path) - 1) +
           " bytes)";
    return;
  }
  addr_.sun_family = AF_UNIX;
  std::memcpy(addr_.sun_path, name.data(), name.size());
  if (name[0] == '@') {
    addr_.sun_path[0] = '\0';  // abstract: the length, not a NUL, ends the name
    addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  } else {
    addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
  }
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    why_ = std::string("socket(AF_UNIX, SOCK_DGRAM): ") + std::strerror(errno);
    return;
  }

  std::optional<std::string> usec = env("WATCHDOG_USEC");
  if (!usec || usec->empty()) return;
  if (std::optional<std::string> pid = env("WATCHDOG_PID"); pid && !pid->empty()) {
    auto p = parse_int(*pid, 1, INT32_MAX);
    if (!p.ok() || *p != ::getpid()) return;  // meant for another process (our parent, say)
  }
  auto v = parse_int(*usec, 1, INT64_MAX);
  if (v.ok()) watchdog_ = std::chrono::microseconds(*v);
  else why_ = "WATCHDOG_USEC=" + *usec + " is not a positive number of microseconds; no watchdog pings";
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

Status SdNotifier::notify(std::string_view state) const {
  if (fd_ < 0) return Status::Ok();
  ssize_t n;
  do {
    n = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Unavailable(std::string("sd_notify: sendto NOTIFY_SOCKET: ") + std::strerror(errno));
  return Status::Ok();
}

namespace {

std::string status_line(std::string_view text) {
  std::string line = "STATUS=";
  line.reserve(line.size() + text.size());
  for (char c : text) line += (c == '\n' || c == '\r') ? ' ' : c;
  return line;
}

}  // namespace

Status SdNotifier::ready(std::string_view status_text) const {
  return notify("READY=1\nMAINPID=" + std::to_string(::getpid()) + "\n" + status_line(status_text));
}

Status SdNotifier::status(std::string_view text) const { return notify(status_line(text)); }

Status SdNotifier::extend_timeout(std::chrono::microseconds by, std::string_view status_text) const {
  std::string msg = "EXTEND_TIMEOUT_USEC=" + std::to_string(std::max<int64_t>(1, by.count()));
  if (!status_text.empty()) msg += "\n" + status_line(status_text);
  return notify(msg);
}

Status SdNotifier::watchdog() const { return notify("WATCHDOG=1"); }

Status SdNotifier::stopping(std::string_view status_text) const {
  return notify("STOPPING=1\n" + status_line(status_text));
}

}  // namespace memgate::server
