// Fuzz target: PCI configuration space as a guest reaches it (PCI Local Bus Specification 3.0
// §3.2.2.3.2 configuration mechanism #1 at io 0xCF8/0xCFC, PCIe 4.0 §7.2.2 ECAM; §6.1 header
// registers, §6.2.5.1 BAR sizing, §6.8.2 MSI-X): bus 0 with the host bridge, a multi-function
// device at 00:01.0 (32-bit memory BAR 0 holding an MSI-X table, I/O BAR 1, 64-bit prefetchable
// BAR 2, 64-bit 8 GiB BAR 4, MSI-X and vendor capabilities) and 00:01.1 (4-byte I/O BAR 0,
// 4 KiB BAR 1, 16-byte BAR 5), wired through real port-I/O and MMIO buses. BAR decode changes
// move the bus ranges after the access returns, as the machine defers them. Firmware and every
// OS probe all of this (and size every BAR) with whatever access widths they like.
// Input: operations {op, ...}. op & 7: 0 raw 0xCF8-0xCFF port access (offset, le32 value); 1/2
// config access to function kTargets[(op >> 3) & 7] through 0xCF8/0xCFC (1) or ECAM (2): control
// byte (bit 0 write, bits 2:1 size 1/2/4), register byte (ECAM: le16), le32 value for writes,
// then a read through both mechanisms; 3 BAR sizing (all ones, read back, optionally restore);
// 4 BAR move (le32 address, optional high dword and Command); 5 MSI-X notify(vector); 6 access
// to a BAR's current address on its bus; 7 raw ECAM window access (le32 offset, le32 value).
// Properties: no crash, hang or sanitizer report; a BAR read back after writing all ones is a
// size mask (contiguous ones down to the BAR's power-of-two size) with its type bits preserved,
// and any BAR reads as an address aligned to its size with its type bits; unimplemented BARs read
// 0; every register byte changes only in its writable bits (IDs, class, header type, capability
// chain and MSI-X table size/offsets stay), and a write through either mechanism lands exactly
// as those masks say; both mechanisms read the same values; absent functions and other buses
// read all ones; CONFIG_ADDRESS reads back its writable bits and only byte writes to 0xCF9 reach
// the reset control register; MSI-X Enable/Function Mask state follows Message Control, a vector
// stays pending only while it cannot be sent, and messages are sent only while enabled and
// unmasked, never more than were signalled; a BAR whose decode address was free is reachable
// there on its bus (the MSI-X table through BAR 0).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "bus/bus.hpp"
#include "fuzz_input.hpp"
#include "pci/config_space.hpp"
#include "pci/msix.hpp"
#include "pci/pci_root.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
namespace pci = qvm::pci;
namespace bus = qvm::bus;

constexpr uint64_t kEcam = 0xb0000000;
constexpr uint16_t kVectors = 5;

struct Move {
  struct Fn* fn;
  uint8_t bar;
  uint64_t to;
};

// What sits behind a BAR without a device model: a few scratch bytes.
class ScratchBar final : public bus::BusDevice {
 public:
  void read(uint64_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = bytes_[(offset + i) % bytes_.size()];
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) bytes_[(offset + i) % bytes_.size()] = data[i];
  }

 private:
  std::array<uint8_t, 64> bytes_{};
};

struct Fn final : pci::PciFunction {
  pci::ConfigSpace cfg;
  std::unique_ptr<pci::Msix> msix;
  std::array<std::optional<uint64_t>, 6> decoded{};  // where each BAR decodes (config's view)
  std::array<uint64_t, 6> at{};                      // where its bus range is
  std::array<uint8_t, 256> writable{};  // the harness's own idea of each byte's write mask
  std::array<uint8_t, 256> initial{};
  std::vector<Move>* moves = nullptr;

