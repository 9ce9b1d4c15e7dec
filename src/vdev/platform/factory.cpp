// The PC platform vdevs of spec §6.2: pckeyboard (i8042 with port 0x92), testdev, and the
// in-kernel interrupt controllers and PIT (ioapic, 8259, timer8254), which KVM models.
#include <mutex>

#include "base/exit_code.hpp"
#include "base/log.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/common/register_device.hpp"
#include "vdev/platform/i8042.hpp"

namespace qvm::vdev {
namespace {

// A byte-register model with its lock and bus adapter, kept alive together.
template <typename Model>
struct Held {
  std::mutex mu;
  std::unique_ptr<Model> model;
  std::shared_ptr<ByteRegisterDevice<Model>> adapter;
  explicit Held(std::unique_ptr<Model> m)
      : model(std::move(m)), adapter(std::make_shared<ByteRegisterDevice<Model>>(*model, mu)) {}
};

Status create_pckeyboard(const config::VdevConfig& v, VdevContext& ctx) {
  // The PS/2 system control port (A20, fast reset) belongs to the same legacy block.
  auto a = std::make_shared<Held<SystemControlA>>(std::make_unique<SystemControlA>(
      [&ctx] { ctx.request_stop(kExitGuestStop, "guest reset (port 0x92)"); }));
  QVM_TRY(ctx.add_pio(0x92, 1, a->adapter, "system-control-a"));
  ctx.keep(a);
  auto k = std::make_shared<Held<I8042>>(
      std::make_unique<I8042>([&ctx] { ctx.request_stop(kExitGuestStop, "guest reset (i8042)"); }));
  const uint64_t port = ctx.port(v);
  QVM_TRY(ctx.add_pio(port, 5, k->adapter, "pckeyboard"));
  ctx.keep(k);
  AcpiIsaDevice acpi{"PNP0303", static_cast<uint16_t>(port), 1, std::nullopt};
  if (auto gsi = ctx.gsi(v, 1u); gsi && *gsi < 16) acpi.irq = static_cast<uint8_t>(*gsi);
  ctx.add_acpi_device(acpi);
  ctx.describe(strprintf("pckeyboard  io 0x%llx, 0x%llx", static_cast<unsigned long long>(port),
                         static_cast<unsigned long long>(port + 4)));
  return {};
}

Status create_testdev(const config::VdevConfig& v, VdevContext& ctx) {
  auto t = std::make_shared<Held<TestDev>>(std::make_unique<TestDev>([&ctx](int code) {
    ctx.request_stop(code, strprintf("testdev: guest wrote %d", code - kExitGuestDefinedFirst));
  }));
  const uint64_t port = ctx.port(v);
  QVM_TRY(ctx.add_pio(port, 4, t->adapter, "testdev"));
  ctx.keep(t);
  ctx.describe(strprintf("testdev     io 0x%llx-0x%llx  (exit code 32+value)",
                         static_cast<unsigned long long>(port),
                         static_cast<unsigned long long>(port + 3)));
  return {};
}

Status create_ioapic(const config::VdevConfig& v, VdevContext& ctx) {
  const uint64_t fixed = ctx.ioapic_address();
  const uint64_t addr = v.location ? v.location->addr : fixed;
  if (addr != fixed)
    log_warn(
        "%s: the in-kernel IOAPIC is fixed at 0x%llx; loc 0x%llx is ignored (ACPI describes "
        "the real address)",
        v.loc.str().c_str(), static_cast<unsigned long long>(fixed),
        static_cast<unsigned long long>(addr));
  ctx.describe(strprintf("ioapic      mem 0x%llx  24 pins, GSI 0-23 (in-kernel)",
                         static_cast<unsigned long long>(fixed)));
  return {};
}

Status create_8259(const config::VdevConfig& v, VdevContext& ctx) {
  const uint64_t port = ctx.port(v);
  if (port != 0x20 && port != 0xa0)
    return make_error("the in-kernel 8259 pair lives at io:0x20 and io:0xa0");
  ctx.in_kernel_pic();
  ctx.describe(
      strprintf("8259        io 0x%llx (in-kernel)", static_cast<unsigned long long>(port)));
  return {};
}

Status create_timer8254(const config::VdevConfig& v, VdevContext& ctx) {
  if (ctx.port(v) != 0x40) return make_error("the in-kernel 8254 lives at io:0x40");
  const uint32_t pin = QVM_TRY(ctx.gsi(v, 0u));
  if (pin != 0 && pin != 2) return make_error("the 8254's interrupt must be IOAPIC pin 0 or 2");
  QVM_TRY(ctx.in_kernel_pit(pin));
  ctx.describe(strprintf("timer8254   io 0x40-0x43  gsi %u (in-kernel)", pin));
  return {};
}

}  // namespace

constinit const VdevFactory kPckeyboardFactory{"pckeyboard", create_pckeyboard};
constinit const VdevFactory kTestdevFactory{"testdev", create_testdev};
constinit const VdevFactory kIoapicFactory{"ioapic", create_ioapic};
constinit const VdevFactory k8259Factory{"8259", create_8259};
constinit const VdevFactory kTimer8254Factory{"timer8254", create_timer8254};

}  // namespace qvm::vdev
