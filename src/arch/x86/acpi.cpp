#include "arch/x86/acpi.hpp"

#include <algorithm>
#include <cstring>

#include "arch/x86/aml.hpp"
#include "base/log.hpp"

namespace qvm::arch::x86 {

namespace {

using Bytes = std::vector<uint8_t>;

constexpr size_t kHeaderSize = 36;  // System Description Table Header, ACPI 6.4 §5.2.6
constexpr uint64_t k4GiB = 1ull << 32;

void put(Bytes& b, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    b[off + static_cast<size_t>(i)] = i < 8 ? static_cast<uint8_t>(v >> (8 * i)) : uint8_t{0};
}
void push(Bytes& b, uint64_t v, int n) {
  for (int i = 0; i < n; i++) b.push_back(i < 8 ? static_cast<uint8_t>(v >> (8 * i)) : uint8_t{0});
}
void push_str(Bytes& b, std::string_view s, size_t n) {
  for (size_t i = 0; i < n; i++) b.push_back(static_cast<uint8_t>(i < s.size() ? s[i] : ' '));
}

// Header with OEMID "QVM   ", OEM table id "QVM<SIG> ", creator "QVM ".
Bytes header(std::string_view sig, uint8_t revision) {
  Bytes b;
  push_str(b, sig, 4);
  push(b, 0, 4);  // length, set by finish()
  b.push_back(revision);
  b.push_back(0);  // checksum, set by finish()
  push_str(b, "QVM", 6);
  push_str(b, std::string("QVM") + std::string(sig), 8);
  push(b, 1, 4);  // OEM revision
  push_str(b, "QVM", 4);
  push(b, 1, 4);  // creator revision
  return b;
}

void finish(Bytes& t) {
  put(t, 4, t.size(), 4);
  t[9] = 0;
  t[9] = acpi_checksum(t);
}

// Generic Address Structure (ACPI 6.4 §5.2.3.2).
void push_gas(Bytes& b, uint8_t space, uint8_t bit_width, uint8_t access_size, uint64_t addr) {
  b.push_back(space);  // 0 system memory, 1 system I/O
  b.push_back(bit_width);
  b.push_back(0);            // bit offset
  b.push_back(access_size);  // 1 byte, 2 word, 3 dword, 4 qword
  push(b, addr, 8);
}

bool has_hid(const MachineLayout& l, std::string_view hid) {
  return std::any_of(l.isa_devices.begin(), l.isa_devices.end(),
                     [&](const IsaDevice& d) { return d.hid == hid; });
}

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

}  // namespace

uint8_t acpi_checksum(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return static_cast<uint8_t>(-sum);
}

Result<Bytes> build_dsdt(const MachineLayout& layout) {
  namespace aml = qvm::arch::x86::aml;
  std::vector<Bytes> sb;
  if (layout.isa_devices.size() > 256 || layout.virtio_mmio.size() > 256)
    return make_error("too many ISA or virtio-mmio devices for the DSDT");
  for (size_t i = 0; i < layout.isa_devices.size(); i++) {
    const IsaDevice& d = layout.isa_devices[i];
    if (!aml::is_eisa_id(d.hid))
      return make_error(strprintf("ACPI: '%s' is not an EISA id like PNP0501", d.hid.c_str()));
    aml::ResourceTemplate crs;
    if (d.io_len > 0) crs.io(d.io_base, d.io_len);
    if (d.io2_len > 0) crs.io(d.io2_base, d.io2_len);
    if (d.irq) {
      if (*d.irq >= 16) return make_error(strprintf("ACPI: ISA IRQ %u is not below 16", *d.irq));
      crs.irq_no_flags(*d.irq);
    }
    std::vector<Bytes> body{aml::name("_HID", aml::eisa_id(d.hid)),
                            aml::name("_UID", aml::integer(i)), aml::name("_CRS", crs.build())};
    sb.push_back(aml::device(strprintf("IS%02zX", i), body));
  }
  if (layout.hpet_addr) {
    if (*layout.hpet_addr + 0x400 > k4GiB) return make_error("ACPI: HPET must lie below 4 GiB");
    aml::ResourceTemplate crs;
    crs.memory32_fixed(static_cast<uint32_t>(*layout.hpet_addr), 0x400, false);
    std::vector<Bytes> body{aml::name("_HID", aml::eisa_id("PNP0103")),
                            aml::name("_UID", aml::integer(0)), aml::name("_CRS", crs.build())};
    sb.push_back(aml::device("HPET", body));
  }
  if (layout.pci) {
    // The PCI root bridge (PCI Firmware Spec 3.2 §4.1; ACPI 6.5 §6.1.1 _HID PNP0A08/_CID PNP0A03):
    // its bus range and windows, and INTx routing for every slot and pin of bus 0 (§6.2.13 _PRT).
    const PciHostInfo& p = *layout.pci;
    aml::ResourceTemplate crs;
    crs.word_bus_number(p.bus_start, p.bus_end);
    crs.io(0x0cf8, 8);
    crs.word_io(0x0000, 0x0cf7);
    crs.word_io(0x0d00, 0xffff);
    crs.dword_memory(p.mmio_base, p.mmio_limit);
    std::vector<Bytes> prt;
    for (uint32_t slot = 1; slot < 32; slot++) {
      for (uint32_t pin = 0; pin < 4; pin++) {
        std::vector<Bytes> e{aml::integer((uint64_t{slot} << 16) | 0xffff), aml::integer(pin),
                             aml::integer(0),
                             aml::integer(PciHostInfo::intx_gsi(p.intx_gsi_base, slot, pin))};
        prt.push_back(aml::package(e));
      }
    }
    std::vector<Bytes> body{
        aml::name("_HID", aml::eisa_id("PNP0A08")),   aml::name("_CID", aml::eisa_id("PNP0A03")),
        aml::name("_UID", aml::integer(0)),           aml::name("_SEG", aml::integer(0)),
        aml::name("_BBN", aml::integer(p.bus_start)), aml::name("_CRS", crs.build()),
        aml::name("_PRT", aml::package(prt))};
    sb.push_back(aml::device("PCI0", body));
  }
  for (size_t i = 0; i < layout.virtio_mmio.size(); i++) {
    const VirtioMmioInfo& v = layout.virtio_mmio[i];
    if (v.base + v.size > k4GiB || v.size == 0)
      return make_error("ACPI: virtio-mmio windows must be non-empty and below 4 GiB");
    aml::ResourceTemplate crs;
    crs.memory32_fixed(static_cast<uint32_t>(v.base), v.size, true);
    crs.interrupt(v.gsi, /*edge=*/true, /*active_low=*/false, /*shared=*/false);
    std::vector<Bytes> body{aml::name("_HID", aml::string("LNRO0005")),
                            aml::name("_UID", aml::integer(i)), aml::name("_CRS", crs.build())};
    sb.push_back(aml::device(strprintf("VR%02zX", i), body));
  }

  for (size_t i = 0; i < layout.compatible_mmio.size(); i++) {
    const CompatibleMmioInfo& c = layout.compatible_mmio[i];
    if (c.base + c.size > k4GiB || c.size == 0 || c.compatible.empty())
      return make_error("ACPI: a devicetree-compatible device needs registers below 4 GiB");
    aml::ResourceTemplate crs;
    crs.memory32_fixed(static_cast<uint32_t>(c.base), c.size, true);
    crs.interrupt(c.gsi, /*edge=*/false, /*active_low=*/false, /*shared=*/true);
    // ToUUID("daffd814-6eba-4d8c-8a91-bc9bbf4aa301"), in ToUUID's byte order.
    static constexpr uint8_t kDevicePropertiesUuid[16] = {0x14, 0xd8, 0xff, 0xda, 0xba, 0x6e,
                                                          0x8c, 0x4d, 0x8a, 0x91, 0xbc, 0x9b,
                                                          0xbf, 0x4a, 0xa3, 0x01};
    const Bytes prop[] = {aml::string("compatible"), aml::string(c.compatible)};
    const Bytes props[] = {aml::package(prop)};
    const Bytes dsd[] = {aml::buffer(kDevicePropertiesUuid), aml::package(props)};
    std::vector<Bytes> body{aml::name("_HID", aml::string("PRP0001")),
                            aml::name("_UID", aml::integer(i)), aml::name("_CRS", crs.build()),
                            aml::name("_DSD", aml::package(dsd))};
    sb.push_back(aml::device(strprintf("DT%02zX", i), body));
  }

  Bytes t = header("DSDT", 2);  // revision 2: 64-bit integers
  Bytes sbs = aml::scope("\\_SB", sb);
  t.insert(t.end(), sbs.begin(), sbs.end());
  // \_S5_: {SLP_TYPa, SLP_TYPb, reserved, reserved} (ACPI 6.4 §7.4.2.6).
  std::vector<Bytes> s5{aml::integer(kSlpTypS5), aml::integer(kSlpTypS5), aml::integer(0),
                        aml::integer(0)};
  Bytes s5n = aml::name("\\_S5", aml::package(s5));
  t.insert(t.end(), s5n.begin(), s5n.end());
  finish(t);
  return t;
}

Bytes build_madt(const MachineLayout& layout) {
  Bytes t = header("APIC", 5);  // MADT revision 5 (ACPI 6.2+)
  push(t, layout.lapic_addr, 4);
  push(t, layout.has_8259 ? 1 : 0, 4);              // flags: PCAT_COMPAT
  for (uint32_t i = 0; i < layout.num_cpus; i++) {  // Processor Local APIC, §5.2.12.2
    t.push_back(0);
    t.push_back(8);
    t.push_back(static_cast<uint8_t>(i));  // ACPI processor UID
    t.push_back(static_cast<uint8_t>(i));  // APIC id
    push(t, 1, 4);                         // Enabled
  }
  t.push_back(1);  // I/O APIC, §5.2.12.3
  t.push_back(12);
  t.push_back(layout.ioapic.id);
  t.push_back(0);
  push(t, layout.ioapic.mmio_addr, 4);
  push(t, layout.ioapic.gsi_base, 4);
  for (const auto& o : layout.irq_overrides) {  // Interrupt Source Override, §5.2.12.5
    t.push_back(2);
    t.push_back(10);
    t.push_back(0);  // bus: ISA
    t.push_back(o.isa_irq);
    push(t, o.gsi, 4);
    push(t, o.flags, 2);
  }
  t.push_back(4);  // Local APIC NMI, §5.2.12.7: all processors, LINT1, conforming
  t.push_back(6);
  t.push_back(0xff);
  push(t, 0, 2);
  t.push_back(1);
  finish(t);
  return t;
}

Bytes build_fadt(const MachineLayout& layout, uint64_t facs, uint64_t dsdt) {
  Bytes t = header("FACP", 6);       // FADT revision 6, minor 4 (ACPI 6.4 §5.2.9, Table 5.9)
  push(t, facs, 4);                  // 36 FIRMWARE_CTRL
  push(t, dsdt, 4);                  // 40 DSDT
  t.push_back(0);                    // 44 reserved
  t.push_back(0);                    // 45 preferred PM profile: unspecified
  push(t, layout.sci_gsi, 2);        // 46 SCI_INT
  push(t, 0, 4);                     // 48 SMI_CMD: none, ACPI is always enabled (SCI_EN reads 1)
  push(t, 0, 4);                     // 52 ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
  push(t, layout.pm1a_evt_port, 4);  // 56 PM1a_EVT_BLK
  push(t, 0, 4);                     // 60 PM1b_EVT_BLK
  push(t, layout.pm1a_cnt_port, 4);  // 64 PM1a_CNT_BLK
  push(t, 0, 4 * 5);                 // 68 PM1b_CNT, PM2_CNT, PM_TMR, GPE0, GPE1 blocks: none
  t.push_back(layout.pm1_evt_len);   // 88 PM1_EVT_LEN
  t.push_back(layout.pm1_cnt_len);   // 89 PM1_CNT_LEN
  push(t, 0, 6);       // 90 PM2_CNT_LEN, PM_TMR_LEN, GPE0/1 lengths, GPE1_BASE, CST_CNT
  push(t, 0x0fff, 2);  // 96 P_LVL2_LAT > 100: C2 not supported
  push(t, 0x0fff, 2);  // 98 P_LVL3_LAT > 1000: C3 not supported
  push(t, 0, 4);       // 100 FLUSH_SIZE, FLUSH_STRIDE
  push(t, 0, 4);       // 104 DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM
  bool rtc = has_hid(layout, "PNP0B00");
  t.push_back(rtc ? 0x32 : 0);  // 108 CENTURY: CMOS index of the century byte
  // 109 IAPC_BOOT_ARCH (§5.2.9.3): LEGACY_DEVICES, 8042, VGA not present, CMOS RTC not present.
  uint16_t boot_arch = 1u << 2;
  if (!layout.isa_devices.empty() && !layout.legacy_free) boot_arch |= 1u << 0;
  if (has_hid(layout, "PNP0303")) boot_arch |= 1u << 1;
  if (!rtc) boot_arch |= 1u << 5;
  push(t, boot_arch, 2);
  t.push_back(0);  // 111 reserved
  // 112 flags (§5.2.9, Table 5.10): WBINVD, PROC_C1, SLP_BUTTON (no fixed sleep button),
  // RESET_REG_SUP. PWR_BUTTON = 0: the power button is a fixed feature. HW_REDUCED_ACPI = 0.
  push(t, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 10), 4);
  push_gas(t, 1, 8, 1, layout.reset_port);  // 116 RESET_REG
  t.push_back(layout.reset_value);          // 128 RESET_VALUE
  push(t, 0, 2);                            // 129 ARM_BOOT_ARCH
  t.push_back(4);                           // 131 FADT minor version
  push(t, 0, 8);     // 132 X_FIRMWARE_CTRL: 0, FIRMWARE_CTRL has it (ACPI 6.5 §5.2.9: never both)
  push(t, dsdt, 8);  // 140 X_DSDT
  push_gas(t, 1, static_cast<uint8_t>(layout.pm1_evt_len * 8), 2, layout.pm1a_evt_port);  // 148
  push_gas(t, 0, 0, 0, 0);  // 160 X_PM1b_EVT_BLK
  push_gas(t, 1, static_cast<uint8_t>(layout.pm1_cnt_len * 8), 2, layout.pm1a_cnt_port);  // 172
  for (int i = 0; i < 7; i++) push_gas(t, 0, 0, 0, 0);  // 184 X_PM1b_CNT .. 256 SLEEP_STATUS
  push_str(t, "QVM", 8);                                // 268 hypervisor vendor identity
  finish(t);                                            // 276 bytes
  return t;
}

