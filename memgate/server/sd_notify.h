// SdNotifier: systemd's readiness protocol (sd_notify(3)) without libsystemd.
//
// The protocol is one datagram per notification, sent to the AF_UNIX socket
// named by $NOTIFY_SOCKET: newline-separated KEY=VALUE assignments, e.g.
// "READY=1", "STATUS=stage 1/2: kb building, 45%", "EXTEND_TIMEOUT_USEC=60000000",
// "WATCHDOG=1", "STOPPING=1". A name starting with '@' is an abstract socket
// (the '@' becomes a NUL byte); any other name is a filesystem path. Other
// address families ("vsock:...") are not supported: the notifier is then off
// and says why.
//
// When NOTIFY_SOCKET is unset or empty (not run by systemd as Type=notify),
// every call is a no-op that succeeds, so callers never ask whether systemd is
// there. WATCHDOG_USEC (with WATCHDOG_PID, when set, naming this process) says
// how often systemd expects WATCHDOG=1; watchdog_timeout() reads it.
//
// Sending never blocks (MSG_DONTWAIT): a notification systemd cannot take now
// is dropped and reported as Unavailable; an IO thread may send WATCHDOG=1.
// Thread-safe: every method may be called from any thread (one sendto() per
// notification; datagrams do not interleave).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "memgate/base/config.h"
#include "memgate/base/status.h"

namespace memgate::server {

class SdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID through `env` and opens
  // the datagram socket. A malformed NOTIFY_SOCKET (too long, unknown family)
  // or a socket that cannot be opened leaves the notifier off; why() says so.
  explicit SdNotifier(const EnvLookup& env);
  ~SdNotifier();
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;

  // True when notifications go somewhere.
  bool enabled() const { return fd_ >= 0; }
  // Why the notifier is off although NOTIFY_SOCKET was set ("" otherwise).
  const std::string& why() const { return why_; }

  // Sends `state` (one or more KEY=VALUE lines) as one datagram. Ok and nothing
  // sent when off; Unavailable when the socket refused it (systemd gone, queue
  // full); the message names the errno.
  Status notify(std::string_view state) const;

  // The common assignments. STATUS text has its newlines replaced by spaces
  // (a newline would start a new assignment).
  Status ready(std::string_view status_text) const;
  Status status(std::string_view text) const;
  // EXTEND_TIMEOUT_USEC: asks for `by` more from now on the timeout of the
  // current state (start-up before READY=1, RuntimeMaxSec= while running,
  // TimeoutStopSec= after STOPPING=1). Rounded up to whole microseconds.
  Status extend_timeout(std::chrono::microseconds by, std::string_view status_text = {}) const;
  Status watchdog() const;
  Status stopping(std::string_view status_text) const;

  // WATCHDOG_USEC when it is set, positive, and meant for this process
  // (WATCHDOG_PID unset or our pid); nullopt otherwise, also when off. Send
  // WATCHDOG=1 at least every half of it.
  std::optional<std::chrono::microseconds> watchdog_timeout() const { return watchdog_; }

 private:
  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
  std::optional<std::chrono::microseconds> watchdog_;
  std::string why_;
};

}  // namespace memgate::server
