// virtio-net (virtio 1.2 §5.1): device id 1. Queues (§5.1.2): receiveqN = 2(N-1), transmitqN =
// 2(N-1)+1 for N = 1..max_virtqueue_pairs, then the control queue: 2·max_virtqueue_pairs when
// VIRTIO_NET_F_MQ is negotiated, else 2.
//
// Implemented: VIRTIO_NET_F_MAC, _STATUS (link state from the backend, configuration-change
// interrupt on changes), _MTU, _MRG_RXBUF (num_buffers, §5.1.6.3.2), and the offloads _CSUM,
// _GUEST_CSUM, _HOST/_GUEST_TSO4/6, _HOST/_GUEST_ECN, _HOST/_GUEST_UFO when the backend supports
// them, masked by `peerfeats` (docs/networking.md "Offload negotiation"). EVENT_IDX and
// INDIRECT_DESC come from the transport. The control queue (queue 2, _CTRL_VQ) takes _CTRL_RX,
// _CTRL_RX_EXTRA, _CTRL_MAC_ADDR and _CTRL_GUEST_OFFLOADS commands (virtio_net_ctrl.cpp); receive
// filtering applies on the user-space path (vhost-net delivers everything). _MQ (§5.1.6.5.5) is
// offered when the device has more than one backend queue (a multi-queue TAP, one queue per
// pair): pair 1 only until the driver sends VQ_PAIRS_SET; the backend queues of inactive pairs
// are detached (TUNSETQUEUE) so the host steers no frames to them. Not implemented: _CTRL_VLAN,
// _GUEST_ANNOUNCE, USO, RSS, packed rings.
//
// Data path (no vhost-net on the target hosts, so user space must be fast):
// - transmit: process_queue(transmitqN) pops up to kTxBatch chains, copies the (10- or
//   12-byte) header out of guest memory, checks it against the negotiated HOST_* offloads, and
//   hands the pair's backend one iovec list per frame (our header + the guest's buffers:
//   writev/sendmsg without copying the frame); one interrupt per batch (EVENT_IDX). A malformed
//   chain (too short, too long, offloads not negotiated) fails that packet only: completed with
//   length 0, counted, logged rate-limited. If the backend is full (EAGAIN) the chain is put back
//   and transmission resumes when it drains.
// - receive: process_queue(receiveqN) runs when the pair's backend has frames (machine:
//   on_ready()) or the guest added buffers (its notify). It reads each frame straight into guest
//   buffers with one readv (mergeable: as many chains as the largest possible frame needs,
//   num_buffers set afterwards); only when the guest has fewer buffers posted than that does a
//   frame go through a bounce buffer.
//   With no buffers, the device stops reading the backend (set_rx_enabled(false)) until the guest
//   notifies the receive queue again.
//
// vhost-net (virtio_net_vhost.cpp, net/vhost.hpp): with a VhostNet (TAP backends, /dev/vhost-net
// present) the kernel runs both queues from DRIVER_OK to reset: kicks are the machine's queue
// ioeventfds (set_notify_fd), interrupts come back on the device's own call eventfds, which
// on_ready() turns into the transport's signal_used(). process_queue() does nothing meanwhile.
// If the kernel refuses anything at DRIVER_OK the device runs the queues itself (logged).
//
// Threading: activate/reset/process_queue under the transport lock (device.hpp); process_queue
// runs on the event loop thread (KVM ioeventfd: transmit queues by default, every queue with
// `ioeventfd on`) or on the vCPU thread whose notify-register write exited (receive queues by
// default, every queue with `ioeventfd off`). on_ready() runs on the event loop thread; it services
// the backends under the device's backend lock and then calls the kick hook (machine:
// transport->handle_notify(q)) without holding it. Lock order: transport, backend_mu_, mu_.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "net/backend.hpp"
#include "net/mac.hpp"
#include "net/poller.hpp"
#include "net/vhost.hpp"
#include "vdev/virtio_net/rx_filter.hpp"
#include "virtio/device.hpp"

