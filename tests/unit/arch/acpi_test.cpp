#include "arch/x86/acpi.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "arch/x86/mptable.hpp"
#include "test_util.hpp"

namespace qvm::arch::x86 {
namespace {

using testing::small_layout;
using testing::small_memory;

uint32_t u32(const std::vector<uint8_t>& b, size_t off) {
  return static_cast<uint32_t>(b[off] | (b[off + 1] << 8) | (b[off + 2] << 16)) |
         (static_cast<uint32_t>(b[off + 3]) << 24);
}
uint64_t u64(const std::vector<uint8_t>& b, size_t off) {
  return u32(b, off) | (uint64_t{u32(b, off + 4)} << 32);
}
uint8_t sum(std::span<const uint8_t> b) {
  uint8_t s = 0;
  for (uint8_t x : b) s = static_cast<uint8_t>(s + x);
  return s;
}

const AcpiTable* find(const AcpiResult& r, std::string_view sig) {
  for (const auto& t : r.tables)
    if (t.signature == sig) return &t;
  return nullptr;
}

TEST(Acpi, ChecksumsAndPointers) {
  auto mem = small_memory();
  auto r = build_acpi(small_layout(), {}, mem, 0xe0000, 0xf0000);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->rsdp_addr, 0xe0000u);
  const AcpiTable* rsdp = &r->rsdp;
  EXPECT_EQ(sum(std::span(rsdp->bytes).first(20)), 0);
  EXPECT_EQ(sum(rsdp->bytes), 0);
  EXPECT_EQ(rsdp->bytes[15], 2);  // revision
  for (const auto& t : r->tables) {
    if (t.signature == "FACS") continue;
    EXPECT_EQ(sum(t.bytes), 0) << t.signature;
    EXPECT_EQ(u32(t.bytes, 4), t.bytes.size()) << t.signature;
    // What the guest sees is what we returned.
    std::vector<uint8_t> in_guest(t.bytes.size());
    ASSERT_TRUE(mem.read(t.addr, in_guest).ok());
    EXPECT_EQ(in_guest, t.bytes) << t.signature;
  }
  const AcpiTable* xsdt = find(*r, "XSDT");
  ASSERT_NE(xsdt, nullptr);
  EXPECT_EQ(u64(rsdp->bytes, 24), xsdt->addr);
  EXPECT_EQ(u32(rsdp->bytes, 16), find(*r, "RSDT")->addr);
  ASSERT_EQ(xsdt->bytes.size(), 36u + 3 * 8);  // FACP, APIC, HPET
  EXPECT_EQ(u64(xsdt->bytes, 36), find(*r, "FACP")->addr);
  const auto& fadt = find(*r, "FACP")->bytes;
  ASSERT_EQ(fadt.size(), 276u);
  EXPECT_EQ(u64(fadt, 140), find(*r, "DSDT")->addr);
  EXPECT_EQ(u32(fadt, 40), find(*r, "DSDT")->addr);
  EXPECT_EQ(u64(fadt, 132) % 64, 0u);  // FACS alignment
  EXPECT_EQ(fadt[46], 9);              // SCI_INT
  EXPECT_EQ(u32(fadt, 56), 0x600u);
  EXPECT_EQ(u32(fadt, 64), 0x604u);
  EXPECT_EQ(u64(fadt, 116 + 4), 0xcf9u);  // RESET_REG address
  EXPECT_EQ(fadt[128], 0x06);
  EXPECT_EQ(u32(fadt, 112) & (1u << 20), 0u);  // not hardware-reduced
  EXPECT_EQ(u32(fadt, 112) & (1u << 4), 0u);   // fixed-feature power button
}

TEST(Acpi, MadtContents) {
  MachineLayout l = small_layout(2);
  auto t = build_madt(l);
  EXPECT_EQ(sum(t), 0);
  EXPECT_EQ(u32(t, 36), 0xfee00000u);
  EXPECT_EQ(u32(t, 40), 1u);  // PCAT_COMPAT
  size_t off = 44;
  int lapics = 0, ioapics = 0, isos = 0, nmis = 0;
  while (off < t.size()) {
    uint8_t type = t[off], len = t[off + 1];
    ASSERT_GE(len, 2);
    if (type == 0) {
      EXPECT_EQ(t[off + 3], lapics);   // APIC id
      EXPECT_EQ(u32(t, off + 4), 1u);  // enabled
      lapics++;
    } else if (type == 1) {
      EXPECT_EQ(u32(t, off + 4), 0xfec00000u);
      ioapics++;
    } else if (type == 2) {
      if (t[off + 3] == 0) {
        EXPECT_EQ(u32(t, off + 4), 2u);  // IRQ0 -> GSI2
      }
      if (t[off + 3] == 9) {
        EXPECT_EQ(t[off + 8], 0x0d);  // SCI level, active high
      }
      isos++;
    } else if (type == 4) {
      EXPECT_EQ(t[off + 5], 1);  // LINT1
      nmis++;
    }
    off += len;
  }
  EXPECT_EQ(off, t.size());
  EXPECT_EQ(lapics, 2);
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(isos, 2);
  EXPECT_EQ(nmis, 1);
  l.has_8259 = false;
  EXPECT_EQ(u32(build_madt(l), 40), 0u);
}

TEST(Acpi, DsdtHasS5AndDevices) {
  auto d = build_dsdt(small_layout());
  ASSERT_TRUE(d.ok());
  std::string s(d->begin(), d->end());
  size_t s5 = s.find("_S5_");
  ASSERT_NE(s5, std::string::npos);
  EXPECT_EQ(static_cast<uint8_t>(s[s5 + 4]), 0x12);  // PackageOp
  EXPECT_EQ(static_cast<uint8_t>(s[s5 + 7]), 0x0a);  // BytePrefix
  EXPECT_EQ(static_cast<uint8_t>(s[s5 + 8]), kSlpTypS5);
  EXPECT_NE(s.find("LNRO0005"), std::string::npos);
  MachineLayout bad = small_layout();
  bad.isa_devices[0].hid = "COM1";
  EXPECT_FALSE(build_dsdt(bad).ok());
}

TEST(Acpi, LegacyFreeClearsTheFadtLegacyDevicesFlag) {
  MachineLayout l = small_layout();
  auto with = build_fadt(l, 0xe0000, 0xe1000);
  l.legacy_free = true;
  l.has_8259 = false;
  auto without = build_fadt(l, 0xe0000, 0xe1000);
  // IAPC_BOOT_ARCH at offset 109 (ACPI 6.4 §5.2.9): bit 0 LEGACY_DEVICES.
  EXPECT_EQ(with[109] & 1, 1);
  EXPECT_EQ(without[109] & 1, 0);
  EXPECT_EQ(u32(build_madt(l), 40), 0u);  // no PCAT_COMPAT
}

TEST(Acpi, DevicetreeCompatibleDeviceHasPrp0001AndItsDsdProperty) {
  MachineLayout l = small_layout();
  l.compatible_mmio.push_back({"qvm,guest_shm", 0xd0010000, 0x1000, 10});
  auto d = build_dsdt(l);
  ASSERT_TRUE(d.ok());
  std::string s(d->begin(), d->end());
  const size_t dev = s.find("DT00");
  ASSERT_NE(dev, std::string::npos);
  EXPECT_NE(s.find("PRP0001", dev), std::string::npos);
  EXPECT_NE(s.find("_DSD", dev), std::string::npos);
  const size_t compat = s.find("compatible", dev);
  ASSERT_NE(compat, std::string::npos);
  EXPECT_NE(s.find("qvm,guest_shm", compat), std::string::npos);
  // ToUUID("daffd814-6eba-4d8c-8a91-bc9bbf4aa301") in its buffer, in ToUUID's byte order.
  const std::string uuid("\x14\xd8\xff\xda\xba\x6e\x8c\x4d\x8a\x91\xbc\x9b\xbf\x4a\xa3\x01", 16);
  EXPECT_NE(s.find(uuid, dev), std::string::npos);
  // Memory32Fixed (0x86) with the base, and an extended Interrupt (0x89): level, high, shared.
  const size_t mem = s.find("\x86\x09\x00\x01", dev);
  ASSERT_NE(mem, std::string::npos);
  EXPECT_EQ(u32(std::vector<uint8_t>(s.begin() + static_cast<long>(mem) + 4,
                                     s.begin() + static_cast<long>(mem) + 8),
                0),
            0xd0010000u);
  const size_t irq = s.find('\x89', mem);
  ASSERT_NE(irq, std::string::npos);
  EXPECT_EQ(static_cast<uint8_t>(s[irq + 3]) & 0x0e, 0x08);  // level (bit 1 clear), high, shared
  EXPECT_EQ(static_cast<uint8_t>(s[irq + 5]), 10);
  MachineLayout high = small_layout();
  high.compatible_mmio.push_back({"x", 0x100000000ull, 0x1000, 10});
  EXPECT_FALSE(build_dsdt(high).ok());
}

TEST(Acpi, PciRootBridgeAndMcfg) {
  MachineLayout l = small_layout();
  auto plain = build_dsdt(l);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(std::string(plain->begin(), plain->end()).find("PCI0"), std::string::npos);
  l.pci = PciHostInfo{};
  auto d = build_dsdt(l);
  ASSERT_TRUE(d.ok());
  std::string s(d->begin(), d->end());
  EXPECT_NE(s.find("PCI0"), std::string::npos);
  EXPECT_NE(s.find("_PRT"), std::string::npos);
  EXPECT_NE(s.find("_BBN"), std::string::npos);
  EXPECT_EQ(PciHostInfo::intx_gsi(16, 1, 0), 17u);
  EXPECT_EQ(PciHostInfo::intx_gsi(16, 7, 3), 18u);  // (7 + 3) % 8 = 2
  auto m = build_mcfg(*l.pci);
  ASSERT_EQ(m.size(), 60u);
  EXPECT_EQ(std::string(m.begin(), m.begin() + 4), "MCFG");
  uint64_t base = 0;
  for (int i = 7; i >= 0; --i) base = (base << 8) | m[44 + static_cast<size_t>(i)];
  EXPECT_EQ(base, 0xb0000000u);
  EXPECT_EQ(acpi_checksum(m), 0);  // the table's bytes sum to zero
}

TEST(Acpi, ExtraTablesAndErrors) {
  auto mem = small_memory();
  std::vector<uint8_t> ssdt{'S', 'S', 'D', 'T', 36, 0, 0, 0, 2, 0};
  ssdt.resize(36, 0);
  ssdt[9] = static_cast<uint8_t>(-sum(ssdt));
  std::vector<std::vector<uint8_t>> extra{ssdt};
  auto r = build_acpi(small_layout(), extra, mem, 0xe0000, 0xf0000);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const AcpiTable* xsdt = find(*r, "XSDT");
  EXPECT_EQ(u64(xsdt->bytes, 36 + 3 * 8), find(*r, "SSDT")->addr);

  auto bad = extra;
  bad[0][20] ^= 1;  // checksum now wrong
  EXPECT_FALSE(build_acpi(small_layout(), bad, mem, 0xe0000, 0xf0000).ok());
  bad = extra;
  bad[0].push_back(0);  // length mismatch
  EXPECT_FALSE(build_acpi(small_layout(), bad, mem, 0xe0000, 0xf0000).ok());
  EXPECT_FALSE(build_acpi(small_layout(), {}, mem, 0xe0008, 0xf0000).ok());  // alignment
  EXPECT_FALSE(build_acpi(small_layout(), {}, mem, 0xe0000, 0xe0100).ok());  // too small
  EXPECT_FALSE(build_acpi(small_layout(0), {}, mem, 0xe0000, 0xf0000).ok());
}

TEST(MpTable, Contents) {
  auto mem = small_memory();
  auto end = build_mptable(small_layout(2), mem, 0xf0000);
  ASSERT_TRUE(end.ok()) << end.error().message;
  std::vector<uint8_t> b(*end - 0xf0000);
  ASSERT_TRUE(mem.read(0xf0000, b).ok());
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "_MP_");
  EXPECT_EQ(sum(std::span(b).first(16)), 0);
  EXPECT_EQ(u32(b, 4), 0xf0010u);
  std::vector<uint8_t> t(b.begin() + 16, b.end());
  EXPECT_EQ(std::string(t.begin(), t.begin() + 4), "PCMP");
  EXPECT_EQ(t[4] | (t[5] << 8), static_cast<int>(t.size()));
  EXPECT_EQ(sum(t), 0);
  // entries: 2 CPUs (20 bytes each), bus, IOAPIC, ExtINT, 15 ISA IRQs (IRQ2 folded into IRQ0), 2
  // local
  uint16_t count = static_cast<uint16_t>(t[34] | (t[35] << 8));
  EXPECT_EQ(count, 2 + 1 + 1 + 1 + 15 + 2);
  EXPECT_EQ(t.size(), 44u + 2 * 20 + 8u * (count - 2u));
  EXPECT_EQ(t[44 + 3], 0x3);  // BSP enabled
  EXPECT_EQ(t[64 + 3], 0x1);
  EXPECT_FALSE(build_mptable(small_layout(), mem, 0xf0001).ok());
}

