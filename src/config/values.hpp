// Typed values of the configuration language (spec §2.4–§2.6): numbers with 0x/0d prefixes and
// K/M/G suffixes, booleans, guest locations (mem:/io:/pci:) and interrupt references.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace qvm::config {

// Parses `0x1f`, `4096`, `0d16384`, `16M`, `4k`, `1G` (suffix multiplies, any case).
// Errors say what was expected. Overflow of 64 bits is an error.
Result<uint64_t> parse_number(std::string_view s);
// on/off, 1/0, yes/no, true/false (any case).
Result<bool> parse_bool(std::string_view s);
// Comma-separated numbers ("1,3,4").
Result<std::vector<uint64_t>> parse_number_list(std::string_view s);

enum class AddrSpace { kMem, kIo, kPci };

// A guest location: mem:ADDR (default), io:PORT, pci:BUS:DEV[.FUNC] or pci:VID/DID[/INDEX].
struct GuestLoc {
  AddrSpace space = AddrSpace::kMem;
  uint64_t addr = 0;  // mem / io
  bool pci_by_id = false;
  uint16_t vendor = 0, device = 0;
  uint32_t index = 0;
  uint8_t bus = 0, dev = 0, func = 0;

  std::string str() const;
  bool operator==(const GuestLoc&) const = default;
};
Result<GuestLoc> parse_guest_loc(std::string_view s);

// An interrupt reference: `pic:line` (pic = the `name` of an interrupt-controller vdev), or
// `apic` (the local APIC, used by the ioapic vdev).
struct IntrRef {
  std::string pic;  // empty when apic
  uint32_t line = 0;
  bool apic = false;

  std::string str() const;
  bool operator==(const IntrRef&) const = default;
};
Result<IntrRef> parse_intr(std::string_view s);
// Comma-separated list of interrupt references (hpet: `a:0,a:8`).
Result<std::vector<IntrRef>> parse_intr_list(std::string_view s);

std::vector<std::string_view> split(std::string_view s, char sep);
std::string hex(uint64_t v);

}  // namespace qvm::config
