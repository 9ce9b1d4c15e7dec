// Who is on the other end of a loopback TCP connection. Unix sockets say it with SO_PEERCRED;
// TCP has no such option, but on loopback the peer's socket is in this kernel, and its owner's
// uid is what sock_diag (NETLINK_SOCK_DIAG, inet_diag) reports for the exact 4-tuple
// (linux/inet_diag.h). Used to keep other local users off qvm's TCP endpoints (docs/security.md).
#pragma once

#include <sys/types.h>

#include <optional>

#include "base/result.hpp"

namespace qvm {

// For a connected TCP socket: true if the peer is on this host (a loopback address, v4 or v6).
bool tcp_peer_is_loopback(int fd);
// The uid owning the peer's socket of a loopback TCP connection: sock_diag first, else the
// kernel's table in /proc/net/tcp{,6} (where inet_diag is a module that cannot be loaded); an
// error if neither says (the peer is gone). `source` picks one of the two (for their tests).
enum class PeerUidSource { kAny, kSockDiag, kProcNet };
Result<uid_t> loopback_tcp_peer_uid(int fd, PeerUidSource source = PeerUidSource::kAny);

}  // namespace qvm
