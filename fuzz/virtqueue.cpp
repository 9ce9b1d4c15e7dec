// Fuzz target: the split virtqueue (virtio 1.2 §2.7) over hostile guest memory. Input: an 8-byte
// header (queue size up to 1024, ring features, ring addresses) followed by the guest memory image.
// The target pops chains, reads and writes them through ChainReader/ChainWriter and the iovec view,
// and returns them to the used ring. Property: no crash, hang, leak or out-of-bounds access, and
// every chain handed out lies in guest memory.
#include "virtio/queue/virtqueue.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "memory/guest_memory.hpp"
#include "virtio/queue/chain.hpp"

namespace {

constexpr uint64_t kRam = 0x10000;

uint16_t le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qvm;
  if (size < 8) return 0;
  memory::GuestMemory mem;
  if (!mem.add_region(0, kRam, false) || !mem.add_region(kRam, 0x1000, true)) return 0;
  const size_t image = std::min<size_t>(size - 8, kRam);
  (void)mem.write(0, std::span<const uint8_t>(data + 8, image));

  virtio::Queue q(virtio::Queue::kMaxSize);
  // Up to 1024 entries: a drain costs up to size^2 descriptor reads (heads may share one long
  // chain), which is legal but would only slow the fuzzer down at 32768.
  q.set_size(static_cast<uint16_t>(1u << (data[0] % 11)));
  q.set_event_idx(data[1] & 1);
  q.set_indirect(data[1] & 2);
  const bool use_next = data[1] & 4;
  q.set_desc_addr(le16(data + 2) & ~15u);
  q.set_avail_addr(le16(data + 4) & ~1u);
  q.set_used_addr(le16(data + 6) & ~3u);
  (void)q.validate(mem);  // the queue must cope with rings validate() would refuse
  q.set_ready(true);

  std::vector<uint8_t> buf(4096);
  for (int round = 0; round < 64; ++round) {
    std::optional<virtio::DescriptorChain> chain;
    if (use_next) {
      chain = q.next(mem);
    } else {
      auto r = q.pop(mem);
      if (!r) {
        if (q.needs_reset()) break;
        (void)q.add_used(mem, q.failed_head(), 0);
        continue;
      }
      chain = std::move(*r);
    }
    if (!chain) break;
    for (const auto& b : chain->readable) check(mem.contains(b.addr, b.len));
    for (const auto& b : chain->writable) check(mem.contains(b.addr, b.len));
    check(chain->head < q.size());
    virtio::ChainReader r(mem, *chain);
    for (int i = 0; i < 16 && r.remaining() > 0; ++i) {
      auto n = r.read(buf);
      check(n.ok());
    }
    std::vector<iovec> iov;
    virtio::ChainWriter w(mem, *chain);
    auto got = w.iovecs(1 << 20, iov);
    check(got.ok());
    auto n = w.write(std::span<const uint8_t>(buf).first(std::min<size_t>(buf.size(), 100)));
    check(n.ok());
    (void)q.add_used(mem, chain->head, w.bytes_written());
    (void)q.needs_notification(mem);
    if (round % 7 == 3) q.undo_pop();
  }
  (void)q.describe(mem);  // SIGUSR1 report: reads the driver's ring fields
  return 0;
}
