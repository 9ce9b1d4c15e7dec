#include "net/soft_offload.hpp"

#include <algorithm>
#include <cstring>

#include "base/log.hpp"

namespace qvm::net {
namespace {

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint8_t kProtoTcp = 6;
constexpr size_t kEthLen = 14, kVlanLen = 4, kIpv4MinLen = 20, kIpv6Len = 40, kTcpMinLen = 20;
// TCP flags (RFC 9293 §3.1; CWR from RFC 3168 §6.1).
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;
constexpr size_t kTcpCsumOffset = 16;

uint16_t be16(std::span<const uint8_t> b, size_t off) {
  return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}
uint32_t be32(std::span<const uint8_t> b, size_t off) {
  return uint32_t{b[off]} << 24 | uint32_t{b[off + 1]} << 16 | uint32_t{b[off + 2]} << 8 |
         b[off + 3];
}
void put16(std::span<uint8_t> b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}
void put32(std::span<uint8_t> b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b[off + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
// A checksum field never holds 0 for a computed sum (Linux's CSUM_MANGLED_0).
uint16_t final_csum(uint32_t sum) {
  const uint16_t c = csum_fold(sum);
  return c == 0 ? 0xffff : c;
}

// Where the layers of a TCP frame start.
struct TcpLayout {
  size_t l3 = 0;    // IP header
  size_t l4 = 0;    // TCP header
  size_t hlen = 0;  // all headers (the part copied into every segment)
  bool v4 = false;
};

Result<TcpLayout> parse_tcp(std::span<const uint8_t> f, const VnetHdr& h) {
  TcpLayout t;
  if (f.size() < kEthLen) return make_error("shorter than an Ethernet header");
  t.l3 = kEthLen;
  uint16_t type = be16(f, 12);
  if (type == kEtherVlan) {
    if (f.size() < kEthLen + kVlanLen) return make_error("truncated 802.1Q tag");
    t.l3 += kVlanLen;
    type = be16(f, 16);
  }
  if (type == kEtherIpv4) {
    t.v4 = true;
    if (f.size() < t.l3 + kIpv4MinLen) return make_error("truncated IPv4 header");
    const size_t ihl = (size_t{f[t.l3]} & 0x0f) * 4;
    if ((f[t.l3] >> 4) != 4 || ihl < kIpv4MinLen) return make_error("bad IPv4 header");
    if (f[t.l3 + 9] != kProtoTcp) return make_error("IPv4 but not TCP");
    t.l4 = t.l3 + ihl;
  } else if (type == kEtherIpv6) {
    if (f.size() < t.l3 + kIpv6Len || (f[t.l3] >> 4) != 6) return make_error("bad IPv6 header");
    if (f[t.l3 + 6] == kProtoTcp) {
      t.l4 = t.l3 + kIpv6Len;
    } else if ((h.flags & kHdrFlagNeedsCsum) && h.csum_offset == kTcpCsumOffset &&
               h.csum_start > t.l3 + kIpv6Len) {
      t.l4 = h.csum_start;  // after extension headers: the sender says where TCP starts
    } else {
      return make_error("IPv6 but not TCP");
    }
  } else {
    return make_error("not IPv4 or IPv6");
  }
  if (f.size() < t.l4 + kTcpMinLen) return make_error("truncated TCP header");
  const size_t doff = size_t{f[t.l4 + 12]} / 16 * 4;
  if (doff < kTcpMinLen || f.size() < t.l4 + doff) return make_error("bad TCP header length");
  t.hlen = t.l4 + doff;
  return t;
}

}  // namespace

uint32_t csum_partial(std::span<const uint8_t> b, uint32_t sum) {
  uint64_t s = sum;
  size_t i = 0;
  for (; i + 1 < b.size(); i += 2) s += static_cast<uint32_t>(b[i] << 8 | b[i + 1]);
  if (i < b.size()) s += static_cast<uint32_t>(b[i] << 8);
  while (s >> 32) s = (s & 0xffffffff) + (s >> 32);
  return static_cast<uint32_t>(s);
}

uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Status complete_checksum(std::span<uint8_t> frame, const VnetHdr& h) {
  const size_t start = h.csum_start, field = size_t{h.csum_start} + h.csum_offset;
  if (start >= frame.size() || field + 2 > frame.size())
    return make_error(strprintf("checksum at %zu (from %zu) outside a %zu-byte frame", field, start,
                                frame.size()));
  // The field holds the pseudo-header sum; the sum over the rest includes it (§5.1.6.2).
  put16(frame, field, final_csum(csum_partial(frame.subspan(start))));
  return {};
}

Result<size_t> segment_tcp(std::span<const uint8_t> frame, const VnetHdr& h,
                           const std::function<void(std::span<const uint8_t>)>& emit) {
  const TcpLayout t = QVM_TRY(parse_tcp(frame, h));
  const size_t mss = h.gso_size;
  if (mss == 0) return make_error("gso_size 0");
  const size_t payload = frame.size() - t.hlen;
  const size_t count = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (count > kMaxSegments)
    return make_error(
        strprintf("%zu segments of %zu bytes: more than %zu", count, mss, kMaxSegments));
  const uint32_t seq0 = be32(frame, t.l4 + 4);
  const uint8_t flags0 = frame[t.l4 + 13];
  const uint16_t id0 = t.v4 ? be16(frame, t.l3 + 4) : 0;
  std::vector<uint8_t> seg(t.hlen + std::min(mss, payload));
  for (size_t i = 0; i < count; ++i) {
    const size_t off = i * mss, n = std::min(mss, payload - off);
    seg.resize(t.hlen + n);
    std::span<uint8_t> s(seg);
    std::memcpy(seg.data(), frame.data(), t.hlen);
    std::memcpy(seg.data() + t.hlen, frame.data() + t.hlen + off, n);
    const size_t tcp_len = seg.size() - t.l4;
    if (t.v4) {
      const size_t ihl = t.l4 - t.l3;
      put16(s, t.l3 + 2, static_cast<uint16_t>(seg.size() - t.l3));
      put16(s, t.l3 + 4, static_cast<uint16_t>(id0 + i));
      put16(s, t.l3 + 10, 0);
      put16(s, t.l3 + 10, csum_fold(csum_partial(s.subspan(t.l3, ihl))));
    } else {
      put16(s, t.l3 + 4, static_cast<uint16_t>(seg.size() - t.l3 - kIpv6Len));
    }
    put32(s, t.l4 + 4, seq0 + static_cast<uint32_t>(off));
    uint8_t fl = flags0;
    if (i + 1 < count) fl &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (i > 0) fl &= static_cast<uint8_t>(~kTcpCwr);
    s[t.l4 + 13] = fl;
    // Pseudo header (RFC 9293 §3.1; RFC 8200 §8.1), then the segment.
    uint32_t sum =
        t.v4 ? csum_partial(s.subspan(t.l3 + 12, 8)) : csum_partial(s.subspan(t.l3 + 8, 32));
    const uint8_t tail[4] = {0, kProtoTcp, static_cast<uint8_t>(tcp_len >> 8),
                             static_cast<uint8_t>(tcp_len)};  // protocol and TCP length
    sum = csum_partial(tail, sum);
    put16(s, t.l4 + kTcpCsumOffset, 0);
    put16(s, t.l4 + kTcpCsumOffset, final_csum(csum_partial(s.subspan(t.l4), sum)));
    emit(s);
  }
  return count;
}

}  // namespace qvm::net
