// Host side of a virtio-net device: where guest frames go and where guest-bound frames come from.
// Implementations: TapBackend (tap.hpp, guest <-> host kernel), PeerLink (peer_link.hpp,
// qvm <-> qvm over a Unix seqpacket socket), FdBackend (fd_backend.hpp, any connected datagram or
// seqpacket fd: tests, fuzzing).
//
// Framing: every frame crossing this interface starts with a 12-byte VnetHdr (vnet_hdr.hpp),
// whatever the guest negotiated; the device converts. Offloads in the header (NEEDS_CSUM, GSO)
// are only sent when the guest negotiated them and the backend supports them, and a backend only
// delivers offloaded frames that set_rx_offloads() allowed.
//
// Event model: poll_fd() is one descriptor (an epoll instance owned by the backend) that is
// readable whenever service() has work: a frame to receive (only while rx is enabled), room to
// send again after send() returned kBlocked, or control work (accepting, reconnecting, a hang-up).
// The owner calls service() when it is readable; service() does the control work itself and
// reports what the device should do next. set_rx_enabled(false) stops poll_fd() from signalling
// received frames (the device has no guest buffers), so a level-triggered loop does not spin.
//
// Errors are values. Threading: not thread-safe; the device serialises calls.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>

#include "base/result.hpp"
#include "net/vnet_hdr.hpp"

namespace qvm::net {

struct BackendStats {
  uint64_t tx_frames = 0, tx_bytes = 0;  // accepted by send() and passed on
  uint64_t tx_dropped = 0;               // accepted by send() but discarded (link down, error)
  uint64_t rx_frames = 0, rx_bytes = 0;  // delivered by receive()
  uint64_t rx_dropped = 0;               // discarded by the backend (malformed, too short)
  uint64_t link_changes = 0;             // up <-> down transitions
  uint64_t connects = 0;                 // peer link: connections established
  uint64_t refused = 0;                  // peer link: ends of another user refused (SO_PEERCRED)
  uint64_t rx_soft_offload = 0;          // peer link: frames checksummed/segmented in software
};

// What service() found.
struct ServiceResult {
  bool rx_ready = false;      // receive() may return a frame
  bool tx_ready = false;      // send() was blocked and may succeed now
  bool link_changed = false;  // link_up() changed since the last call
};

enum class SendResult {
  kSent,     // the frame is on its way
  kDropped,  // the frame was discarded (link down, rejected by the host); counted
  kBlocked,  // no room now: retry the same frame after service() reports tx_ready
};

class Backend {
 public:
  virtual ~Backend() = default;
  // For logs and dryrun: "tap:qvm0", "peer /run/qvm/a/net0".
  virtual std::string describe() const = 0;
  // What the backend can carry (both directions).
  virtual Offloads supported_offloads() const = 0;
  // What the guest accepts: the backend must not deliver frames using other offloads.
  virtual Status set_rx_offloads(const Offloads& o) = 0;

  // One frame: VnetHdr then the Ethernet frame, spread over `iov`. Errors are for broken
  // backends only; a frame the host refuses is kDropped.
  virtual Result<SendResult> send(std::span<const iovec> iov) = 0;
  // One frame into `iov` (VnetHdr first). Returns its length, 0 if none is waiting. A frame
  // longer than the iovecs is truncated (the caller sizes them for kMaxFrame + header). Frames
  // the backend must discard are counted and skipped.
  virtual Result<size_t> receive(std::span<const iovec> iov) = 0;

  virtual int poll_fd() const = 0;
  virtual ServiceResult service() = 0;
  virtual void set_rx_enabled(bool on) = 0;
  virtual bool rx_enabled() const = 0;  // for status reports
  // Multi-queue backends (a TAP queue): whether the host may steer frames to this queue
  // (TUNSETQUEUE IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE). Others ignore it.
  virtual Status set_queue_attached(bool /*on*/) { return {}; }
  virtual bool link_up() const = 0;
  virtual BackendStats stats() const = 0;
};

}  // namespace qvm::net