namespace qvm::vdev {

namespace net_dev {
// Feature bits (virtio 1.2 §5.1.3).
inline constexpr uint32_t kCsum = 0;
inline constexpr uint32_t kGuestCsum = 1;
inline constexpr uint32_t kCtrlGuestOffloads = 2;
inline constexpr uint32_t kMtu = 3;
inline constexpr uint32_t kMac = 5;
inline constexpr uint32_t kGuestTso4 = 7;
inline constexpr uint32_t kGuestTso6 = 8;
inline constexpr uint32_t kGuestEcn = 9;
inline constexpr uint32_t kGuestUfo = 10;
inline constexpr uint32_t kHostTso4 = 11;
inline constexpr uint32_t kHostTso6 = 12;
inline constexpr uint32_t kHostEcn = 13;
inline constexpr uint32_t kHostUfo = 14;
inline constexpr uint32_t kMrgRxbuf = 15;
inline constexpr uint32_t kStatus = 16;
inline constexpr uint32_t kCtrlVq = 17;
inline constexpr uint32_t kCtrlRx = 18;
inline constexpr uint32_t kCtrlRxExtra = 20;
inline constexpr uint32_t kCtrlMacAddr = 23;
inline constexpr uint32_t kMq = 22;
inline constexpr uint16_t kMaxPairs = 8;  // `queues` 1..8
// The offload bits `peerfeats` may select (spec §6.4: maximum 0x7fc3).
inline constexpr uint64_t kPeerfeatsMask = 0x7fc3;
inline constexpr uint16_t kStatusLinkUp = 1;  // VIRTIO_NET_S_LINK_UP

struct Config {  // struct virtio_net_config (§5.1.4), up to mtu
  uint8_t mac[6];
  uint16_t status;
  uint16_t max_virtqueue_pairs;
  uint16_t mtu;
};
static_assert(sizeof(Config) == 12);
}  // namespace net_dev

class VirtioNet final : public virtio::VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint16_t kRxQueue = 0;    // receiveq1
  static constexpr uint16_t kTxQueue = 1;    // transmitq1
  static constexpr uint16_t kCtrlQueue = 2;  // §5.1.2 without VIRTIO_NET_F_MQ
  static constexpr uint16_t kCtrlQueueSize = 64;
  static constexpr uint32_t kTxBatch = 256;  // chains per transmit pass
  static constexpr uint32_t kRxBatch = 256;  // frames per receive pass
  static constexpr size_t kMaxIov = 1024;    // IOV_MAX
  // Internal poll tag of a queue ioeventfd the device polls (virtio_net.cpp: kind kNotify << 16).
  static constexpr uint64_t kNotifyTag = uint64_t{4} << 16;

  struct Options {
    net::Mac mac{};
    uint16_t mtu = 1500;
    bool offer_mtu = true;
    // Offload feature bits (within kPeerfeatsMask) the device may offer; nullopt = all the
    // backend supports.
    std::optional<uint64_t> peerfeats;
    std::string name = "virtio-net";  // for logs
    // Queue notifications through KVM ioeventfds (processed on the event loop thread) rather
    // than on the vCPU thread that wrote the notify register. vhost-net always uses them.
    // false (`ioeventfd off`) is opt-in: see docs/networking.md for the known failure.
    bool ioeventfd = true;
    // With `ioeventfd`: receive-queue notifications still exit to the vCPU thread (`ioeventfd
    // tx`). They mean "buffers posted after the device ran dry", and the vCPU fills them from the
    // backend at once instead of waking the event loop thread (docs/performance.md).
    bool rx_inline = false;
  };
  struct Stats {
    uint64_t tx_frames = 0, tx_bytes = 0, tx_malformed = 0, tx_dropped = 0;
    uint64_t rx_frames = 0, rx_bytes = 0, rx_dropped = 0, rx_bad_buffers = 0, rx_bounced = 0;
    uint64_t interrupts = 0;
    uint64_t vhost_starts = 0, vhost_failures = 0, vhost_calls = 0;
    uint64_t ctrl_commands = 0, ctrl_errors = 0, rx_filtered = 0;
    net::BackendStats backend;  // summed over the pairs' backends
  };

  // One backend per queue pair (1..kMaxPairs; more than one only for a multi-queue TAP), and
  // optionally one vhost-net per pair (the kernel data path; all pairs or none).
  static Result<std::shared_ptr<VirtioNet>> create(
      Options o, std::vector<std::unique_ptr<net::Backend>> backends,
      std::vector<std::unique_ptr<net::VhostNet>> vhosts = {});
  // One pair.
  static Result<std::shared_ptr<VirtioNet>> create(Options o, std::unique_ptr<net::Backend> be,
                                                   std::unique_ptr<net::VhostNet> vhost = nullptr);
  ~VirtioNet() override;

