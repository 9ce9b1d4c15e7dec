// Builds the platform vdevs of spec §6.2 from their configuration and puts them on the buses.
#include <unistd.h>

#include <cerrno>

#include "arch/x86/board.hpp"
#include "base/log.hpp"
#include "config/values.hpp"
#include "machine/machine_impl.hpp"
#include "pci/pci_root.hpp"
#include "vdev/common/register_device.hpp"
#include "vdev/platform/acpi_pm.hpp"
#include "vdev/platform/i8042.hpp"
#include "vdev/rtc/mc146818.hpp"
#include "vdev/uart/uart16550.hpp"

namespace qvm::machine {
namespace {

// A model, its lock and its bus adapter, kept alive together.
template <typename Model>
struct Bundle {
  std::mutex mu;
  std::unique_ptr<vdev::IrqLine> irq;
  std::unique_ptr<Model> model;
  std::shared_ptr<vdev::ByteRegisterDevice<Model>> adapter;
  CharEndpoints endpoints;
  void attach() { adapter = std::make_shared<vdev::ByteRegisterDevice<Model>>(*model, mu); }
};

using arch::x86::kBoard;
constexpr uint16_t kPmBase = kBoard.pm_base;  // PM1a_EVT_BLK (4 bytes) + PM1a_CNT_BLK (2 bytes)
constexpr uint64_t kEcamBase = kBoard.ecam_base;
constexpr uint32_t kSciGsi = kBoard.sci_gsi;

}  // namespace

Status MachineImpl::build_devices() {
  pci_ = std::make_shared<pci::PciRoot>();  // bus 0 exists before any PCI vdev is placed
  for (const auto& v : cfg_.vdevs) {
    if (auto s = add_device(v); !s)
      return Error{v.loc.str() + ": vdev " + v.type + ": " + s.error().message,
                   s.error().sys_errno};
  }
  // x86 fixed hardware qvm always provides: ACPI PM1 registers (power button, S5) and the reset
  // control register the FADT names.
  auto pm = std::make_shared<Bundle<vdev::AcpiPm>>();
  pm->irq = std::make_unique<KvmIrqLine>(vm_ ? &*vm_ : nullptr, kSciGsi);
  pm->model = std::make_unique<vdev::AcpiPm>(
      *pm->irq, [this] { request_stop(kExitGuestStop, "guest powered off (ACPI S5)"); });
  pm->attach();
  QVM_TRY(add_io(kPmBase, 6, pm->adapter, "acpi-pm"));
  pm_ = pm->model.get();
  pm_mu_ = &pm->mu;
  keep_.push_back(pm);
  device_lines_.push_back(
      strprintf("acpi-pm     io 0x%x-0x%x  gsi %u (SCI)", kPmBase, kPmBase + 5, kSciGsi));
  // PCI bus 0 with its host bridge: configuration mechanism #1 at 0xCF8 (which also carries the
  // reset control register 0xCF9 that the FADT names) and ECAM, described by MCFG.
  auto rst = std::make_shared<Bundle<vdev::ResetControl>>();
  rst->model = std::make_unique<vdev::ResetControl>(
      [this] { request_stop(kExitGuestStop, "guest reset (port 0xcf9)"); });
  keep_.push_back(rst);
  Bundle<vdev::ResetControl>* r = rst.get();
  auto cf8 = std::make_shared<pci::PioConfigAccess>(
      *pci_,
      [r](uint8_t v) {
        std::lock_guard lk(r->mu);
        r->model->write(0, v);
      },
      [r] {
        std::lock_guard lk(r->mu);
        return r->model->read(0);
      });
  QVM_TRY(add_io(0xcf8, 8, cf8, "pci-config"));
  keep_.push_back(cf8);
  auto ecam = std::make_shared<pci::EcamAccess>(*pci_);
  QVM_TRY(mmio_.insert(kEcamBase, kBoard.ecam_size, ecam, "pci-ecam"));
  keep_.push_back(ecam);
  device_lines_.push_back(
      strprintf("pci         io 0xcf8-0xcff (incl. reset 0xcf9), ECAM mem 0x%llx-0x%llx, bus 0",
                static_cast<unsigned long long>(kEcamBase),
                static_cast<unsigned long long>(kEcamBase + kBoard.ecam_size - 1)));
  return {};
}

Status MachineImpl::add_device(const config::VdevConfig& v) {
  kvm::Vm* vm = vm_ ? &*vm_ : nullptr;
  const std::string& t = v.type;
  if (t == "ioapic") {
    uint64_t addr = v.location ? v.location->addr : kBoard.ioapic_addr;
    if (addr != kBoard.ioapic_addr)
      log_warn(
          "%s: the in-kernel IOAPIC is fixed at 0xfec00000; loc 0x%llx is ignored (ACPI describes "
          "the real "
          "address)",
          v.loc.str().c_str(), static_cast<unsigned long long>(addr));
    device_lines_.push_back("ioapic      mem 0xfec00000  24 pins, GSI 0-23 (in-kernel)");
    return {};
  }
  if (t == "8259") {
    has_8259_ = true;
    uint64_t port = device_port(v);
    if (port != 0x20 && port != 0xa0)
      return make_error("the in-kernel 8259 pair lives at io:0x20 and io:0xa0");
    device_lines_.push_back(
        strprintf("8259        io 0x%llx (in-kernel)", static_cast<unsigned long long>(port)));
    return {};
  }
  if (t == "timer8254") {
    if (device_port(v) != 0x40) return make_error("the in-kernel 8254 lives at io:0x40");
    uint32_t pin = QVM_TRY(device_gsi(v, 0u));
    if (pin != 0 && pin != 2) return make_error("the 8254's interrupt must be IOAPIC pin 0 or 2");
    pit_pin_ = pin;
    has_pit_ = true;
    if (vm) QVM_TRY(vm->create_pit());
    device_lines_.push_back(strprintf("timer8254   io 0x40-0x43  gsi %u (in-kernel)", pin));
    return {};
  }
  if (t == "mc146818") {
    auto b = std::make_shared<Bundle<vdev::Mc146818>>();
    uint32_t gsi = QVM_TRY(device_gsi(v, 8u));
    b->irq = std::make_unique<KvmIrqLine>(vm, gsi);
    b->model = std::make_unique<vdev::Mc146818>(clock_, *b->irq);
    uint64_t below = 0, above = 0;
    for (const auto& r : mem_.regions()) {
      if (r.readonly) continue;
      (r.gpa >= (1ull << 32) ? above : below) += r.size;
    }
    b->model->set_memory_sizes(below, above, static_cast<uint32_t>(cfg_.cpu_count()));
    for (const auto& reg : v.all("reg")) {
      auto l = config::parse_number_list(reg);
      if (l && l->size() == 2)
        b->model->preset(static_cast<uint8_t>((*l)[0]), static_cast<uint8_t>((*l)[1]));
    }
    b->attach();
    uint64_t port = device_port(v);
    QVM_TRY(add_io(port, 2, b->adapter, "mc146818"));
    // The periodic and once-a-second timers run on the main event loop.
    Bundle<vdev::Mc146818>* raw = b.get();
    auto periodic = QVM_TRY(event::Timer::create(*loop_, [raw](uint64_t n) {
      std::lock_guard lk(raw->mu);
      for (uint64_t i = 0; i < std::min<uint64_t>(n, 4); ++i) raw->model->periodic_tick();
    }));
    auto second = QVM_TRY(event::Timer::create(*loop_, [raw](uint64_t) {
      std::lock_guard lk(raw->mu);
      raw->model->second_tick();
    }));
    QVM_TRY(second->arm(std::chrono::seconds(1)));
    event::Timer* ptimer = periodic.get();
    // Called with the model's lock held (from a register write).
    b->model->on_timer_config = [raw, ptimer] {
      auto p = raw->model->periodic_period();
      (void)ptimer->arm(p.value_or(std::chrono::nanoseconds(0)));
    };
    timers_.push_back(std::move(periodic));
    timers_.push_back(std::move(second));
    keep_.push_back(b);
    device_lines_.push_back(strprintf("mc146818    io 0x%llx-0x%llx  gsi %u",
                                      static_cast<unsigned long long>(port),
                                      static_cast<unsigned long long>(port + 1), gsi));
    return {};
  }
  if (t == "ser8250") {
    auto b = std::make_shared<Bundle<vdev::Uart16550>>();
    uint32_t gsi = QVM_TRY(device_gsi(v, std::nullopt));
    b->endpoints = QVM_TRY(open_char_endpoints(v.all("hostdev")));
    b->irq = std::make_unique<KvmIrqLine>(vm, gsi);
    int out = b->endpoints.out;
    b->model = std::make_unique<vdev::Uart16550>(*b->irq, [out](uint8_t c) {
      if (out < 0) return;
      while (::write(out, &c, 1) < 0 && errno == EINTR) {
      }
    });
    b->attach();
    uint64_t port = device_port(v);
    QVM_TRY(add_io(port, 8, b->adapter, "ser8250"));
    if (b->endpoints.in >= 0 && !opts_.dryrun) {
      if (b->endpoints.in == STDIN_FILENO) uses_stdin_ = true;
      Bundle<vdev::Uart16550>* raw = b.get();
      int in = b->endpoints.in;
      auto added = loop_->add_fd(in, [this, raw, in] {
        uint8_t buf[256];
        ssize_t n = ::read(in, buf, sizeof buf);
        if (n <= 0) {
          if (n == 0 || (errno != EINTR && errno != EAGAIN))
            (void)loop_->remove_fd(in);  // EOF: no more input
          return;
        }
        std::lock_guard lk(raw->mu);
        raw->model->receive(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
      });
      if (!added)
        log_debug("serial input %d is not pollable: %s", in, added.error().message.c_str());
    }
    keep_.push_back(b);
    device_lines_.push_back(strprintf(
        "ser8250     io 0x%llx-0x%llx  gsi %u  hostdev:%s", static_cast<unsigned long long>(port),
        static_cast<unsigned long long>(port + 7), gsi,
        b->endpoints.description.empty() ? " none" : b->endpoints.description.c_str()));
    return {};
  }
  if (t == "pckeyboard") {
    // The PS/2 system control port (A20, fast reset) belongs to the same legacy block.
    auto a = std::make_shared<Bundle<vdev::SystemControlA>>();
    a->model = std::make_unique<vdev::SystemControlA>(
        [this] { request_stop(kExitGuestStop, "guest reset (port 0x92)"); });
    a->attach();
    QVM_TRY(add_io(0x92, 1, a->adapter, "system-control-a"));
    keep_.push_back(a);
    auto b = std::make_shared<Bundle<vdev::I8042>>();
    b->model = std::make_unique<vdev::I8042>(
        [this] { request_stop(kExitGuestStop, "guest reset (i8042)"); });
    b->attach();
    uint64_t port = device_port(v);
    QVM_TRY(add_io(port, 5, b->adapter, "pckeyboard"));
    keep_.push_back(b);
    device_lines_.push_back(strprintf("pckeyboard  io 0x%llx, 0x%llx",
                                      static_cast<unsigned long long>(port),
                                      static_cast<unsigned long long>(port + 4)));
    return {};
  }
  if (t == "testdev") {
    auto b = std::make_shared<Bundle<vdev::TestDev>>();
    b->model = std::make_unique<vdev::TestDev>([this](int code) {
      request_stop(code, strprintf("testdev: guest wrote %d", code - kExitGuestDefinedFirst));
    });
    b->attach();
    uint64_t port = device_port(v);
    QVM_TRY(add_io(port, 4, b->adapter, "testdev"));
    keep_.push_back(b);
    device_lines_.push_back(strprintf("testdev     io 0x%llx-0x%llx  (exit code 32+value)",
                                      static_cast<unsigned long long>(port),
                                      static_cast<unsigned long long>(port + 3)));
    return {};
  }
  if (t.rfind("virtio-", 0) == 0) {
    auto st = add_virtio(v);
    if (st || st.error().sys_errno != ENOSYS) return st;
    if (!opts_.dryrun) return st;
    log_warn("%s: vdev %s: %s: qvm would refuse to start this VM", v.loc.str().c_str(), t.c_str(),
             st.error().message.c_str());
    device_lines_.push_back(t + " (" + st.error().message + ")");
    return {};
  }
  // Types the configuration language knows but this qvm cannot build yet (see README status).
  if (opts_.dryrun) {
    log_warn("%s: vdev %s is not implemented yet: qvm would refuse to start this VM",
             v.loc.str().c_str(), t.c_str());
    device_lines_.push_back(t + " (not implemented yet)");
    return {};
  }
  return Error{"not implemented yet in this version of qvm", ENOSYS};
}

}  // namespace qvm::machine
