// vdev mc146818 (spec §6.2.4): the RTC/CMOS on the port bus, its periodic and once-a-second timers
// on the event loop (owned here), CMOS memory sizes from the guest's RAM, `reg` presets.
#include <algorithm>
#include <mutex>

#include "vdev/api/factories.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/common/register_device.hpp"
#include "vdev/rtc/mc146818.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {
namespace {

constexpr uint32_t kDefaultGsi = 8;  // ISA IRQ 8
constexpr uint64_t kPorts = 2;

struct Rtc {
  std::mutex mu;
  Interrupt irq;
  std::unique_ptr<Mc146818> model;
  std::shared_ptr<ByteRegisterDevice<Mc146818>> adapter;
  std::unique_ptr<event::Timer> periodic, second;
};

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  auto d = std::make_shared<Rtc>();
  d->irq = QVM_TRY(ctx.interrupt(v, kDefaultGsi));
  d->model = std::make_unique<Mc146818>(ctx.clock(), *d->irq.line);
  const auto mem = ctx.memory();
  d->model->set_memory_sizes(mem.below_4g, mem.above_4g, mem.cpus);
  for (const auto& [index, value] : QVM_TRY(typed_options<Mc146818Options>(v)).regs)
    d->model->preset(index, value);  // `reg` presets, parsed once (rtc/schema.cpp)
  d->adapter = std::make_shared<ByteRegisterDevice<Mc146818>>(*d->model, d->mu);
  const uint64_t port = ctx.port(v);
  QVM_TRY(ctx.add_pio(port, kPorts, d->adapter, "mc146818"));
  Rtc* raw = d.get();
  d->periodic = QVM_TRY(event::Timer::create(ctx.loop(), [raw](uint64_t n) {
    std::lock_guard lk(raw->mu);
    for (uint64_t i = 0; i < std::min<uint64_t>(n, 4); ++i) raw->model->periodic_tick();
  }));
  d->second = QVM_TRY(event::Timer::create(ctx.loop(), [raw](uint64_t) {
    std::lock_guard lk(raw->mu);
    raw->model->second_tick();
  }));
  QVM_TRY(d->second->arm(std::chrono::seconds(1)));
  // Called with the model's lock held (from a register write).
  d->model->on_timer_config = [raw] {
    auto p = raw->model->periodic_period();
    (void)raw->periodic->arm(p.value_or(std::chrono::nanoseconds(0)));
  };
  const uint32_t gsi = d->irq.gsi;
  ctx.keep(d);
  AcpiIsaDevice acpi{"PNP0B00", static_cast<uint16_t>(port), kPorts, std::nullopt};
  if (gsi < 16) acpi.irq = static_cast<uint8_t>(gsi);
  ctx.add_acpi_device(acpi);
  ctx.describe(strprintf("mc146818    io 0x%llx-0x%llx  gsi %u",
                         static_cast<unsigned long long>(port),
                         static_cast<unsigned long long>(port + kPorts - 1), gsi));
  return {};
}

}  // namespace

constinit const VdevFactory kMc146818Factory{"mc146818", create};

}  // namespace qvm::vdev
