// Software checksum completion and TCP segmentation (net/soft_offload.hpp), checked against an
// independent checksum written here and against the frame the sender meant.
#include "net/soft_offload.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "tcp_frames.hpp"

namespace qvm::net {
namespace {

using namespace testing;  // NOLINT: the frame builders

std::vector<Bytes> segments(const Bytes& f, const VnetHdr& h, Result<size_t>* r = nullptr) {
  std::vector<Bytes> out;
  auto n =
      segment_tcp(f, h, [&](std::span<const uint8_t> s) { out.emplace_back(s.begin(), s.end()); });
  if (r) *r = n;
  if (n) {
    EXPECT_EQ(*n, out.size());
  }
  return out;
}

void check_segments(const TcpFrame& t, const std::vector<Bytes>& segs, bool v4, size_t mss,
                    uint32_t seq0, uint8_t flags) {
  Bytes joined;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Bytes& s = segs[i];
    SCOPED_TRACE("segment " + std::to_string(i));
    ASSERT_LE(s.size(), t.l4 + 20 + mss);
    EXPECT_TRUE(std::equal(s.begin(), s.begin() + static_cast<long>(t.l3), t.f.begin()));
    if (v4) {
      EXPECT_EQ(be16(s, t.l3 + 2), s.size() - t.l3);
      EXPECT_EQ(be16(s, t.l3 + 4), 0x1234 + i);
      EXPECT_EQ(
          ref_sum(Bytes(s.begin() + static_cast<long>(t.l3), s.begin() + static_cast<long>(t.l4))),
          0xffff);
    } else {
      EXPECT_EQ(be16(s, t.l3 + 4), s.size() - t.l3 - 40);
    }
    EXPECT_EQ(be32(s, t.l4 + 4), seq0 + static_cast<uint32_t>(i * mss));
    const uint8_t fl = s[t.l4 + 13];
    const bool last = i + 1 == segs.size(), first = i == 0;
    EXPECT_EQ(fl & 0x01, last ? flags & 0x01 : 0) << "FIN";
    EXPECT_EQ(fl & 0x08, last ? flags & 0x08 : 0) << "PSH";
    EXPECT_EQ(fl & 0x80, first ? flags & 0x80 : 0) << "CWR";
    EXPECT_EQ(fl & 0x10, flags & 0x10) << "ACK";
    EXPECT_EQ(ref_sum(pseudo_and_l4(s, t.l3, t.l4, v4, 6)), 0xffff) << "TCP checksum";
    joined.insert(joined.end(), s.begin() + static_cast<long>(t.l4 + 20), s.end());
  }
  EXPECT_EQ(joined, t.payload);
}

TEST(SoftOffload, SegmentsTcpOverIpv4) {
  const uint8_t flags = 0x80 | 0x10 | 0x08 | 0x01;  // CWR ACK PSH FIN
  const uint32_t seq = 0xfffff000;                  // wraps inside the frame
  auto t = tcp_frame(true, false, 10000, flags, seq);
  auto segs = segments(t.f, gso(kGsoTcpV4, 1448, t));
  ASSERT_EQ(segs.size(), 7u);
  EXPECT_EQ(segs.back().size(), t.l4 + 20 + (10000 - 6 * 1448));
  check_segments(t, segs, true, 1448, seq, flags);
}

TEST(SoftOffload, SegmentsTcpOverIpv6WithVlanAndEcn) {
  const uint8_t flags = 0x80 | 0x10;
  auto t = tcp_frame(false, true, 3000, flags, 77);
  auto segs = segments(t.f, gso(kGsoTcpV6 | kGsoEcn, 1000, t));
  ASSERT_EQ(segs.size(), 3u);
  check_segments(t, segs, false, 1000, 77, flags);
}

TEST(SoftOffload, FrameWithoutPayloadIsOneSegment) {
  auto t = tcp_frame(true, false, 0, 0x10, 5);
  auto segs = segments(t.f, gso(kGsoTcpV4, 1448, t));
  ASSERT_EQ(segs.size(), 1u);
  check_segments(t, segs, true, 1448, 5, 0x10);
}

TEST(SoftOffload, CompletesAPartialUdpChecksum) {
  // UDP over IPv4, 301 bytes of data (odd: the last byte is padded in the sum).
  auto t = tcp_frame(true, false, 0, 0, 0);
  Bytes f(t.f.begin(), t.f.begin() + static_cast<long>(t.l4));
  f[t.l3 + 9] = 17;
  const size_t l4 = f.size();
  f.insert(f.end(), {0x13, 0x88, 0x13, 0x89, 0x01, 0x35, 0, 0});  // length 309
  for (int i = 0; i < 301; ++i) f.push_back(static_cast<uint8_t>(i ^ 0x5a));
  // What the sender leaves in the field: the folded pseudo-header sum (not complemented).
  Bytes ph(f.begin() + static_cast<long>(t.l3 + 12), f.begin() + static_cast<long>(t.l3 + 20));
  ph.insert(ph.end(), {0, 17, 0x01, 0x35});
  put16(f, l4 + 6, ref_sum(ph));
  VnetHdr h{};
  h.flags = kHdrFlagNeedsCsum;
  h.csum_start = static_cast<uint16_t>(l4);
  h.csum_offset = 6;
  ASSERT_TRUE(complete_checksum(f, h).ok());
  EXPECT_NE(be16(f, l4 + 6), 0);
  EXPECT_EQ(ref_sum(pseudo_and_l4(f, t.l3, l4, true, 17)), 0xffff);
}

TEST(SoftOffload, MalformedFramesAreRefusedWithoutOutput) {
  auto t = tcp_frame(true, false, 4000, 0x10, 1);
  Result<size_t> r = size_t{0};
  VnetHdr h = gso(kGsoTcpV4, 1448, t);

  Bytes arp = t.f;
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_TRUE(segments(arp, h, &r).empty());
  EXPECT_FALSE(r.ok());

  Bytes udp = t.f;
  udp[t.l3 + 9] = 17;
  EXPECT_TRUE(segments(udp, h, &r).empty());
  EXPECT_FALSE(r.ok());

  Bytes cut(t.f.begin(), t.f.begin() + static_cast<long>(t.l4 + 10));  // TCP header cut short
  EXPECT_TRUE(segments(cut, h, &r).empty());
  EXPECT_FALSE(r.ok());

  Bytes bad_doff = t.f;
  bad_doff[t.l4 + 12] = 0xf0;  // 60-byte TCP header: fine; 0x10 (4 bytes) is not
  bad_doff[t.l4 + 12] = 0x10;
  EXPECT_TRUE(segments(bad_doff, h, &r).empty());
  EXPECT_FALSE(r.ok());

  VnetHdr zero = h;
  zero.gso_size = 0;
  EXPECT_TRUE(segments(t.f, zero, &r).empty());
  EXPECT_FALSE(r.ok());

  auto big = tcp_frame(true, false, 60000, 0x10, 1);
  VnetHdr tiny = gso(kGsoTcpV4, 8, big);  // 7500 segments: a guest asking for too much work
  EXPECT_TRUE(segments(big.f, tiny, &r).empty());
  EXPECT_FALSE(r.ok());

  VnetHdr outside{};
  outside.csum_start = static_cast<uint16_t>(t.f.size() - 1);
  outside.csum_offset = 0;
  Bytes f = t.f;
  EXPECT_FALSE(complete_checksum(f, outside).ok());
  outside.csum_start = 10;
  outside.csum_offset = 0xffff;
  EXPECT_FALSE(complete_checksum(f, outside).ok());
  EXPECT_EQ(f, t.f);
}

}  // namespace
}  // namespace qvm::net
