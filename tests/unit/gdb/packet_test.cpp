// GDB packet framing (src/gdb/packet.*): checksums, acks, the interrupt byte, escapes, bounds.
#include "gdb/packet.hpp"

#include <gtest/gtest.h>

namespace qvm::gdb {
namespace {

std::vector<Input> decode(std::string_view s) {
  PacketDecoder d;
  std::vector<Input> out;
  d.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), out);
  return out;
}

TEST(GdbPacket, DecodesAValidPacketAndRejectsABadChecksum) {
  auto in = decode("$qSupported#37");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kPacket);
  EXPECT_EQ(in[0].payload, "qSupported");
  in = decode("$qSupported#38");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
  in = decode("$g#zz");
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
}

TEST(GdbPacket, AcksInterruptsAndNoiseBetweenPackets) {
  auto in = decode("+-junk\x03$?#3f");
  ASSERT_EQ(in.size(), 4u);
  EXPECT_EQ(in[0].kind, Input::Kind::kAck);
  EXPECT_EQ(in[1].kind, Input::Kind::kNack);
  EXPECT_EQ(in[2].kind, Input::Kind::kInterrupt);
  EXPECT_EQ(in[3].kind, Input::Kind::kPacket);
  EXPECT_EQ(in[3].payload, "?");
}

TEST(GdbPacket, APacketSplitAcrossReadsIsReassembled) {
  PacketDecoder d;
  std::vector<Input> out;
  const std::string s = frame("m100000,40");
  for (char c : s) d.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&c), 1), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload, "m100000,40");
}

TEST(GdbPacket, AnOversizedPacketIsRejectedWithoutGrowingPastTheBound) {
  std::string big(kMaxPacket + 100, 'a');
  auto in = decode(frame(big));
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
  // The next packet still decodes.
  in = decode(frame(big) + frame("?"));
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(in[1].payload, "?");
}

TEST(GdbPacket, ANewPacketStartInsideAPacketRestarts) {
  auto in = decode("$m1,2$?#3f");
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(in[0].kind, Input::Kind::kBadPacket);
  EXPECT_EQ(in[1].payload, "?");
}

TEST(GdbPacket, FramingEscapesSpecialBytesAndUnescapeUndoesIt) {
  const std::string payload = std::string("a#b$c}d*e");
  const std::string f = frame(payload);
  EXPECT_EQ(f.substr(0, 1), "$");
  EXPECT_EQ(f.find('#'), f.size() - 3);  // only the trailer's '#'
  auto in = decode(f);
  ASSERT_EQ(in.size(), 1u);
  auto raw = unescape(in[0].payload);
  ASSERT_TRUE(raw);
  EXPECT_EQ(std::string(raw->begin(), raw->end()), payload);
  EXPECT_FALSE(unescape("abc}"));
}

TEST(GdbPacket, HexHelpersAreStrict) {
  EXPECT_EQ(parse_hex("1f"), 0x1fu);
  EXPECT_FALSE(parse_hex(""));
  EXPECT_FALSE(parse_hex("0x1"));
  EXPECT_FALSE(parse_hex("11112222333344445"));  // 17 digits
  EXPECT_FALSE(parse_hex_bytes("abc"));
  EXPECT_FALSE(parse_hex_bytes("zz"));
  EXPECT_EQ(to_hex(std::string_view("\x01\xab", 2)), "01ab");
  EXPECT_EQ(hex_u64(0), "0");
  EXPECT_EQ(hex_u64(0x1234abcd), "1234abcd");
}

}  // namespace
}  // namespace qvm::gdb
