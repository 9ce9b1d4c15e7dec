// TAP backend: the guest's frames enter the host kernel through a TAP interface
// (Documentation/networking/tuntap.rst). Opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR and a
// 12-byte vnet header (TUNSETVNETHDRSZ), non-blocking. If the interface does not exist it is
// created (non-persistent, so the kernel removes it when qvm closes it) and brought up; an
// existing (e.g. persistent, user-owned) interface is attached to and left in place.
//
// Offloads: the kernel accepts checksum/GSO requests in the vnet header of frames we write; what it
// may hand us is set with TUNSETOFFLOAD from what the guest negotiated (set_rx_offloads). The
// supported set is probed at open (TUN_F_CSUM, TSO4, TSO6, TSO_ECN, UFO).
//
// Multi-queue (virtio-net MQ): open_queues(name, n) opens n fds of one interface with
// IFF_MULTI_QUEUE; each is a TapBackend for one queue pair. A queue the guest does not use is
// detached (TUNSETQUEUE IFF_DETACH_QUEUE) so the kernel steers no flows to it.
//
// Not implemented: USO (TUN_F_USO4/6), link state from netlink (the link is reported up while
// the fd is open).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/fd_backend.hpp"

namespace qvm::net {

class TapBackend final : public FdBackend {
 public:
  // `ifname`: at most 15 bytes, no '/', '%' or whitespace.
  static Result<std::unique_ptr<TapBackend>> open(const std::string& ifname);
  // `n` queues (1..8) of one interface; n > 1 uses IFF_MULTI_QUEUE (an existing interface must
  // have been created multi-queue: `ip tuntap add ... multi_queue`).
  static Result<std::vector<std::unique_ptr<TapBackend>>> open_queues(const std::string& ifname,
                                                                      unsigned n);
  Status set_queue_attached(bool on) override;

  const std::string& ifname() const { return ifname_; }
  // Whether this qvm created the interface (it disappears when the backend is destroyed).
  bool created() const { return created_; }

 private:
  TapBackend(UniqueFd fd, Poller p, Offloads o, std::string ifname, bool created, bool multi)
      : FdBackend(std::move(fd), std::move(p), o, "tap:" + ifname),
        ifname_(std::move(ifname)),
        created_(created),
        multi_(multi) {}
  Status apply_rx_offloads(const Offloads& o) override;

  std::string ifname_;
  bool created_;
  bool multi_;
  bool attached_ = true;
};

// TUNSETOFFLOAD flags for `o` (linux/if_tun.h TUN_F_*).
unsigned tun_offload_flags(const Offloads& o);

}  // namespace qvm::net
