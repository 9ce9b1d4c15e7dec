// Receive filtering of virtio-net (virtio 1.2 §5.1.6.5.1 VIRTIO_NET_CTRL_RX, §5.1.6.5.2
// VIRTIO_NET_CTRL_MAC): which destination MAC addresses the device delivers to the driver.
//
// State after reset: promiscuous (everything is delivered) until the driver configures it, as
// drivers that never send VIRTIO_NET_CTRL_RX expect. Unicast: our MAC, the unicast table, or
// ALLUNI; NOUNI drops them all (promiscuous still wins). Multicast: ALLMULTI or the multicast
// table; NOMULTI drops them. Broadcast: unless NOBCAST. A table the driver sets with more entries
// than kMaxEntries accepts its whole class (the device cannot hold it; over-delivery is allowed,
// the driver's stack filters again).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "net/mac.hpp"

namespace qvm::vdev {

struct RxFilter {
  static constexpr size_t kMaxEntries = 64;

  bool promisc = true;
  bool allmulti = false;
  bool alluni = false;
  bool nomulti = false;
  bool nouni = false;
  bool nobcast = false;
  bool uni_overflow = false;
  bool multi_overflow = false;
  std::vector<net::Mac> uni;
  std::vector<net::Mac> multi;

  // Whether a frame with destination `dst` is delivered to a device whose own address is `own`.
  bool accepts(std::span<const uint8_t, 6> dst, const net::Mac& own) const;
  // Fast path: every frame is delivered.
  bool accepts_all() const { return promisc; }
};

}  // namespace qvm::vdev