  Fn(uint16_t vendor, uint16_t device, uint32_t class_code) : cfg(vendor, device, class_code, 1) {
    writable[0x04] = 0x07;  // I/O, memory, bus master (§6.2.2)
    writable[0x05] = 0x04;  // INTx disable
    writable[0x0c] = writable[0x0d] = writable[0x3c] = 0xff;
  }
  pci::ConfigSpace& config() override { return cfg; }
  void config_written(uint16_t offset, unsigned size) override {
    if (msix) msix->config_written(offset, size);
    if (offset < 0x28 && offset + size > 0x04) check_bars();
  }
  void check_bars() {
    for (const auto& b : cfg.bars()) {
      std::optional<uint64_t> now;
      if (b.io ? cfg.io_enabled() : cfg.memory_enabled()) now = cfg.bar(b.index)->addr;
      if (now == decoded[b.index]) continue;
      decoded[b.index] = now;
      if (now && moves) moves->push_back({this, b.index, *now});
    }
  }
  void add_bar(const pci::BarInfo& b, uint64_t addr) {
    cfg.add_bar(b);
    cfg.set_bar_address(b.index, addr);
    at[b.index] = addr;
    const uint64_t mask = ~(b.size - 1) & (b.io ? ~uint64_t{3} : ~uint64_t{0xf});
    const auto off = static_cast<size_t>(0x10 + 4 * b.index);
    for (size_t i = 0; i < (b.is64 ? 8u : 4u); ++i)
      writable[off + i] = static_cast<uint8_t>(mask >> (8 * i));
  }
  void snapshot() {
    for (uint16_t i = 0; i < 256; ++i) initial[i] = cfg.raw8(i);
  }
};

struct Target {
  uint8_t bus, dev, fn;
};
// Config-access targets: the two functions (twice as likely), the host bridge, absent ones.
constexpr Target kTargets[8] = {{0, 1, 0}, {0, 1, 1}, {0, 1, 0}, {0, 1, 1},
                                {0, 0, 0}, {0, 2, 0}, {1, 1, 0}, {0, 31, 7}};

struct Harness {
  bus::Bus pio{"pio"};
  bus::Bus mmio{"mmio"};
  pci::PciRoot root;
  std::vector<Move> moves;
  std::shared_ptr<Fn> a, b;
  std::shared_ptr<pci::PioConfigAccess> cf8;
  uint32_t config_address = 0;  // what CONFIG_ADDRESS holds
  uint64_t notifies = 0, delivered = 0, reset_writes = 0, reset_expected = 0;

  Harness() {
    a = std::make_shared<Fn>(0x1af4, 0x1041, 0x020000);
    b = std::make_shared<Fn>(0x8086, 0x1234, 0x0c0330);
    a->moves = b->moves = &moves;
    a->cfg.set_interrupt_pin(1);
    b->cfg.set_interrupt_pin(2);
    a->msix = std::make_unique<pci::Msix>(
        a->cfg, pci::Msix::packed(kVectors, 0, 0), [this](uint64_t addr, uint32_t) {
          check(a->msix->enabled() && !a->msix->function_masked());
          check((addr & 3) == 0);
          ++delivered;
        });
    a->writable[a->msix->cap_offset() + 3u] = 0xc0;  // Message Control: Function Mask, Enable
    const uint8_t body[6] = {8, 0, 0x11, 0x22, 0x33, 0x44};
    const uint8_t body_mask[6] = {0, 0, 0xff, 0x0f, 0, 0};
    const uint16_t vcap = a->cfg.add_capability(0x09, body, body_mask);
    a->writable[vcap + 4u] = 0xff;
    a->writable[vcap + 5u] = 0x0f;
    a->add_bar({0, 0x4000, false, false, false, 0}, 0xc0000000);
    a->add_bar({1, 0x20, true, false, false, 0}, 0xc000);
    a->add_bar({2, 0x100000, false, true, true, 0}, 0x800000000);
    a->add_bar({4, uint64_t{1} << 33, false, true, false, 0}, 0x1000000000);
    b->add_bar({0, 0x4, true, false, false, 0}, 0xc100);
    b->add_bar({1, 0x1000, false, false, false, 0}, 0xc0010000);
    b->add_bar({5, 0x10, false, false, false, 0}, 0xc0011000);
    for (Fn* f : {a.get(), b.get()}) {
      for (const auto& bar : f->cfg.bars()) {
        std::shared_ptr<bus::BusDevice> dev = std::make_shared<ScratchBar>();
        if (f == a.get() && bar.index == 0) dev = std::shared_ptr<bus::BusDevice>(a, a->msix.get());
        check(static_cast<bool>((bar.io ? pio : mmio).insert(bar.addr, bar.size, dev, "bar")));
      }
      f->cfg.write(0x04, 2, 0x0007);  // decoding on, as firmware leaves it
      f->check_bars();
    }
    moves.clear();
    (void)root.add(1, 0, a);
    (void)root.add(1, 1, b);  // makes 00:01.0 multi-function
    a->snapshot();
    b->snapshot();
    cf8 = std::make_shared<pci::PioConfigAccess>(
        root, [this](uint8_t) { ++reset_writes; }, [] { return uint8_t{0}; });
    check(static_cast<bool>(pio.insert(0xcf8, 8, cf8, "pci-config")));
    check(static_cast<bool>(
        mmio.insert(kEcam, 1u << 20, std::make_shared<pci::EcamAccess>(root), "pci-ecam")));
  }

