// TCP/UDP frame builders and an independent Internet checksum for the offload tests
// (soft_offload_test.cpp, peer_link_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/vnet_hdr.hpp"

namespace qvm::net::testing {

using Bytes = std::vector<uint8_t>;

// Reference one's complement sum with end-around carry per word (RFC 1071 §4.1).
inline uint16_t ref_sum(const Bytes& b) {
  uint32_t s = 0;
  for (size_t i = 0; i < b.size(); i += 2) {
    s += static_cast<uint32_t>(b[i] << 8 | (i + 1 < b.size() ? b[i + 1] : 0));
    s = (s & 0xffff) + (s >> 16);
  }
  return static_cast<uint16_t>(s);
}
inline uint16_t be16(const Bytes& b, size_t o) {
  return static_cast<uint16_t>(b[o] << 8 | b[o + 1]);
}
inline uint32_t be32(const Bytes& b, size_t o) {
  return uint32_t{b[o]} << 24 | uint32_t{b[o + 1]} << 16 | uint32_t{b[o + 2]} << 8 | b[o + 3];
}
inline void put16(Bytes& b, size_t o, uint16_t v) {
  b[o] = static_cast<uint8_t>(v >> 8);
  b[o + 1] = static_cast<uint8_t>(v);
}

// The pseudo header of an L4 packet starting at l4 (IPv4 or IPv6 at l3), then the packet.
inline Bytes pseudo_and_l4(const Bytes& f, size_t l3, size_t l4, bool v4, uint8_t proto) {
  Bytes p;
  const size_t len = f.size() - l4;
  if (v4) {
    p.insert(p.end(), f.begin() + static_cast<long>(l3 + 12),
             f.begin() + static_cast<long>(l3 + 20));
  } else {
    p.insert(p.end(), f.begin() + static_cast<long>(l3 + 8),
             f.begin() + static_cast<long>(l3 + 40));
    p.insert(p.end(), {0, 0});
  }
  p.insert(p.end(), {0, proto, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)});
  p.insert(p.end(), f.begin() + static_cast<long>(l4), f.end());
  return p;
}

// Ethernet (+ optional 802.1Q) + IPv4/IPv6 + TCP (20 bytes) + payload, as a Linux sender hands
// a TSO frame to virtio-net.
struct TcpFrame {
  Bytes f;
  size_t l3, l4;
  Bytes payload;
};
inline TcpFrame tcp_frame(bool v4, bool vlan, size_t payload, uint8_t flags, uint32_t seq) {
  TcpFrame t;
  Bytes& f = t.f;
  f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
  if (vlan) f.insert(f.end(), {0x81, 0x00, 0x00, 0x05});
  f.insert(f.end(),
           {static_cast<uint8_t>(v4 ? 0x08 : 0x86), static_cast<uint8_t>(v4 ? 0x00 : 0xdd)});
  t.l3 = f.size();
  if (v4) {
    f.insert(f.end(), {0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2});
  } else {
    f.insert(f.end(), {0x60, 0, 0, 0, 0, 0, 6, 64});
    for (int i = 0; i < 32; ++i) f.push_back(static_cast<uint8_t>(i < 16 ? 0x20 + i : 0x40 + i));
  }
  t.l4 = f.size();
  f.insert(f.end(), {0x03, 0xe8, 0x07, 0xd0});  // ports 1000 -> 2000
  for (int i = 0; i < 4; ++i) f.push_back(static_cast<uint8_t>(seq >> (24 - 8 * i)));
  f.insert(f.end(), {0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0xaa, 0xbb, 0, 0});  // csum left junk
  for (size_t i = 0; i < payload; ++i) t.payload.push_back(static_cast<uint8_t>(i * 7 + i / 251));
  f.insert(f.end(), t.payload.begin(), t.payload.end());
  return t;
}

inline VnetHdr gso(uint8_t type, uint16_t mss, const TcpFrame& t) {
  VnetHdr h{};
  h.flags = kHdrFlagNeedsCsum;
  h.gso_type = type;
  h.gso_size = mss;
  h.hdr_len = static_cast<uint16_t>(t.l4 + 20);
  h.csum_start = static_cast<uint16_t>(t.l4);
  h.csum_offset = 16;
  return h;
}

}  // namespace qvm::net::testing
