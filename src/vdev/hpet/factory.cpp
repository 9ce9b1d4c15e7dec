// vdev hpet (spec §6.2.3; docs/vm-core.md): the HPET model on its 1 KiB register block, one
// event-loop timer per comparator, interrupts through the in-kernel IOAPIC. `intr` lists the
// IOAPIC inputs the timers may be routed to (Tn_INT_ROUTE_CAP; default: inputs 20-23);
// `legacy-free` withdraws legacy replacement routing (timer 0 to IRQ0, timer 1 to IRQ8, at the
// GSIs the MADT gives those IRQs; the in-kernel PIT gives IRQ0 up meanwhile). The ACPI HPET table
// and a PNP0103 device in the DSDT describe it.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "base/log.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/hpet/hpet.hpp"

namespace qvm::vdev {
namespace {

// The bus holds the registers; the timers are kept by the context, which lets them go before
// the event loop they are registered with (the bus goes after it).
struct HpetTimers {
  std::array<std::unique_ptr<event::Timer>, Hpet::kTimers> timers;
};

struct HpetDevice final : bus::BusDevice {
  std::mutex mu;
  std::unique_ptr<Hpet> model;
  std::map<uint32_t, std::unique_ptr<IrqLine>> lines;
  uint64_t interrupts = 0;

  void read(uint64_t offset, std::span<uint8_t> data) override {
    std::lock_guard lk(mu);
    model->read(offset, data);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard lk(mu);
    model->write(offset, data);
  }
};

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  const uint64_t freq = v.number("frequency").value_or(14318180);
  const bool legacy = !v.has("legacy-free");
  uint32_t route_cap = 0;
  const std::vector<uint32_t> gsis = QVM_TRY(ctx.gsis(v));
  for (uint32_t g : gsis) {
    if (g >= 32) return make_error(v.intr_loc.str() + ": the HPET routes to IOAPIC inputs 0-31");
    route_cap |= 1u << g;
  }
  if (gsis.empty()) route_cap = 0x00f00000;  // IOAPIC inputs 20-23
  const uint64_t base = ctx.port(v);
  auto d = std::make_shared<HpetDevice>();
  auto timers = std::make_shared<HpetTimers>();
  HpetDevice* raw = d.get();
  HpetTimers* tm = timers.get();
  Hpet::Hooks hooks;
  hooks.now_ns = now_ns;
  // Called with raw->mu held (a register access on a vCPU, or an expiry on the main thread).
  hooks.arm = [tm](unsigned n, std::optional<uint64_t> at) {
    if (!tm->timers[n]) return;
    if (!at) {
      (void)tm->timers[n]->arm(std::chrono::nanoseconds(0), std::chrono::nanoseconds(0));
      return;
    }
    const uint64_t now = now_ns();
    const auto first = std::chrono::nanoseconds(*at > now ? *at - now : 1);
    (void)tm->timers[n]->arm(first, std::chrono::nanoseconds(0));
  };
  hooks.irq = [raw, &ctx](uint32_t gsi, bool level) {
    auto& line = raw->lines[gsi];
    if (!line) line = ctx.gsi_line(gsi);
    if (level) ++raw->interrupts;
    line->set_level(level);
  };
  hooks.legacy = [&ctx](bool on) { ctx.hpet_legacy(on); };
  d->model = std::make_unique<Hpet>(freq, route_cap, legacy, std::move(hooks));
  // Legacy replacement delivers where the guest's MADT says IRQ0 and IRQ8 are: known once every
  // vdev (the 8254 with its pin) is built.
  ctx.at_start([raw, &ctx] {
    std::lock_guard lk(raw->mu);
    raw->model->set_legacy_gsis(ctx.isa_irq_gsi(0), ctx.isa_irq_gsi(8));
  });
  for (unsigned n = 0; n < Hpet::kTimers; ++n)
    tm->timers[n] = QVM_TRY(event::Timer::create(ctx.loop(), [raw, n](uint64_t) {
      std::lock_guard lk(raw->mu);
      raw->model->expire(n);
    }));
  QVM_TRY(ctx.add_mmio(base, Hpet::kSize, d, "hpet"));
  QVM_TRY(ctx.add_acpi_hpet(base));
  ctx.keep(d);
  ctx.keep(timers);
  std::string routes;
  for (uint32_t g = 0; g < 32; ++g)
    if (route_cap & (1u << g)) routes += (routes.empty() ? "" : ",") + std::to_string(g);
  ctx.describe(
      strprintf("hpet        mem 0x%llx-0x%llx  %llu Hz, %u timers, routes gsi %s%s",
                static_cast<unsigned long long>(base),
                static_cast<unsigned long long>(base + Hpet::kSize - 1),
                static_cast<unsigned long long>(freq), Hpet::kTimers, routes.c_str(),
                legacy ? ", legacy replacement" : ""),
      [raw] {
        std::lock_guard lk(raw->mu);
        return std::vector<std::string>{strprintf(
            "counter %llu, %llu interrupts", static_cast<unsigned long long>(raw->model->counter()),
            static_cast<unsigned long long>(raw->interrupts))};
      });
  return {};
}

}  // namespace

constinit const VdevFactory kHpetFactory{"hpet", create};

}  // namespace qvm::vdev
