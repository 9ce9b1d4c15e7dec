// What a vdev factory may use (vdev/api/context.hpp), answered by the machine: interrupts on the
// in-kernel irqchip, the port bus, the event loop, host character ends, the stop request, the
// firmware-table descriptions and the device's dryrun/status line.
#include "arch/x86/board.hpp"
#include "machine/machine_impl.hpp"

namespace qvm::machine {

vdev::VdevContext::MemorySummary MachineImpl::memory() const {
  MemorySummary m;
  for (const auto& r : mem_.regions()) {
    if (r.readonly) continue;
    (r.gpa >= (1ull << 32) ? m.above_4g : m.below_4g) += r.size;
  }
  m.cpus = static_cast<uint32_t>(cfg_.cpu_count());
  return m;
}

Result<uint32_t> MachineImpl::gsi(const config::VdevConfig& v, std::optional<uint32_t> fallback) {
  return device_gsi(v, fallback);
}

Result<vdev::Interrupt> MachineImpl::interrupt(const config::VdevConfig& v,
                                               std::optional<uint32_t> fallback) {
  const uint32_t g = QVM_TRY(device_gsi(v, fallback));
  return vdev::Interrupt{std::make_unique<KvmIrqLine>(vm_ ? &*vm_ : nullptr, g), g};
}

uint64_t MachineImpl::ioapic_address() const {
  return arch::x86::kBoard.ioapic_addr;
}

Status MachineImpl::in_kernel_pit(uint32_t pin) {
  pit_pin_ = pin;
  has_pit_ = true;
  if (vm_) QVM_TRY(vm_->create_pit());
  return {};
}

Result<vdev::CharEndpoints> MachineImpl::open_char(const std::vector<std::string>& hostdevs) {
  return vdev::open_char_endpoints(hostdevs);
}

void MachineImpl::add_fdt_device(fdt::FdtDevice d, bool console) {
  if (console && !fdt_stdout_)
    fdt_stdout_ =
        strprintf("/%s@%llx", d.node_name.c_str(), static_cast<unsigned long long>(d.reg.base));
  fdt_devices_.push_back(std::move(d));
}

}  // namespace qvm::machine
