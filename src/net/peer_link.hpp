// Peer link backend: a guest-to-guest Ethernet link between two qvm processes without root
// (spec §12.1 guest <-> guest; docs/networking.md "Peer link protocol").
//
// Each side binds its own endpoint, a SOCK_SEQPACKET Unix socket at
// <runtime>/<own system>/<own vdev name> (mode `bind-mode`, default 0600), and connects to the
// peer's endpoint. A side transmits on the connection it made and receives on the one it
// accepted, so there is no election and either side may start first: a side whose connect fails
// retries with backoff (10 ms doubling to 1 s) from its own timer. The first message on a new
// connection is a hello naming the connector's endpoint; the acceptor keeps only a connection
// whose hello names its configured peer (a newer one replaces an older one). After that, one
// message = one frame = a 12-byte virtio_net_hdr_v1 + the Ethernet frame.
//
// Offloads: a frame may carry what `offloads` allows. When the receiving guest did not negotiate
// an offload a frame uses (the two guests negotiated differently), receive() completes the
// checksum or segments the TCP frame in software (net/soft_offload.hpp) and delivers ordinary
// frames, one per call; a frame that cannot be completed (UDP fragmentation offload, malformed)
// is dropped and counted.
//
// The link is up while both connections exist. While it is down, send() drops frames (counted).
// When the peer goes away (its connections hang up), the link goes down, the outgoing side
// reconnects when the peer's endpoint answers again. A stale socket file (nobody listening) at
// our endpoint is replaced; a live one or a non-socket is an error.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "net/backend.hpp"
#include "net/poller.hpp"

namespace qvm::net {

// /run/qvm when root, else $XDG_RUNTIME_DIR/qvm, else /tmp/qvm-<uid> (design §5).
std::string runtime_dir();
// Where `peer` points: `/run/qvm/S/N` and `/dev/qvm/S/N` (the QNX spelling) map to
// <runtime>/S/N; another absolute path is used as is; `S/N` is relative to <runtime>.
Result<std::string> resolve_peer_path(std::string_view peer, const std::string& runtime);
// Our endpoint: <runtime>/<system>/<vdev name>.
Result<std::string> own_endpoint_path(std::string_view system, std::string_view vdev_name,
                                      const std::string& runtime);

struct PeerLinkOptions {
  std::string own_path;
  std::string peer_path;
  mode_t mode = 0600;
  Offloads offloads{true, true, true, true, true};  // what a frame may carry over the link
};

class PeerLink final : public Backend {
 public:
  static constexpr uint32_t kVersion = 1;
  static constexpr int kMaxPending = 4;  // accepted connections waiting for their hello

  static Result<std::unique_ptr<PeerLink>> create(PeerLinkOptions o);
  ~PeerLink() override;
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  std::string describe() const override { return "peer " + o_.peer_path; }
  Offloads supported_offloads() const override { return o_.offloads; }
  Status set_rx_offloads(const Offloads& o) override;
  Result<SendResult> send(std::span<const iovec> iov) override;
  Result<size_t> receive(std::span<const iovec> iov) override;
  int poll_fd() const override { return poller_.fd(); }
  ServiceResult service() override;
  void set_rx_enabled(bool on) override;
  bool rx_enabled() const override { return rx_enabled_; }
  bool link_up() const override { return out_.valid() && in_.valid(); }
  BackendStats stats() const override { return stats_; }

  bool outgoing_connected() const { return out_.valid(); }
  bool incoming_connected() const { return in_.valid(); }

 private:
  enum Tag : uint64_t { kListen = 1, kOut = 2, kIn = 3, kTimer = 4, kPending = 16 };
  PeerLink(PeerLinkOptions o, Poller p) : o_(std::move(o)), poller_(std::move(p)) {}
  Status bind_endpoint();
  void try_connect();
  void arm_retry();
  void accept_all();
  void read_hello(size_t slot);
  bool peer_allowed(int fd, const char* side);
  void drop_out();
  void drop_in();
  void update_in_interest();
  // Software offloads (peer_link.cpp): whether the link may carry what the guest does not take;
  // the slow path of receive() for such a frame; the next completed frame into `iov`.
  bool soft_offload_possible() const;
  Result<size_t> receive_soft(std::span<const iovec> iov);
  void soft_offload(size_t len);
  size_t deliver_soft(std::span<const iovec> iov);

  PeerLinkOptions o_;
  Poller poller_;
  UniqueFd listen_, out_, in_, timer_;
  std::array<UniqueFd, kMaxPending> pending_;
  size_t next_pending_ = 0;
  ino_t bound_ino_ = 0;
  uint32_t backoff_ms_ = 10;
  bool rx_enabled_ = false;
  bool want_out_ = false;
  bool link_reported_ = false;
  Offloads rx_offloads_;
  BackendStats stats_;
  RateLimit refuse_rl_{1.0, 5.0};  // another user's process may connect in a loop
  // receive_soft(): the guest's iovecs plus `spill_` (a frame larger than the guest's buffers
  // lands there), the gathered frame, and completed frames waiting for delivery
  // ({offset, length} into soft_buf_, each a VnetHdr + frame).
  std::vector<iovec> rx_iov_;
  std::vector<uint8_t> spill_, frame_, soft_buf_;
  std::vector<std::pair<size_t, size_t>> soft_frames_;
  size_t soft_next_ = 0;
};

}  // namespace qvm::net
