// Building a VirtioNet from the `vdev virtio-net` options (spec §6.4) without the config layer:
// the machine copies the VdevConfig values into NetSetup and calls open_virtio_net().
//
//   peer tap:IFNAME      TAP backend (created if absent, removed on exit if we created it)
//   tapdev IFNAME        the same, deprecated spelling (a warning is logged)
//   peer PATH            peer link to another qvm; PATH is /run/qvm/SYS/NAME, /dev/qvm/SYS/NAME
//                        (both mapped to the runtime directory), SYS/NAME, or an absolute path;
//                        our own endpoint is <runtime>/<system>/<name> and needs `name`
//   (neither)            no backend: link down, transmitted frames dropped
//   mac                  else generate_mac(system, name or unique_id)
//   peerfeats            offload bits offered (mask 0x7fc3); default: all the TAP supports, and
//                        0 on peer links (both sides must agree; see docs/networking.md)
//   vhost on|off|auto    TAP only: let the kernel run the queues (/dev/vhost-net). auto (default):
//                        if /dev/vhost-net opens, else the user-space path (one info line); on:
//                        an error if it does not open or the peer is not a TAP
//   ioeventfd on|off|tx|auto  queue notifications through KVM ioeventfds to the event loop (on),
//                        handled on the notifying vCPU thread (off), or transmit through
//                        ioeventfds and receive on the vCPU (tx); auto (default): tx. `off`
//                        fails with Linux guests under sustained transmit (docs/networking.md)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/result.hpp"
#include "vdev/virtio_net/virtio_net.hpp"

namespace qvm::vdev {

struct NetSetup {
  std::string system;                 // VmConfig::system_name()
  std::string vdev_name;              // VdevConfig::name, empty when unset
  std::string unique_id;              // stable per-vdev text (e.g. its location) for the MAC
  std::optional<std::string> mac;     // "mac"
  std::optional<std::string> peer;    // "peer"
  std::optional<std::string> tapdev;  // "tapdev"
  std::optional<uint64_t> peerfeats;  // "peerfeats", only when given
  std::string bind_mode = "0600";     // "bind-mode" (octal)
  uint16_t mtu = 1500;                // "mtu"
  uint16_t queues = 1;                // "queues"
  std::string runtime_dir;            // empty: net::runtime_dir()
  std::string vhost = "auto";         // "vhost": on, off or auto
  std::string ioeventfd = "auto";     // "ioeventfd": on, off, tx or auto (= tx)
  // Opens vhost-net (tests substitute a recorder); default net::open_vhost_net().
  std::function<Result<std::unique_ptr<net::VhostIoctls>>()> open_vhost;
};

Result<std::shared_ptr<VirtioNet>> open_virtio_net(const NetSetup& s);

// For dryrun (nothing opened but /dev/vhost-net, briefly): what `vhost` would do with this
// backend, e.g. "vhost-net auto: /dev/vhost-net present, kernel data path"; an error where the
// real start would fail (`vhost on` without a TAP or without /dev/vhost-net).
struct VhostPlan {
  std::string text;
  bool kernel = false;  // vhost-net would run the queues
};
Result<VhostPlan> vhost_plan(const NetSetup& s);

}  // namespace qvm::vdev