Bytes build_hpet(uint64_t hpet_addr) {
  Bytes t = header("HPET", 1);  // IA-PC HPET specification 1.0a §3.2.4
  push(t, kHpetBlockId, 4);     // event timer block id
  push_gas(t, 0, 64, 0, hpet_addr);
  t.push_back(0);  // HPET number
  push(t, 0, 2);   // main counter minimum clock tick in periodic mode
  t.push_back(0);  // page protection: none
  finish(t);
  return t;
}

namespace {

Bytes build_facs() {
  Bytes t;  // ACPI 6.4 §5.2.10, 64 bytes, no checksum
  push_str(t, "FACS", 4);
  push(t, 64, 4);
  push(t, 0, 4);   // hardware signature
  push(t, 0, 4);   // firmware waking vector
  push(t, 0, 4);   // global lock
  push(t, 0, 4);   // flags
  push(t, 0, 8);   // X firmware waking vector
  t.push_back(2);  // version
  t.resize(64, 0);
  return t;
}

Bytes build_rsdp(uint64_t rsdt, uint64_t xsdt) {
  Bytes t;  // ACPI 6.4 §5.2.5.3
  push_str(t, "RSD PTR ", 8);
  t.push_back(0);  // checksum of the first 20 bytes
  push_str(t, "QVM", 6);
  t.push_back(2);  // revision: ACPI 2.0+
  push(t, rsdt, 4);
  push(t, 36, 4);
  push(t, xsdt, 8);
  t.push_back(0);  // extended checksum
  push(t, 0, 3);
  t[8] = acpi_checksum(std::span<const uint8_t>(t).first(20));
  t[32] = acpi_checksum(t);
  return t;
}

Status check_extra(std::span<const uint8_t> t) {
  if (t.size() < kHeaderSize) return make_error("acpi load: table shorter than an ACPI header");
  std::string sig(t.begin(), t.begin() + 4);
  uint32_t len = static_cast<uint32_t>(t[4] | (t[5] << 8) | (t[6] << 16)) |
                 (static_cast<uint32_t>(t[7]) << 24);
  if (len != t.size())
    return make_error(strprintf("acpi load: table '%s' length field %u but file has %zu bytes",
                                sig.c_str(), len, t.size()));
  if (acpi_checksum(t) != 0)
    return make_error(strprintf("acpi load: table '%s' has a bad checksum", sig.c_str()));
  for (const char* own : {"DSDT", "FACS", "FACP", "APIC", "XSDT", "RSDT", "HPET"})
    if (sig == own)
      return make_error(strprintf("acpi load: table '%s' would replace a generated table", own));
  return {};
}

}  // namespace

