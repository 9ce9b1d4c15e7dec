// A small AML byte encoder (ACPI 6.4 §20, "ACPI Machine Language Specification") for the data
// objects qvm's DSDT needs: names, integers, strings, packages, buffers, Scope and Device, EISA ids
// and resource templates (ACPI 6.4 §6.4). No methods, no fields, no operators.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace qvm::arch::x86::aml {

using Bytes = std::vector<uint8_t>;

// PkgLength (§20.2.4) for a body of `body_len` bytes; the encoded length counts itself.
Bytes pkg_length(size_t body_len);
// NameString (§20.2.2): optional leading '\' (root), then 1..255 '.'-separated segments of up to 4
// characters each, padded with '_' ("\\_SB" -> "\\_SB_"). Callers pass valid ACPI names.
Bytes name_string(std::string_view path);
// True if `seg` is a valid NameSeg before padding: 1..4 of [A-Z0-9_], not starting with a digit.
bool is_name_seg(std::string_view seg);

Bytes integer(uint64_t v);         // ZeroOp/OneOp/Byte/Word/DWord/QWordConst (§20.2.3)
Bytes string(std::string_view s);  // StringPrefix ... NUL; `s` must not contain NUL
// EISAID("PNP0501") (ACPI 6.4 §6.1.5): three letters packed 5 bits each, then four hex digits,
// as a DWordConst. `id` must satisfy is_eisa_id().
Bytes eisa_id(std::string_view id);
bool is_eisa_id(std::string_view id);

Bytes name(std::string_view n, const Bytes& object);                // DefName (§20.2.5.1)
Bytes package(std::span<const Bytes> elements);                     // DefPackage (§20.2.5.4)
Bytes buffer(std::span<const uint8_t> data);                        // DefBuffer
Bytes scope(std::string_view n, std::span<const Bytes> children);   // DefScope (§20.2.5.1)
Bytes device(std::string_view n, std::span<const Bytes> children);  // DefDevice (§20.2.5.2)

// ResourceTemplate(){...}: resource descriptors (ACPI 6.4 §6.4.2, §6.4.3) ended by an End Tag;
// build() wraps them in a Buffer, ready for Name(_CRS, ...).
class ResourceTemplate {
 public:
  // IO(Decode16, base, base, 1, len) (§6.4.2.5).
  ResourceTemplate& io(uint16_t base, uint8_t len);
  // IRQNoFlags(){irq} (§6.4.2.1): edge, active high; irq < 16.
  ResourceTemplate& irq_no_flags(uint8_t irq);
  // Interrupt(ResourceConsumer, Edge|Level, ActiveHigh|ActiveLow, Exclusive|Shared){gsi}
  // (Extended Interrupt Descriptor, §6.4.3.6).
  ResourceTemplate& interrupt(uint32_t gsi, bool edge, bool active_low, bool shared);
  // Memory32Fixed(ReadWrite|ReadOnly, base, len) (§6.4.3.4).
  ResourceTemplate& memory32_fixed(uint32_t base, uint32_t len, bool writable);
  // Address space descriptors (ACPI 6.5 §6.4.3.5.2-3), as a producer (a root bridge's windows):
  // bus numbers, an I/O window, a 32-bit memory window; min/max inclusive, fixed.
  ResourceTemplate& word_bus_number(uint16_t min, uint16_t max);
  ResourceTemplate& word_io(uint16_t min, uint16_t max);
  ResourceTemplate& dword_memory(uint32_t min, uint32_t max);
  Bytes build() const;

 private:
  Bytes d_;
};

}  // namespace qvm::arch::x86::aml