  // Machine wiring: how to make the transport run process_queue(q) (transport->handle_notify(q)).
  // Set once, before the event loop starts.
  void set_kick(std::function<void(uint16_t)> kick) { kick_ = std::move(kick); }
  // The fd to poll for readability (level-triggered) and what to call when it is readable.
  int poll_fd() const { return poller_.fd(); }
  void on_ready();
  // Machine wiring: the KVM ioeventfd of queue `q`'s notify register (vhost-net's kick). Set
  // before the guest runs; the fd stays owned by the machine. With vhost-net the device polls
  // the fds of its pairs' queues itself (returns true: the machine must not), and stops polling
  // a pair's fds while the kernel runs that pair, so a guest notification wakes only the vhost
  // worker. Otherwise false: the machine polls it and calls the transport's handle_notify.
  bool set_notify_fd(uint16_t q, int fd);
  // Whether vhost-net is attached (used from DRIVER_OK on) / the kernel runs queues now.
  bool vhost_attached() const { return pairs_[0].vhost != nullptr; }
  // Whether the machine should register queue ioeventfds (`ioeventfd on`, or vhost-net). Without
  // them a notification is an MMIO/PIO exit and the vCPU thread runs the queue itself: no
  // wake-up of the event loop thread per notification (measured in docs/performance.md).
  bool wants_ioeventfd() const { return opts_.ioeventfd || vhost_attached(); }
  // Per queue: false for receive queues with `ioeventfd tx` (and for all with `off`).
  bool queue_ioeventfd(uint16_t q) const {
    if (vhost_attached()) return true;
    if (!opts_.ioeventfd) return false;
    return !(opts_.rx_inline && q < 2 * pairs_.size() && q % 2 == 0);
  }
  bool vhost_running() const;
  uint16_t max_pairs() const { return static_cast<uint16_t>(pairs_.size()); }
  uint16_t active_pairs() const;

  uint32_t device_type() const override;
  uint64_t device_features() const override { return features_; }
  std::span<const uint16_t> queue_max_sizes() const override { return queue_sizes_; }
  uint32_t config_size() const override { return sizeof(net_dev::Config); }
  void read_config(uint32_t offset, std::span<uint8_t> data) const override;
  uint32_t config_generation() const override;
  Status activate(virtio::ActivationContext& ctx) override;
  void reset() override;
  void process_queue(uint16_t index) override;
  // Link, counters and per pair: receive reading or paused, receive buffers held, a frame
  // waiting for buffers, transmit blocked (a stalled queue shows which side waits).
  std::string status_text() const override;

  Stats stats() const;
  bool link_up() const;
  const net::Mac& mac() const { return opts_.mac; }
  // The address the driver set with VIRTIO_NET_CTRL_MAC_ADDR_SET, else mac().
  net::Mac current_mac() const;
  RxFilter rx_filter() const;
  std::string describe() const;

 private:
  // Host iovecs of a spare receive chain: {first index in rx_iovs + rx_iov_base, count}; count
  // kNoIov if the chain has no host view.
  struct IovRange {
    size_t off;
    uint32_t n;
  };
  static constexpr uint32_t kNoIov = UINT32_MAX;
  // One queue pair: its backend (TAP queue) and its data path state.
  struct Pair {
    std::unique_ptr<net::Backend> backend;
    std::unique_ptr<net::VhostNet> vhost;
    bool vhost_on = false;                      // the kernel runs this pair's queues
    int notify_fd[2] = {-1, -1};                // the machine's ioeventfds (not owned)
    bool notify_polled = false;                 // in poller_ (vhost attached, not running)
    UniqueFd call_fd[2];                        // vhost-net's VHOST_SET_VRING_CALL eventfds
    std::deque<virtio::DescriptorChain> spare;  // popped receive chains not used yet
    uint64_t spare_bytes = 0;
    // Views of the spare chains, built once when a chain is popped (a guest with TSO posts ~33
    // buffers per possible 64 KiB frame; rebuilding them for every frame dominated receive).
    std::deque<IovRange> spare_iov;
    std::vector<iovec> rx_iovs;
    size_t rx_iov_base = 0;
    std::vector<uint8_t> bounce;  // a frame read before enough buffers were posted
    size_t held_len = 0;          // its length (header included); 0 = none
    bool tx_blocked = false;
  };

