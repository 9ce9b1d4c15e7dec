// Schemas of the platform vdevs (spec §6.2): KVM's in-kernel IOAPIC, 8259 pair and PIT, the
// i8042 (reset line) and qvm's testdev. None has device-specific options.
#include "vdev/catalog.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {

using config::IntrPolicy;

config::VdevSchema ioapic_schema() {
  return {.type = "ioapic",
          .summary = "I/O APIC (in-kernel KVM model)",
          .can_mem = true,
          .default_loc = "0xfec00000",
          .intr = IntrPolicy::kUpstream,
          .pic_lines = 24,
          .x86_only = true};
}

config::VdevSchema i8259_schema() {
  return {.type = "8259",
          .summary = "legacy 8259A PIC (in-kernel KVM model; master at 0x20, slave at 0xa0)",
          .can_io = true,
          .intr = IntrPolicy::kNone,
          .pic_lines = 8,
          .x86_only = true};
}

config::VdevSchema timer8254_schema() {
  return {.type = "timer8254",
          .summary = "8254 programmable interval timer (in-kernel KVM model)",
          .can_io = true,
          .default_loc = "io:0x40",
          .intr = IntrPolicy::kOptional,
          .x86_only = true};
}

config::VdevSchema pckeyboard_schema() {
  return {.type = "pckeyboard",
          .summary = "i8042 keyboard controller (reset line for guest reboot)",
          .can_io = true,
          .default_loc = "io:0x60",
          .intr = IntrPolicy::kOptional,
          .x86_only = true};
}

config::VdevSchema testdev_schema() {
  return {.type = "testdev",
          .summary = "qvm test device: a guest write of N to the port ends qvm with exit code 32+N",
          .can_io = true,
          .default_loc = "io:0xf4",
          .intr = IntrPolicy::kNone};
}

std::optional<uint32_t> pic_gsi_base(const config::VdevConfig& pic) {
  // The one IOAPIC has GSIs 0-23; the 8259 pair shares GSIs 0-15 with it (master at 0x20: 0-7,
  // slave at 0xa0: 8-15), as KVM's in-kernel irqchip routes them.
  if (pic.type == "ioapic") return 0u;
  if (pic.type == "8259") return pic.location && pic.location->addr == 0xa0 ? 8u : 0u;
  return std::nullopt;
}

}  // namespace qvm::vdev