// PCI Firmware Specification 3.2 §4.1.2: MCFG, one allocation entry per ECAM window.
Bytes build_mcfg(const PciHostInfo& pci) {
  Bytes t = header("MCFG", 1);
  push(t, 0, 8);  // reserved
  push(t, pci.ecam_base, 8);
  push(t, 0, 2);  // PCI segment group 0
  push(t, pci.bus_start, 1);
  push(t, pci.bus_end, 1);
  push(t, 0, 4);  // reserved
  finish(t);
  return t;
}

Result<AcpiResult> build_acpi(const MachineLayout& layout,
                              std::span<const std::vector<uint8_t>> extra, memory::GuestMemory& mem,
                              uint64_t base, uint64_t limit) {
  if ((base & 0xf) != 0) return make_error("ACPI: RSDP address must be 16-byte aligned");
  if (limit > k4GiB || base >= limit) return make_error("ACPI: table area must lie below 4 GiB");
  if (layout.num_cpus == 0 || layout.num_cpus > 254)
    return make_error("ACPI: vCPU count must be 1..254 (xAPIC ids)");
  for (const auto& e : extra) QVM_TRY(check_extra(e));

  AcpiResult res;
  uint64_t at = base + 48;  // the RSDP (36 bytes) goes at base, written last
  auto place = [&](std::string sig, Bytes bytes, uint64_t align) -> Result<uint64_t> {
    uint64_t addr = align_up(at, align);
    if (addr + bytes.size() > limit || addr + bytes.size() < addr)
      return make_error(strprintf("ACPI: tables do not fit in 0x%llx-0x%llx",
                                  static_cast<unsigned long long>(base),
                                  static_cast<unsigned long long>(limit)));
    QVM_TRY(mem.write(addr, bytes));
    at = addr + bytes.size();
    res.tables.push_back({std::move(sig), addr, std::move(bytes)});
    return addr;
  };

  uint64_t facs = QVM_TRY(place("FACS", build_facs(), 64));
  Bytes dsdt_bytes = QVM_TRY(build_dsdt(layout));
  uint64_t dsdt = QVM_TRY(place("DSDT", std::move(dsdt_bytes), 16));
  std::vector<uint64_t> listed;
  listed.push_back(QVM_TRY(place("FACP", build_fadt(layout, facs, dsdt), 16)));
  listed.push_back(QVM_TRY(place("APIC", build_madt(layout), 16)));
  if (layout.hpet_addr) listed.push_back(QVM_TRY(place("HPET", build_hpet(*layout.hpet_addr), 16)));
  if (layout.pci) listed.push_back(QVM_TRY(place("MCFG", build_mcfg(*layout.pci), 16)));
  for (const auto& e : extra)
    listed.push_back(QVM_TRY(place(std::string(e.begin(), e.begin() + 4), e, 16)));

  Bytes xsdt = header("XSDT", 1);  // ACPI 6.4 §5.2.8
  Bytes rsdt = header("RSDT", 1);  // §5.2.7
  for (uint64_t a : listed) {
    push(xsdt, a, 8);
    push(rsdt, a, 4);
  }
  finish(xsdt);
  finish(rsdt);
  uint64_t xsdt_addr = QVM_TRY(place("XSDT", std::move(xsdt), 16));
  uint64_t rsdt_addr = QVM_TRY(place("RSDT", std::move(rsdt), 16));

  Bytes rsdp = build_rsdp(rsdt_addr, xsdt_addr);
  QVM_TRY(mem.write(base, rsdp));
  res.rsdp = AcpiTable{"RSDP", base, std::move(rsdp)};
  res.rsdp_addr = base;
  res.end = at;
  return res;
}

}  // namespace qvm::arch::x86
