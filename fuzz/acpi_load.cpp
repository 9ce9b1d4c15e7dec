// Fuzz target: `acpi load` tables (spec §7.3): the input is split into up to four extra tables
// (a length byte pair in front of each) handed to build_acpi() with a small machine, as a user's
// files would be. Property: no crash, hang, leak or out-of-bounds access; a bad table fails the
// build with an error; on success every table lies inside the ACPI area and sums to zero.
#include <cstdint>
#include <vector>

#include "arch/x86/acpi.hpp"
#include "arch/x86/layout.hpp"
#include "fuzz_input.hpp"

namespace {

using namespace qvm;
using namespace qvm::arch::x86;

constexpr uint64_t kBase = 0xe0000, kLimit = 0xf0000;

MachineLayout layout() {
  MachineLayout l;
  l.num_cpus = 2;
  l.ram = {{0, 0xa0000}, {0x100000, 0x100000}};
  l.reserved = {{0xa0000, 0x60000}};
  l.irq_overrides = standard_irq_overrides(true, l.sci_gsi);
  l.isa_devices = {{"PNP0501", 0x3f8, 8, 4}};
  l.hpet_addr = 0xfed00000;
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static memory::GuestMemory* mem = [] {
    auto* m = new memory::GuestMemory();
    fuzz::check(m->add_region(0, 0x200000, false).ok());
    return m;
  }();
  fuzz::Input in(data, size);
  std::vector<std::vector<uint8_t>> extra;
  const unsigned n = in.u8() % 5;
  for (unsigned i = 0; i < n && !in.empty(); i++) extra.push_back(in.bytes(in.u16() % 4096));
  auto r = build_acpi(layout(), extra, *mem, kBase, kLimit);
  if (!r.ok()) return 0;
  fuzz::check(r->rsdp_addr >= kBase && r->end <= kLimit);
  for (const auto& t : r->tables) {
    fuzz::check(t.addr >= kBase && t.addr + t.bytes.size() <= kLimit);
    if (t.signature == "FACS") continue;  // no checksum (ACPI 6.4 §5.2.10)
    uint8_t sum = 0;
    for (uint8_t b : t.bytes) sum = static_cast<uint8_t>(sum + b);
    fuzz::check(sum == 0);
  }
  return 0;
}