  Fn* fn_at(const Target& t) {
    if (t.bus != 0 || t.dev != 1) return nullptr;
    return t.fn == 0 ? a.get() : b.get();
  }

  // The machine's deferred BAR moves: after the access, outside the bus lock.
  void apply_moves() {
    for (const Move& m : moves) {
      const auto bar = m.fn->cfg.bar(m.bar);
      if (m.fn->at[m.bar] == m.to) continue;
      if ((bar->io ? pio : mmio).move(m.fn->at[m.bar], m.to)) m.fn->at[m.bar] = m.to;
    }
    moves.clear();
  }

  uint32_t port_read(uint64_t offset, size_t n) {
    uint8_t d[4] = {0xff, 0xff, 0xff, 0xff};
    if (!pio.read(0xcf8 + offset, std::span<uint8_t>(d, n))) return ~0u;
    return static_cast<uint32_t>(bus::load_le(std::span<const uint8_t>(d, n)));
  }
  void port_write(uint64_t offset, size_t n, uint32_t v) {
    uint8_t d[4];
    bus::store_le(d, v);
    if (pio.write(0xcf8 + offset, std::span<const uint8_t>(d, n))) {
      if (offset == 0 && n == 4) config_address = v & 0x80fffffcu;
      if (offset == 1 && n == 1) ++reset_expected;  // 0xCF9 is the reset control register
    }
    apply_moves();
  }
  uint64_t ecam_read(uint64_t offset, size_t n) {
    uint8_t d[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    (void)mmio.read(kEcam + offset, std::span<uint8_t>(d, n));
    return bus::load_le(std::span<const uint8_t>(d, n));
  }
  void ecam_write(uint64_t offset, size_t n, uint64_t v) {
    uint8_t d[8];
    bus::store_le(d, v);
    (void)mmio.write(kEcam + offset, std::span<const uint8_t>(d, n));
    apply_moves();
  }

  static uint64_t ecam_offset(const Target& t, uint16_t reg) {
    return (uint64_t{t.bus} << 20) | (uint64_t{t.dev} << 15) | (uint64_t{t.fn} << 12) | reg;
  }
  uint32_t cf8_value(const Target& t, uint16_t reg) const {
    return 0x80000000u | (uint32_t{t.bus} << 16) | (uint32_t{t.dev} << 11) | (uint32_t{t.fn} << 8) |
           (reg & 0xfcu);
  }

  // A naturally aligned config access of n = 1, 2 or 4 bytes through mechanism #1 (reg < 256)
  // or ECAM.
  uint32_t cfg_read(bool ecam, const Target& t, uint16_t reg, unsigned n) {
    if (ecam) return static_cast<uint32_t>(ecam_read(ecam_offset(t, reg), n));
    port_write(0, 4, cf8_value(t, reg));
    return port_read(4 + (reg & 3u), n);
  }
  void cfg_write(bool ecam, const Target& t, uint16_t reg, unsigned n, uint32_t v) {
    Fn* f = fn_at(t);
    std::array<uint8_t, 4> old{};
    if (f)
      for (unsigned i = 0; i < n; ++i) old[i] = f->cfg.raw8(static_cast<uint16_t>(reg + i));
    if (ecam) {
      ecam_write(ecam_offset(t, reg), n, v);
    } else {
      port_write(0, 4, cf8_value(t, reg));
      port_write(4 + (reg & 3u), n, v);
    }
    if (!f) return;
    for (unsigned i = 0; i < n; ++i) {
      const auto at = static_cast<uint16_t>(reg + i);
      const uint8_t w = at < 256 ? f->writable[at] : 0;
      const auto want = static_cast<uint8_t>((old[i] & ~w) | ((v >> (8 * i)) & w));
      check(f->cfg.raw8(at) == want);  // lands exactly in the writable bits
    }
  }

  // Writes all ones to BAR `index` (both halves of a 64-bit one if `both`) and checks the size
  // mask read back (§6.2.5.1).
  void size_bar(bool ecam, bool is_b, uint8_t index, bool both, bool restore) {
    const Target t{0, 1, static_cast<uint8_t>(is_b ? 1 : 0)};
    Fn* f = fn_at(t);
    const auto reg = static_cast<uint16_t>(0x10 + 4 * index);
    const uint32_t old_lo = cfg_read(ecam, t, reg, 4);
    const uint32_t old_hi = cfg_read(ecam, t, static_cast<uint16_t>(reg + 4), 4);
    cfg_write(ecam, t, reg, 4, 0xffffffff);
    const auto bar = f->cfg.bar(index);
    if (bar && bar->is64 && both) cfg_write(ecam, t, static_cast<uint16_t>(reg + 4), 4, ~0u);
    const uint32_t lo = cfg_read(ecam, t, reg, 4);
    if (!bar) {
      // Not a BAR (unimplemented, or the upper half of a 64-bit one): reads 0, or the upper
      // half's own mask.
      const auto below = index > 0 ? f->cfg.bar(static_cast<uint8_t>(index - 1)) : std::nullopt;
      if (!below || !below->is64) check(lo == 0);
    } else {
      const uint32_t type_mask = bar->io ? 0x3u : 0xfu;
      const uint32_t type =
          bar->io ? 0x1u : ((bar->is64 ? 0x4u : 0u) | (bar->prefetchable ? 0x8u : 0u));
      check((lo & type_mask) == type);  // type bits preserved
      // Clear the type bits, invert, add one (§6.2.5.1): the writable address bits are a
      // contiguous run of ones ending at bit 31.
      const uint32_t lo_mask = lo & ~type_mask;
      const uint32_t inv = ~lo_mask;
      check((inv & (inv + 1)) == 0);
      if (bar->is64 && both) {
        const uint32_t hi = cfg_read(ecam, t, static_cast<uint16_t>(reg + 4), 4);
        const uint64_t size = ~((uint64_t{hi} << 32) | lo_mask) + 1;
        check(size != 0 && (size & (size - 1)) == 0);  // a power of two
        check(size == bar->size);
      } else if (!bar->is64 || bar->size < (uint64_t{1} << 32)) {
        check(uint64_t{inv} + 1 == bar->size);
      } else {
        check(lo_mask == 0);  // a BAR of 4 GiB or more: no writable address bits below 4 GiB
      }
    }
    if (restore) {
      cfg_write(ecam, t, reg, 4, old_lo);
      if (bar && bar->is64 && both) cfg_write(ecam, t, static_cast<uint16_t>(reg + 4), 4, old_hi);
    }
  }

  void check_invariants() {
    for (Fn* f : {a.get(), b.get()}) {
      // Bytes change only in their writable bits.
      for (uint16_t i = 0; i < 256; ++i)
        check(((f->cfg.raw8(i) ^ f->initial[i]) & ~f->writable[i]) == 0);
      for (uint8_t i = 0; i < 6; ++i) {
        const uint32_t lo = f->cfg.raw32(static_cast<uint16_t>(0x10 + 4 * i));
        const auto bar = f->cfg.bar(i);
        if (!bar) continue;
        const uint32_t type_mask = bar->io ? 0x3u : 0xfu;
        check(((bar->addr & (bar->size - 1)) & ~uint64_t{type_mask}) == 0);  // size-aligned
        check((lo & type_mask) == (f->initial[0x10 + 4 * i] & type_mask));
        // Where the config space says it decodes is where the bus has it, unless that was taken.
        if (f->decoded[i] && f->at[i] == *f->decoded[i]) {
          uint8_t d[4];
          check((bar->io ? pio : mmio).read(f->at[i], std::span<uint8_t>(d, bar->io ? 1 : 4)));
        }
      }
    }
    // The host bridge and the two functions' identity through both mechanisms.
    check(root.read(0, 0, 0, 0, 4) == 0x00081b36u);
    check(root.read(0, 1, 0, 0x0e, 1) == 0x80);  // multi-function
    // MSI-X state follows Message Control; pending only while undeliverable.
    pci::Msix& m = *a->msix;
    const uint16_t ctl = a->cfg.raw16(static_cast<uint16_t>(m.cap_offset() + 2));
    check((ctl & 0x3fff) == kVectors - 1);
    check(m.enabled() == ((ctl & 0x8000) != 0));
    check(m.function_masked() == ((ctl & 0x4000) != 0));
    for (uint16_t v = 0; v < kVectors; ++v)
      if (m.pending(v)) check(!m.enabled() || m.function_masked() || m.vector_masked(v));
    check(delivered <= notifies);
    if (a->decoded[0] && a->at[0] == *a->decoded[0]) {
      uint8_t d[4];
      check(mmio.read(a->at[0] + 12, d));  // vector 0's control word, through the bus
      check(((d[0] & 1) != 0) == m.vector_masked(0));
    }
    check(port_read(0, 4) == config_address);
    check(reset_writes == reset_expected);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness h;
  Input in(data, size);
  static constexpr unsigned kSizes[4] = {1, 2, 4, 8};
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const Target& t = kTargets[(op >> 3) & 7];
    switch (op & 7) {
      case 0: {  // raw 0xCF8-0xCFF access (KVM port accesses are 1, 2 or 4 bytes)
        const uint64_t off = in.u8() & 7u;
        const size_t n = kSizes[(op >> 3) & 3] == 8 ? 4 : kSizes[(op >> 3) & 3];
        if (op & 0x20) {
          h.port_write(off, n, in.u32());
        } else {
          (void)h.port_read(off, n);
        }
        break;
      }
      case 1:
      case 2: {  // config read/write of a target through one mechanism (1: 0xCF8, 2: ECAM)
        const bool ecam = (op & 7) == 2;
        const uint8_t ctl = in.u8();
        const bool write = (ctl & 1) != 0;
        static constexpr unsigned kCfgSizes[4] = {1, 2, 4, 4};
        const unsigned n = kCfgSizes[(ctl >> 1) & 3];
        uint16_t reg = ecam ? static_cast<uint16_t>(in.u16() & 0xfff) : in.u8();
        reg = static_cast<uint16_t>(reg & ~(n - 1));
        if (write) h.cfg_write(ecam, t, reg, n, in.u32());
        const uint32_t got = h.cfg_read(ecam, t, reg, n);
        const uint32_t ones = n == 4 ? ~0u : (1u << (8 * n)) - 1;
        if (!h.fn_at(t) && !(t.bus == 0 && t.dev == 0 && t.fn == 0)) check(got == ones);
        if (reg < 256) check(h.cfg_read(!ecam, t, reg, n) == got);  // both mechanisms agree
        break;
      }
      case 3: {  // BAR sizing
        const uint8_t sel = in.u8();
        h.size_bar((op & 0x08) != 0, (op & 0x10) != 0, static_cast<uint8_t>(sel % 6),
                   (op & 0x20) != 0, (op & 0x40) != 0);
        break;
      }
      case 4: {  // BAR move (and Command)
        const Target ft{0, 1, static_cast<uint8_t>((op >> 3) & 1)};
        const bool ecam = (op & 0x10) != 0;
        const auto reg = static_cast<uint16_t>(0x10 + 4 * (in.u8() % 6));
        h.cfg_write(ecam, ft, reg, 4, in.u32());
        if (op & 0x20) h.cfg_write(ecam, ft, static_cast<uint16_t>(reg + 4), 4, in.u32());
        if (op & 0x40) h.cfg_write(ecam, ft, 0x04, 2, in.u8());
        break;
      }
      case 5: {  // the device signals a vector (some out of range)
        ++h.notifies;
        h.a->msix->notify(static_cast<uint16_t>(in.u8() % (kVectors + 2)));
        break;
      }
      case 6: {  // access where a BAR currently decodes
        Fn* f = (op & 0x08) ? h.b.get() : h.a.get();
        const auto& bars = f->cfg.bars();
        const pci::BarInfo& bi = bars[in.u8() % bars.size()];
        const auto bar = f->cfg.bar(bi.index);
        const uint64_t off = in.u16() % (bar->size < 0x10000 ? bar->size : 0x10000);
        const size_t n = kSizes[(op >> 4) & 3];
        uint8_t d[8];
        bus::Bus& on = bar->io ? h.pio : h.mmio;
        if (op & 0x40) {
          bus::store_le(d, in.u64());
          (void)on.write(bar->addr + off, std::span<const uint8_t>(d, n));
        } else {
          (void)on.read(bar->addr + off, std::span<uint8_t>(d, n));
        }
        h.apply_moves();
        break;
      }
      default: {  // raw ECAM window access
        const uint64_t off = in.u32() & 0xfffff;
        const size_t n = kSizes[(op >> 3) & 3];
        if (op & 0x20) {
          h.ecam_write(off, n, in.u32());
        } else {
          (void)h.ecam_read(off, n);
        }
        break;
      }
    }
    h.check_invariants();
  }
  // The extended configuration space is all read-only zeros here.
  for (Fn* f : {h.a.get(), h.b.get()})
    for (uint16_t i = 256; i < pci::kConfigSize; ++i) check(f->cfg.raw8(i) == 0);
  return 0;
}
