// The virtio-net packet header (virtio 1.2 §5.1.6, struct virtio_net_hdr with num_buffers: the
// 12-byte form used with VIRTIO_F_VERSION_1 or VIRTIO_NET_F_MRG_RXBUF) and the offload set a
// backend can carry. Every backend frame starts with this header: TAP with IFF_VNET_HDR and
// TUNSETVNETHDRSZ 12 uses the same layout (linux/virtio_net.h), and the peer link carries it as is.
#pragma once

#include <cstdint>

namespace qvm::net {

struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = 0;
  uint16_t hdr_len = 0;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
  uint16_t num_buffers = 0;
};
static_assert(sizeof(VnetHdr) == 12);

inline constexpr uint32_t kVnetHdrLen = sizeof(VnetHdr);  // backend framing, always
inline constexpr uint32_t kVnetHdrLegacyLen = 10;         // legacy driver without MRG_RXBUF

// flags (§5.1.6)
inline constexpr uint8_t kHdrFlagNeedsCsum = 1;
inline constexpr uint8_t kHdrFlagDataValid = 2;
inline constexpr uint8_t kHdrFlagRscInfo = 4;
// gso_type (§5.1.6)
inline constexpr uint8_t kGsoNone = 0;
inline constexpr uint8_t kGsoTcpV4 = 1;
inline constexpr uint8_t kGsoUdp = 3;
inline constexpr uint8_t kGsoTcpV6 = 4;
inline constexpr uint8_t kGsoEcn = 0x80;

// Largest Ethernet frame a backend carries (without the header): a 64 KiB GSO super-frame plus
// Ethernet and VLAN headers (§5.1.6.3.1 "up to 65550 bytes" for TSO buffers, rounded up).
inline constexpr uint32_t kMaxFrame = 65536 + 14 + 4;
inline constexpr uint32_t kMinFrame = 14;  // an Ethernet header

// Offloads in one direction. For a backend's supported set, each flag means both "may be sent
// with this offload" (host side segments / checksums) and "can deliver frames with it".
struct Offloads {
  bool csum = false;  // partial checksums (NEEDS_CSUM)
  bool tso4 = false;
  bool tso6 = false;
  bool ecn = false;
  bool ufo = false;
  bool operator==(const Offloads&) const = default;
};

}  // namespace qvm::net
