// vhost-net (linux/vhost.h, Documentation/virt/... "vhost"): the host kernel runs a virtio-net
// device's receive and transmit queues itself, between the guest's rings and a TAP fd, so frames
// never pass through qvm. qvm only sets it up at DRIVER_OK and tears it down on reset.
//
// Layers:
//  - VhostIoctls: one method per ioctl (VHOST_SET_OWNER, VHOST_GET/SET_FEATURES,
//    VHOST_SET_MEM_TABLE, VHOST_SET_VRING_NUM/BASE/ADDR/KICK/CALL, VHOST_GET_VRING_BASE,
//    VHOST_NET_SET_BACKEND) plus TUNSETVNETHDRSZ on the TAP. open_vhost_net() is the real one on
//    /dev/vhost-net; unit tests substitute a recorder (this host has no /dev/vhost-net).
//  - VhostNet: the sequence. create(): SET_OWNER, GET_FEATURES. start(): SET_FEATURES (the
//    guest's ring features, which the kernel must support), SET_MEM_TABLE (guest-physical →
//    qvm-virtual), then per queue SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR (qvm-virtual
//    ring addresses), SET_VRING_KICK (the queue's KVM ioeventfd), SET_VRING_CALL (an eventfd the
//    device turns into the transport's interrupt), then TUNSETVNETHDRSZ (the guest's header
//    length: vhost passes headers through unchanged) and NET_SET_BACKEND = the TAP fd per queue.
//    stop(): NET_SET_BACKEND -1 and GET_VRING_BASE per queue (the kernel stops the ring and
//    reports where it got to), then TUNSETVNETHDRSZ 12 for the user-space path.
//
// Errors are values; a failed start() undoes what it did, so the caller can fall back to the
// user-space data path.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace qvm::net {

struct VhostMemRegion {  // struct vhost_memory_region
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint64_t uaddr = 0;  // where qvm maps it
};

struct VhostVringAddr {  // struct vhost_vring_addr (no dirty log)
  uint32_t index = 0;
  uint64_t desc = 0, avail = 0, used = 0;  // qvm virtual addresses
};

class VhostIoctls {
 public:
  virtual ~VhostIoctls() = default;
  virtual Status set_owner() = 0;
  virtual Result<uint64_t> get_features() = 0;
  virtual Status set_features(uint64_t features) = 0;
  virtual Status set_mem_table(std::span<const VhostMemRegion> regions) = 0;
  virtual Status set_vring_num(uint32_t index, uint32_t num) = 0;
  virtual Status set_vring_base(uint32_t index, uint32_t base) = 0;
  virtual Result<uint32_t> get_vring_base(uint32_t index) = 0;
  virtual Status set_vring_addr(const VhostVringAddr& a) = 0;
  virtual Status set_vring_kick(uint32_t index, int fd) = 0;
  virtual Status set_vring_call(uint32_t index, int fd) = 0;
  virtual Status set_backend(uint32_t index, int fd) = 0;        // VHOST_NET_SET_BACKEND, -1 = none
  virtual Status set_tap_vnet_hdr_len(int tap_fd, int len) = 0;  // TUNSETVNETHDRSZ
};

inline constexpr const char* kVhostNetPath = "/dev/vhost-net";

// The real ioctls on a fresh open of `path`. ENOENT/EACCES/ENODEV mean "no vhost-net here".
Result<std::unique_ptr<VhostIoctls>> open_vhost_net(const char* path = kVhostNetPath);
// Whether `path` can be opened read-write (dryrun; opens and closes it).
bool vhost_net_available(const char* path = kVhostNetPath);

class VhostNet {
 public:
  // Feature bits vhost-net is told about (the rest are the device's and the TAP's business):
  // VIRTIO_NET_F_MRG_RXBUF (15), VIRTIO_F_INDIRECT_DESC (28), VIRTIO_F_EVENT_IDX (29),
  // VIRTIO_F_VERSION_1 (32).
  static constexpr uint64_t kRingFeatures =
      (1ull << 15) | (1ull << 28) | (1ull << 29) | (1ull << 32);

  struct Queue {
    uint32_t index = 0;
    uint32_t num = 0;   // queue size
    uint16_t base = 0;  // next available index to process
    uint64_t desc = 0, avail = 0, used = 0;
    int kick_fd = -1;  // KVM ioeventfd of the queue's notify register
    int call_fd = -1;  // written by the kernel when the driver wants an interrupt
  };
  struct StartParams {
    uint64_t guest_features = 0;  // negotiated with the driver; masked with kRingFeatures
    uint32_t vnet_hdr_len = 12;   // 12 (VERSION_1 or MRG_RXBUF) or 10
    std::vector<VhostMemRegion> mem;
    std::vector<Queue> queues;
  };

  // SET_OWNER and GET_FEATURES on `io`; `tap_fd` is borrowed (the backend owns it).
  static Result<std::unique_ptr<VhostNet>> create(std::unique_ptr<VhostIoctls> io, int tap_fd);
  ~VhostNet();
  VhostNet(const VhostNet&) = delete;
  VhostNet& operator=(const VhostNet&) = delete;

  uint64_t kernel_features() const { return kernel_features_; }
  bool running() const { return running_; }
  Status start(const StartParams& p);
  // No-op when not running. Returns the last available index per stopped queue.
  std::vector<uint16_t> stop();

 private:
  VhostNet(std::unique_ptr<VhostIoctls> io, int tap_fd, uint64_t f)
      : io_(std::move(io)), tap_fd_(tap_fd), kernel_features_(f) {}
  Status start_queue(const Queue& q);

  std::unique_ptr<VhostIoctls> io_;
  int tap_fd_;
  uint64_t kernel_features_;
  std::vector<uint32_t> configured_;  // queue indices given to the kernel
  bool hdr_changed_ = false;
  bool running_ = false;
};

}  // namespace qvm::net
