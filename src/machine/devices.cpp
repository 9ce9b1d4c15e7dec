// Builds the platform vdevs of spec §6.2 from their configuration and puts them on the buses.
#include "arch/x86/board.hpp"
#include "base/log.hpp"
#include "config/values.hpp"
#include "machine/machine_impl.hpp"
#include "pci/pci_root.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/common/register_device.hpp"
#include "vdev/platform/acpi_pm.hpp"
#include "vdev/platform/i8042.hpp"

namespace qvm::machine {
namespace {

// A model, its lock and its bus adapter, kept alive together.
template <typename Model>
struct Bundle {
  std::mutex mu;
  std::unique_ptr<vdev::IrqLine> irq;
  std::unique_ptr<Model> model;
  std::shared_ptr<vdev::ByteRegisterDevice<Model>> adapter;
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
    if (auto s = build_vdev(v); !s)
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

// One vdev entry: the registry's factory for its type builds it (vdev/api/registry.cpp, or a
// loadable vdev-TYPE.so); the machine never names a type.
Status MachineImpl::build_vdev(const config::VdevConfig& v) {
  const std::string& t = v.type;
  // `log CLASSES DEST` on the vdev: its messages take that routing (its construction here, its
  // registers, event-loop callbacks and deferred work: base/log.hpp LogScope).
  Logger* own = nullptr;
  if (v.log) {
    vdev_loggers_.push_back(std::make_unique<Logger>("qvm", *v.log));
    own = vdev_loggers_.back().get();
  }
  LogScope scope(own);
  if (const vdev::VdevFactory* f = vdev::find_factory(t)) return f->create(v, *this);
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