// Writes the tables for a 2-vCPU machine as <SIG>.dat and disassembles each with `iasl -d`
// (ACPICA); the RSDP is checked above (iasl 20200925 rejects a binary RSDP). Any error, warning,
// "Invalid" or checksum complaint fails the test. The DSDT is also recompiled from its disassembly.
TEST(AcpiIasl, DisassemblesCleanly) {
  if (std::system("iasl -v >/dev/null 2>&1") != 0) GTEST_SKIP() << "iasl not installed";
  auto mem = small_memory();
  auto r = build_acpi(small_layout(2), {}, mem, 0xe0000, 0xf0000);
  ASSERT_TRUE(r.ok()) << r.error().message;
  char tmpl[] = "/tmp/qvm-acpi-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::filesystem::path dir(tmpl);
  auto run = [&](const std::string& args) {
    std::string cmd = "cd " + dir.string() + " && iasl " + args + " 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return std::string("popen failed: error");
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    int rc = pclose(p);
    if (rc != 0) out += "\nexit status nonzero: error";
    return out;
  };
  auto bad = [](std::string text) {
    for (auto& c : text) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    for (const char* w : {"error", "warning", "invalid", "checksum", "**** "})
      if (text.find(w) != std::string::npos) return true;
    return false;
  };
  for (const auto& t : r->tables) {
    std::string name = t.signature + ".dat";
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(t.bytes.data()),  // SAFETY: bytes viewed as chars
               static_cast<std::streamsize>(t.bytes.size()));
    std::string out = run("-d " + name);
    std::ifstream dsl(dir / (t.signature + ".dsl"));
    std::string text((std::istreambuf_iterator<char>(dsl)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(text.empty()) << name << ":\n" << out;
    EXPECT_FALSE(bad(out)) << name << ":\n" << out;
    // The listing itself carries complaints as comments ("Incorrect checksum", "Invalid ...").
    EXPECT_EQ(text.find("Incorrect"), std::string::npos) << text;
    EXPECT_EQ(text.find("Invalid"), std::string::npos) << text;
  }
  std::string out = run("-p DSDT-recompiled DSDT.dsl");
  std::string lower = out;
  for (auto& c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  EXPECT_NE(lower.find("compilation successful"), std::string::npos) << out;
  EXPECT_NE(lower.find("0 errors, 0 warnings"), std::string::npos) << out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qvm::arch::x86
