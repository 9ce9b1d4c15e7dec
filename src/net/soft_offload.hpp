// Software fallbacks for the offloads a virtio-net header asks of the receiver (virtio 1.2
// §5.1.6.2, §5.1.6.4): checksum completion (VIRTIO_NET_HDR_F_NEEDS_CSUM) and TCP segmentation
// (VIRTIO_NET_HDR_GSO_TCPV4/TCPV6, with or without ECN). A peer link uses them when the sending
// guest negotiated an offload the receiving guest did not (docs/networking.md, "Peer links whose
// guests negotiated differently"): the receiver gets ordinary frames with complete checksums.
//
// Everything here reads frames another guest wrote: all offsets are checked against the frame,
// the number of segments is bounded, nothing is trusted from the header beyond what it asks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/result.hpp"
#include "net/vnet_hdr.hpp"

namespace qvm::net {

// RFC 1071 Internet checksum: the 32-bit one's complement partial sum of `b` (as 16-bit
// big-endian words, an odd last byte padded with zero) added to `sum`, and its fold.
uint32_t csum_partial(std::span<const uint8_t> b, uint32_t sum = 0);
uint16_t csum_fold(uint32_t sum);  // ~(16-bit fold)

// NEEDS_CSUM: the checksum over [csum_start, end of frame) stored at csum_start + csum_offset,
// where the sender left the pseudo-header sum (§5.1.6.2). A result of 0 is stored as 0xffff, as
// Linux does (equivalent for TCP, required for UDP). Fails if the offsets leave the frame.
Status complete_checksum(std::span<uint8_t> frame, const VnetHdr& h);

// Most segments one frame may become (a 64 KiB frame with an MSS of 64 bytes).
inline constexpr size_t kMaxSegments = 1024;

// TCP segmentation of a GSO frame (Ethernet, an optional 802.1Q tag, IPv4 or IPv6, TCP): calls
// `emit` once per segment, in order, with a frame of at most the headers + gso_size payload
// bytes whose IPv4 total length / identification / header checksum, IPv6 payload length, TCP
// sequence number, flags (FIN and PSH only on the last segment, CWR only on the first) and TCP
// checksum are set as if the sender had sent the segments itself. The span is valid during the
// call only. Returns the number of segments; fails (emitting nothing) for a frame that is not
// TCP over IPv4/IPv6, whose headers leave the frame, with gso_size 0, or that would need more
// than kMaxSegments segments.
Result<size_t> segment_tcp(std::span<const uint8_t> frame, const VnetHdr& h,
                           const std::function<void(std::span<const uint8_t>)>& emit);

}  // namespace qvm::net
