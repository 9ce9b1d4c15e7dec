#include "arch/x86/mptable.hpp"

#include <algorithm>

#include "arch/x86/acpi.hpp"

namespace qvm::arch::x86 {

namespace {

using Bytes = std::vector<uint8_t>;

void push(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; i++) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void push_str(Bytes& b, std::string_view s, size_t n) {
  for (size_t i = 0; i < n; i++) b.push_back(static_cast<uint8_t>(i < s.size() ? s[i] : ' '));
}

constexpr uint8_t kApicVersion = 0x14;    // integrated local APIC
constexpr uint8_t kIoApicVersion = 0x11;  // 82093AA
constexpr uint8_t kIntTypeInt = 0, kIntTypeNmi = 1, kIntTypeExtInt = 3;

// I/O (type 3) and local (type 4) interrupt assignment entries, 8 bytes (MP spec §4.3.4-5).
void push_int(Bytes& b, uint8_t entry, uint8_t type, uint16_t flags, uint8_t src_irq,
              uint8_t dest_id, uint8_t dest_pin) {
  b.push_back(entry);
  b.push_back(type);
  push(b, flags, 2);
  b.push_back(0);  // source bus id: ISA (bus 0)
  b.push_back(src_irq);
  b.push_back(dest_id);
  b.push_back(dest_pin);
}

}  // namespace

Result<Bytes> mptable_bytes(const MachineLayout& layout, uint64_t addr) {
  if ((addr & 0xf) != 0 || addr + 0x1000 > (1ull << 32))
    return make_error("MP table address must be 16-byte aligned and below 4 GiB");
  if (layout.num_cpus == 0 || layout.num_cpus > 254)
    return make_error("MP table: vCPU count must be 1..254");
  if (layout.ioapic.mmio_addr >= (1ull << 32)) return make_error("MP table: IOAPIC above 4 GiB");

  Bytes e;  // entries
  uint16_t count = 0;
  for (uint32_t i = 0; i < layout.num_cpus; i++, count++) {  // processor, §4.3.1
    e.push_back(0);
    e.push_back(static_cast<uint8_t>(i));
    e.push_back(kApicVersion);
    e.push_back(static_cast<uint8_t>(i == 0 ? 0x3 : 0x1));  // EN, BP
    push(e, 0x600, 4);                                      // CPU signature: family 6
    push(e, 0x201, 4);                                      // feature flags: FPU, APIC
    push(e, 0, 8);
  }
  e.push_back(1);  // bus, §4.3.2
  e.push_back(0);
  push_str(e, "ISA", 6);
  count++;
  const uint8_t ioapic = layout.ioapic.id;
  e.push_back(2);  // I/O APIC, §4.3.3
  e.push_back(ioapic);
  e.push_back(kIoApicVersion);
  e.push_back(1);  // enabled
  push(e, layout.ioapic.mmio_addr, 4);
  count++;
  if (layout.has_8259) {
    push_int(e, 3, kIntTypeExtInt, 0, 0, ioapic, 0);
    count++;
  }
  // ISA IRQs 0-15: identity-mapped to pins unless overridden; a pin that is the target of an
  // override is not also given to its identity IRQ (IRQ2 when IRQ0 -> GSI2).
  for (uint8_t irq = 0; irq < 16; irq++) {
    auto ov = std::find_if(layout.irq_overrides.begin(), layout.irq_overrides.end(),
                           [&](const IsaIrqOverride& o) { return o.isa_irq == irq; });
    uint32_t gsi = irq;
    uint16_t flags = 0;
    if (ov != layout.irq_overrides.end()) {
      gsi = ov->gsi;
      flags = ov->flags;
    } else if (std::any_of(layout.irq_overrides.begin(), layout.irq_overrides.end(),
                           [&](const IsaIrqOverride& o) { return o.gsi == irq; })) {
      continue;
    }
    if (gsi < layout.ioapic.gsi_base || gsi - layout.ioapic.gsi_base >= layout.ioapic.pins)
      continue;
    push_int(e, 3, kIntTypeInt, flags, irq, ioapic,
             static_cast<uint8_t>(gsi - layout.ioapic.gsi_base));
    count++;
  }
  push_int(e, 4, kIntTypeExtInt, 0, 0, 0xff, 0);  // all local APICs: LINT0 = ExtINT
  push_int(e, 4, kIntTypeNmi, 0, 0, 0xff, 1);     // LINT1 = NMI
  count += 2;

  const uint64_t table = addr + 16;
  Bytes t;  // configuration table header, §4.2
  push_str(t, "PCMP", 4);
  push(t, 44 + e.size(), 2);
  t.push_back(4);  // spec revision 1.4
  t.push_back(0);  // checksum
  push_str(t, "QVM", 8);
  push_str(t, "QVM", 12);
  push(t, 0, 4);  // OEM table pointer
  push(t, 0, 2);  // OEM table size
  push(t, count, 2);
  push(t, layout.lapic_addr, 4);
  push(t, 0, 4);  // extended table length, checksum, reserved
  t.insert(t.end(), e.begin(), e.end());
  t[7] = acpi_checksum(t);  // same rule: all bytes sum to zero

  Bytes fp;  // floating pointer, §4.1
  push_str(fp, "_MP_", 4);
  push(fp, table, 4);
  fp.push_back(1);  // length in 16-byte units
  fp.push_back(4);  // spec revision 1.4
  fp.push_back(0);  // checksum
  push(fp, 0, 5);   // feature bytes: configuration table present, no IMCR (virtual wire)
  fp[10] = acpi_checksum(fp);
  fp.insert(fp.end(), t.begin(), t.end());
  return fp;
}

Result<uint64_t> build_mptable(const MachineLayout& layout, memory::GuestMemory& mem,
                               uint64_t addr) {
  Bytes b = QVM_TRY(mptable_bytes(layout, addr));
  QVM_TRY(mem.write(addr, b));
  return addr + b.size();
}

}  // namespace qvm::arch::x86
