// The HPET (IA-PC HPET Specification 1.0a): a 64-bit main counter at a fixed frequency and three
// comparators, one-shot or periodic, 64- or 32-bit, edge or level, routed to an IOAPIC input or
// (legacy replacement) timer 0 to IRQ0 and timer 1 to IRQ8. A model without host resources: the
// owner gives it the time, arms host timers for it and drives the interrupt lines (spec §6.2.3,
// vdev hpet; factory.cpp binds it to the event loop and KVM).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>

namespace qvm::vdev {

class Hpet {
 public:
  static constexpr uint64_t kSize = 0x400;
  static constexpr unsigned kTimers = 3;
  // General Capabilities low half: revision 1, 3 timers, 64-bit counter, legacy replacement
  // capable, vendor 0x8086 (the ACPI HPET table's Event Timer Block ID repeats it).
  static constexpr uint32_t kCapLow = 0x8086a201;
  // Periodic timers are not re-armed more often than this on the host (a guest that asks for a
  // shorter period gets its interrupts at this rate, the comparator catching up).
  static constexpr uint64_t kMinHostPeriodNs = 100'000;

  struct Hooks {
    std::function<uint64_t()> now_ns;  // monotonic nanoseconds
    // Timer n's comparator matches at `at_ns` (absolute, now_ns's clock); nullopt: disarmed.
    std::function<void(unsigned n, std::optional<uint64_t> at_ns)> arm;
    // Drive IOAPIC input `gsi` (legacy replacement: IRQ0's and IRQ8's GSIs, set_legacy_gsis()).
    std::function<void(uint32_t gsi, bool level)> irq;
    // Legacy replacement routing turned on or off (the PIT gives up or takes back IRQ0).
    std::function<void(bool on)> legacy;
  };
  // `route_cap`: the IOAPIC inputs a timer may be routed to (bit n = input n); `legacy`: offer
  // legacy replacement routing (LEG_RT_CAP).
  Hpet(uint64_t frequency_hz, uint32_t route_cap, bool legacy, Hooks hooks);

  // 4- and 8-byte accesses, naturally aligned (spec §2.3.9); anything else reads 0 / is dropped.
  void read(uint64_t offset, std::span<uint8_t> data);
  void write(uint64_t offset, std::span<const uint8_t> data);
  // A host timer armed through Hooks::arm fired.
  void expire(unsigned n);

  uint64_t counter() const;
  uint64_t period_fs() const { return period_fs_; }
  // Where legacy replacement delivers timer 0 (ISA IRQ0) and timer 1 (IRQ8): the GSIs the
  // machine's MADT maps those IRQs to (IRQ0 is GSI 0 or, with an override, 2). Default 2 and 8.
  void set_legacy_gsis(uint32_t irq0, uint32_t irq8) {
    irq0_gsi_ = irq0;
    irq8_gsi_ = irq8;
  }

 private:
  struct Timer {
    uint64_t config = 0;  // Tn_CONF_CAP's writable bits
    uint64_t cmp = ~0ull;
    uint64_t period = 0;
    bool level_high = false;
    uint32_t gsi = 0;  // the line it last drove
  };
  uint64_t read64(uint64_t reg);
  void write64(uint64_t reg, uint64_t value, uint64_t mask);
  bool enabled() const { return config_ & 1; }
  bool legacy_routing() const { return config_ & 2; }
  uint32_t route(unsigned n) const;
  uint64_t ns_for_ticks(uint64_t ticks) const;
  void reschedule(unsigned n);
  void fire(unsigned n);
  void set_line(unsigned n, bool level);

  uint64_t freq_;
  uint64_t period_fs_;
  uint32_t route_cap_;
  bool legacy_cap_;
  uint32_t irq0_gsi_ = 2, irq8_gsi_ = 8;
  Hooks hooks_;
  uint64_t config_ = 0;
  uint64_t isr_ = 0;  // General Interrupt Status (level-triggered timers)
  uint64_t base_count_ = 0;
  uint64_t base_ns_ = 0;  // the counter was base_count_ at base_ns_ (while enabled)
  std::array<Timer, kTimers> t_{};
};

}  // namespace qvm::vdev
