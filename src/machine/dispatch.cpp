#include "machine/dispatch.hpp"

#include <algorithm>

namespace qvm::machine {

DispatchResult dispatch_io(const kvm::IoExit& e, const bus::Bus& pio, UnclaimedAction policy) {
  DispatchResult r;
  size_t size = e.size;
  if (size == 0 || size > 4 || e.data.size() < size * e.count) return r;
  for (uint32_t i = 0; i < e.count; ++i) {
    auto chunk = e.data.subspan(i * size, size);
    bool hit = e.write ? pio.write(e.port, chunk) : pio.read(e.port, chunk);
    if (!hit) {
      // spec §3.12: reads of unassigned locations return all ones; writes are dropped.
      if (!e.write) std::fill(chunk.begin(), chunk.end(), uint8_t{0xff});
      if (!r.unclaimed) r.address = e.port;
      r.unclaimed = true;
      r.abort = r.abort || policy == UnclaimedAction::kAbort;
    }
  }
  return r;
}

DispatchResult dispatch_mmio(const kvm::MmioExit& e, const bus::Bus& mmio, UnclaimedAction policy) {
  DispatchResult r;
  if (e.len == 0 || e.len > 8 || e.data.size() < e.len) return r;
  auto d = e.data.first(e.len);
  bool hit = e.write ? mmio.write(e.addr, d) : mmio.read(e.addr, d);
  if (!hit) {
    if (!e.write) std::fill(d.begin(), d.end(), uint8_t{0xff});
    r.unclaimed = true;
    r.address = e.addr;
    r.abort = policy == UnclaimedAction::kAbort;
  }
  return r;
}

}  // namespace qvm::machine
