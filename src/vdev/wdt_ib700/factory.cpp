// vdev wdt-ib700 (spec §6.2, §8.4): the IB700 model on its ports, its one-shot timer on the event
// loop (expiry never waits for a vCPU exit), and the configured action: `terminate` ends qvm with
// exit code 4 (spec §8.3), `reset` resets the board: qvm builds the VM again from its
// configuration and boots it in the same process (kRestartInPlace; a reboot the guest asks for
// itself still ends qvm, spec §8.2); `dump,` first writes a guest dump (spec §8.5) on the event
// loop's thread, then stops. Not in ACPI: Linux's ib700wdt is a legacy driver that claims the ports
// itself (docs/vm-core.md).
#include <mutex>

#include "base/exit_code.hpp"
#include "base/log.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/common/register_device.hpp"
#include "vdev/schemas.hpp"
#include "vdev/wdt_ib700/ib700.hpp"

namespace qvm::vdev {
namespace {

struct Wdt {
  std::mutex mu;
  std::unique_ptr<Ib700> model;
  std::shared_ptr<ByteRegisterDevice<Ib700>> adapter;
  std::unique_ptr<event::Timer> timer;
  std::chrono::steady_clock::time_point deadline{};
  uint64_t expiries = 0;
};

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  const auto opts = QVM_TRY(typed_options<Ib700Options>(v));
  // No silent options: a dump action without a destination is said where it is written.
  if (opts.dump && !ctx.dump_configured())
    log_warn(
        "%s: vdev wdt-ib700 action dump: no 'dump' configured; the watchdog will %s without a "
        "guest dump",
        v.loc.str().c_str(), opts.reset ? "reset the guest" : "terminate qvm");
  auto d = std::make_shared<Wdt>();
  Wdt* raw = d.get();
  const std::string name = v.name.value_or("wdt-ib700");
  d->timer = QVM_TRY(event::Timer::create(ctx.loop(), [raw, &ctx, opts, name](uint64_t) {
    std::chrono::seconds t;
    {
      std::lock_guard lk(raw->mu);
      // A kick between the expiry and this callback re-armed it: not due yet.
      if (std::chrono::steady_clock::now() + std::chrono::milliseconds(1) < raw->deadline) return;
      if (!raw->model->expire()) return;  // stopped meanwhile
      t = raw->model->timeout();
      ++raw->expiries;
    }
    const std::string why = strprintf("watchdog %s expired (not kicked for %lld s)", name.c_str(),
                                      static_cast<long long>(t.count()));
    // The dump comes before the stop request: once stopping, the vCPUs leave for good. At most
    // once per run (the action ends the VM), so the guest cannot make qvm dump repeatedly.
    if (opts.dump && ctx.dump_configured()) {
      if (auto s = ctx.write_dump(why); !s)
        log_error("%s: no guest dump written: %s", why.c_str(), s.error().message.c_str());
    }
    if (opts.reset)
      ctx.request_stop(kRestartInPlace, why + ": the board resets");
    else
      ctx.request_stop(kExitWatchdog, why);
  }));
  // Called under raw->mu from the model (a vCPU's port write).
  d->model = std::make_unique<Ib700>([raw](std::optional<std::chrono::seconds> t) {
    if (!t) {
      (void)raw->timer->arm(std::chrono::nanoseconds(0), std::chrono::nanoseconds(0));
      return;
    }
    raw->deadline = std::chrono::steady_clock::now() + *t;
    // A 0 s timeout fires at once (1 ns: 0 would disarm the timerfd).
    const auto first = t->count() ? std::chrono::nanoseconds(*t) : std::chrono::nanoseconds(1);
    (void)raw->timer->arm(first, std::chrono::nanoseconds(0));
  });
  d->adapter = std::make_shared<ByteRegisterDevice<Ib700>>(*d->model, d->mu);
  const uint64_t port = ctx.port(v);
  QVM_TRY(ctx.add_pio(port, Ib700::kPorts, d->adapter, "wdt-ib700"));
  ctx.keep(d);
  ctx.describe(
      strprintf("wdt-ib700   io 0x%llx-0x%llx  action %s%s", static_cast<unsigned long long>(port),
                static_cast<unsigned long long>(port + Ib700::kPorts - 1), opts.dump ? "dump," : "",
                opts.reset ? "reset" : "terminate"),
      [raw] {
        std::lock_guard lk(raw->mu);
        if (!raw->model->armed())
          return std::vector<std::string>{strprintf(
              "stopped, %llu kicks", static_cast<unsigned long long>(raw->model->kicks()))};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            raw->deadline - std::chrono::steady_clock::now());
        return std::vector<std::string>{
            strprintf("armed: %lld s timeout, %.1f s left, %llu kicks",
                      static_cast<long long>(raw->model->timeout().count()),
                      static_cast<double>(left.count()) / 1000.0,
                      static_cast<unsigned long long>(raw->model->kicks()))};
      });
  return {};
}

}  // namespace

constinit const VdevFactory kWdtIb700Factory{"wdt-ib700", create};

}  // namespace qvm::vdev
