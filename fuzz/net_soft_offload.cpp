// Fuzz target: software checksum completion and TCP segmentation (net/soft_offload.hpp), what a
// peer link runs on frames another guest wrote. Input: a selector (template frame: TCP over IPv4,
// IPv6, with an 802.1Q tag, or raw bytes), the virtio-net header fields, a payload length, then
// byte patches at input-chosen offsets, so mutations stay near frames that parse.
// Properties: no crash, hang or sanitizer report; segment_tcp emits exactly the count it returns,
// at most kMaxSegments, none longer than the frame, and nothing when it fails; their payloads add
// up to the frame's; complete_checksum changes at most the two bytes of the checksum field.
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_input.hpp"
#include "net/soft_offload.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;

std::vector<uint8_t> template_frame(uint8_t sel, size_t payload) {
  std::vector<uint8_t> f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
  const bool vlan = sel & 4, v6 = sel & 2;
  if (vlan) f.insert(f.end(), {0x81, 0x00, 0x00, 0x07});
  f.insert(f.end(),
           {static_cast<uint8_t>(v6 ? 0x86 : 0x08), static_cast<uint8_t>(v6 ? 0xdd : 0x00)});
  if (v6) {
    f.insert(f.end(), {0x60, 0, 0, 0, 0, 0, 6, 64});
    f.resize(f.size() + 32, 0x11);
  } else {
    f.insert(f.end(), {0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2});
  }
  f.insert(f.end(),
           {0x03, 0xe8, 0x07, 0xd0, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x99, 0xff, 0xff, 0, 0, 0, 0});
  for (size_t i = 0; i < payload; ++i) f.push_back(static_cast<uint8_t>(i));
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qvm::net;
  Input in(data, size);
  const uint8_t sel = in.u8();
  VnetHdr h{};
  h.flags = in.u8();
  h.gso_type = in.u8();
  h.gso_size = in.u16();
  h.csum_start = in.u16();
  h.csum_offset = in.u16();
  std::vector<uint8_t> f;
  if (sel & 1) {
    f = in.bytes(in.u16() % 2048);
  } else {
    f = template_frame(sel, in.u16() % 20000);
    for (int i = 0; i < 8 && !in.empty(); ++i) {  // patches near the headers
      const size_t at = in.u8() % 96;
      const uint8_t v = in.u8();
      if (at < f.size()) f[at] = v;
    }
  }

  size_t emitted = 0, bytes = 0;
  auto n = segment_tcp(f, h, [&](std::span<const uint8_t> s) {
    ++emitted;
    check(s.size() <= f.size());
    bytes += s.size();
  });
  if (n) {
    check(*n == emitted && emitted >= 1 && emitted <= kMaxSegments);
    check(bytes >= f.size());  // every payload byte once, the headers once per segment
  } else {
    check(emitted == 0);
  }

  std::vector<uint8_t> c = f;
  if (complete_checksum(c, h)) {
    check(c.size() == f.size());
    const size_t field = size_t{h.csum_start} + h.csum_offset;
    for (size_t i = 0; i < c.size(); ++i)
      if (i != field && i != field + 1) check(c[i] == f[i]);
  } else {
    check(c == f);
  }
  return 0;
}