  VirtioNet(Options o, std::vector<Pair> pairs, net::Poller p, UniqueFd kick_fd);
  static uint16_t rxq(size_t p) { return static_cast<uint16_t>(2 * p); }
  static uint16_t txq(size_t p) { return static_cast<uint16_t>(2 * p + 1); }
  // Under backend_mu_ (negotiated_ is stable while activated).
  uint16_t ctrl_index() const;
  size_t usable_pairs() const;  // max pairs with MQ negotiated, else 1
  // vhost-net (virtio_net_vhost.cpp), under backend_mu_.
  Status start_vhost(Pair& p, size_t index);
  void stop_vhost();
  void vhost_called(uint16_t q);
  void compute_features();
  void update_link();  // under backend_mu_
  void tx_pass(size_t p);
  void rx_pass(size_t p);
  // Makes pairs [0, n) active (TUNSETQUEUE attach) and the rest inactive (detached, not read).
  void set_active_pairs(uint16_t n);
  // Receive helpers (virtio_net_rx.cpp), under backend_mu_.
  enum class RxStep { kDelivered, kNoFrame, kNoBuffers };
  RxStep rx_one(Pair& p, virtio::Queue& q);
  bool gather(Pair& p, virtio::Queue& q, uint64_t need);
  RxStep deliver_held(Pair& p, virtio::Queue& q);
  // Appends p.spare[j]'s cached host iovecs to iov_, the first `skip` bytes left out; false if
  // the chain has none (not in guest memory as one piece per descriptor).
  bool append_spare_iov(Pair& p, size_t j, uint64_t skip);
  void pop_spare(Pair& p, size_t m);
  // Fills the first chains of p.spare with `guest_bytes` (header + frame; the frame is already
  // there after a direct readv, or copied from `copy`), completes and removes them.
  void complete_rx(Pair& p, virtio::Queue& q, uint64_t guest_bytes, net::VnetHdr h,
                   std::span<const uint8_t> copy);
  void self_kick(uint16_t q);
  // Control queue (virtio_net_ctrl.cpp), under backend_mu_.
  void ctrl_pass();
  uint8_t ctrl_command(uint8_t cls, uint8_t cmd, std::span<const uint8_t> data);
  // Whether the frame (starting at its Ethernet header) is dropped by the receive filter.
  bool rx_filtered(std::span<const iovec> frame_iov);

  Options opts_;
  uint64_t features_ = 0;
  std::vector<uint16_t> queue_sizes_;  // 2 per pair, then the control queue
  net::Poller poller_;
  UniqueFd kick_fd_;  // eventfd: a pass stopped at its bound and must continue
  std::function<void(uint16_t)> kick_;
  std::atomic<uint32_t> pending_kicks_{0};  // bit per queue index (≤ 17 queues)

  mutable std::mutex backend_mu_;  // backends, queue processing state below
  std::vector<Pair> pairs_;        // fixed size after create()
  uint16_t active_pairs_ = 1;      // VQ_PAIRS_SET (§5.1.6.5.5); 1 after reset
  memory::GuestMemory* mem_ = nullptr;
  virtio::Queue* queues_ = nullptr;
  size_t nqueues_ = 0;
  RxFilter filter_;
  std::vector<uint8_t> ctrl_buf_;
  uint64_t negotiated_ = 0;
  uint32_t guest_hdr_len_ = 12;
  bool mergeable_ = false;
  net::Offloads host_offloads_;   // what the guest may send (HOST_*)
  net::Offloads guest_offloads_;  // what the guest accepts (GUEST_*)
  uint64_t rx_need_ = 0;          // guest bytes the largest possible frame takes
  std::vector<iovec> iov_;        // scratch for one frame
  Stats stats_;

  mutable std::mutex mu_;  // configuration space and interrupt
  virtio::VirtioInterrupt* irq_ = nullptr;
  bool link_ = false;
  net::Mac mac_{};  // as the driver set it (MAC_ADDR_SET); opts_.mac after reset
  uint32_t generation_ = 0;
};

}  // namespace qvm::vdev
