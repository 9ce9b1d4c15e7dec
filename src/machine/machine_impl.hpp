// Internal to the machine layer: the concrete Machine and the pieces it is built from.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "arch/x86/board.hpp"
#include "base/clock.hpp"
#include "base/exit_code.hpp"
#include "base/unique_fd.hpp"
#include "bus/bus.hpp"
#include "config/vm_config.hpp"
#include "event/event_loop.hpp"
#include "kvm/kvm.hpp"
#include "kvm/vcpu.hpp"
#include "machine/dispatch.hpp"
#include "machine/gdb_server.hpp"
#include "machine/host_io.hpp"
#include "machine/machine.hpp"
#include "machine/vcpu_gate.hpp"
#include "memory/guest_memory.hpp"
#include "vdev/api/context.hpp"
#include "vdev/common/irq_line.hpp"

namespace qvm::vdev {
class AcpiPm;
}
namespace qvm::pci {
class PciRoot;
}
namespace qvm::virtio {
class VirtioDevice;
class MmioTransport;
}  // namespace qvm::virtio

namespace qvm::machine {

// Drives one GSI of the in-kernel irqchip (KVM_IRQ_LINE). Without a VM (dryrun) it does nothing.
class KvmIrqLine final : public vdev::IrqLine {
 public:
  KvmIrqLine(kvm::Vm* vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void set_level(bool high) override;
  uint32_t gsi() const { return gsi_; }

 private:
  kvm::Vm* vm_;
  uint32_t gsi_;
};

// How the VM ended; the first stop request wins.
struct StopState {
  std::atomic<bool> stopping{false};
  std::mutex mu;
  int exit_code = 0;
  std::string reason;
};

struct VcpuStats {
  std::atomic<uint64_t> exits{0}, io{0}, mmio{0}, unclaimed{0}, other{0};
  std::atomic<int> state{0};  // 0 created, 1 running, 2 stopped
};

// What the boot loader produced, for describe() and vCPU set-up (filled by boot.cpp).
struct BootState;

// The machine is the devices' VdevContext (device_context.cpp): factories place themselves
// through it and never see the rest.
class MachineImpl final : public Machine, private vdev::VdevContext {
 public:
  explicit MachineImpl(const config::VmConfig& cfg) : cfg_(cfg) {}
  ~MachineImpl() override;

  Status build(const BuildOptions& opts, BuildError* err);
  std::string describe() const override;
  int run() override;

  // Called by devices and signal handlers from any thread.
  void request_stop(int exit_code, const std::string& reason) override;
  // Guest dumps (dump.cpp, spec §3.13, §8.5): SIGUSR2 and the watchdogs' `dump` action. The
  // event loop's thread only.
  Status write_dump(std::string_view reason) override;
  bool dump_configured() const override { return cfg_.dump.has_value(); }

 private:
  Status check_board_ranges() const;
  Status build_memory();
  Status build_kvm();
  Status build_devices();
  Status build_vdev(const config::VdevConfig& v);
  Status add_virtio(const config::VdevConfig& v, vdev::VirtioDeviceBuild built) override;
  Status add_virtio_mmio(const config::VdevConfig& v, vdev::VirtioDeviceBuild built);
  Status add_virtio_pci(const config::VdevConfig& v, vdev::VirtioDeviceBuild built);
  Result<uint64_t> alloc_mmio(uint64_t size);
  Result<uint8_t> pci_slot(const config::VdevConfig& v, bool intx);  // pci_devices.cpp
  // Where a queue's notify register decodes, for its ioeventfd.
  struct NotifyAt {
    uint64_t addr;
    uint32_t len;
    bool io;
    std::optional<uint64_t> datamatch;
  };
  struct WiredNotify {
    int fd;
    uint16_t queue;
  };
  // The notification path of a virtio device on any transport (virtio_wiring.cpp): one
  // ioeventfd per queue that wants one, run by the event loop through `handle`, plus the
  // device's retry timer. Returns what was registered (PCI moves them with their BAR).
  Result<std::vector<WiredNotify>> wire_virtio(const vdev::VirtioDeviceBuild& built,
                                               uint16_t nqueues,
                                               const std::function<NotifyAt(uint16_t)>& where,
                                               std::function<void(uint16_t)> handle);
  Status add_io(uint64_t base, uint64_t len, std::shared_ptr<bus::BusDevice> dev,
                const std::string& name);
  Result<uint32_t> resolve_gsi(const config::IntrRef& r) const;
  Result<uint32_t> device_gsi(const config::VdevConfig& v, std::optional<uint32_t> fallback) const;
  uint64_t device_port(const config::VdevConfig& v) const;
  // vdev::VdevContext (device_context.cpp).
  bool dryrun() const override { return opts_.dryrun; }
  const std::string& system_name() const override { return system_name_; }
  const Clock& clock() const override { return clock_; }
  MemorySummary memory() const override;
  Result<uint32_t> gsi(const config::VdevConfig& v, std::optional<uint32_t> fallback) override;
  Result<std::vector<uint32_t>> gsis(const config::VdevConfig& v) override;
  Result<vdev::Interrupt> interrupt(const config::VdevConfig& v,
                                    std::optional<uint32_t> fallback) override;
  uint64_t port(const config::VdevConfig& v) const override { return device_port(v); }
  Status add_pio(uint64_t base, uint64_t len, std::shared_ptr<bus::BusDevice> dev,
                 const std::string& name) override {
    return add_io(base, len, std::move(dev), name);
  }
  Status add_mmio(uint64_t base, uint64_t len, std::shared_ptr<bus::BusDevice> dev,
                  const std::string& name) override;
  Result<vdev::PciPlacement> add_pci(const config::VdevConfig& v,
                                     vdev::PciFunctionBuild build) override;  // pci_devices.cpp
  std::unique_ptr<vdev::IrqLine> gsi_line(uint32_t gsi) override;
  memory::GuestMemory& guest_memory() override { return mem_; }
  Result<uint64_t> reserve_window(uint64_t size, uint64_t align,
                                  const std::string& name) override;  // device_context.cpp
  Result<std::unique_ptr<vdev::Registration>> map_host_memory(uint64_t gpa,
                                                              std::span<uint8_t> host) override;
  Result<std::unique_ptr<vdev::Registration>> irqfd(uint32_t gsi, int fd, int resample_fd) override;
  Result<std::unique_ptr<vdev::MsiIrqfd>> msi_irqfd(int fd, uint64_t addr, uint32_t data) override;
  Status remove_io(bool io, uint64_t base) override { return (io ? pio_ : mmio_).remove(base); }
  void after_access(std::function<void()> fn) override;
  Status signal_msi(uint64_t addr, uint32_t data) override;
  void at_start(std::function<void()> fn) override {
    at_start_.push_back(in_log_scope(std::move(fn)));
  }
  uint64_t ioapic_address() const override;
  void in_kernel_pic() override { has_8259_ = true; }
  Status in_kernel_pit(uint32_t pin) override;
  uint32_t isa_irq_gsi(uint8_t irq) const override {
    return irq == 0 && has_pit_ && pit_pin_ == 2 ? 2 : irq;
  }
  void hpet_legacy(bool on) override;
  event::EventLoop& loop() override { return *loop_; }
  Result<vdev::CharEndpoints> open_char(const std::vector<std::string>& hostdevs) override;
  void uses_terminal() override { uses_stdin_ = true; }
  void keep(std::shared_ptr<void> what) override { keep_.push_back(std::move(what)); }
  void add_acpi_device(vdev::AcpiIsaDevice d) override { acpi_devices_.push_back(std::move(d)); }
  void add_acpi_mmio_device(vdev::AcpiMmioDevice d) override {
    acpi_mmio_devices_.push_back(std::move(d));
  }
  Status add_acpi_hpet(uint64_t base) override {
    if (hpet_addr_) return make_error("only one HPET per VM");
    hpet_addr_ = base;
    return {};
  }
  void add_fdt_device(fdt::FdtDevice d, bool console) override;
  void describe(std::string line) override { device_lines_.push_back(std::move(line)); }
  void describe(std::string line, std::function<std::vector<std::string>()> live) override {
    live_status_.emplace_back(device_lines_.size(), std::move(live));
    device_lines_.push_back(std::move(line));
  }

  Status build_boot();  // boot.cpp: loaders, ACPI, MP table, vCPU registers
  Status create_vcpus();
  Status write_fdt(const std::string& path, uint64_t initrd_addr, uint64_t initrd_size);
  void vcpu_thread(size_t index);
  // Out of KVM_RUN soon: immediate_exit plus the kick signal. Main thread only (threads_ is
  // filled there before the event loop runs).
  void kick_vcpu(size_t index);
  void handle_signal(int sig);
  std::string status_report() const;
  void check_dump_destination() const;  // dump.cpp: warns at start-up when a dump would fail
  std::string dump_status() const;      // dump.cpp: the status report's line

  config::VmConfig cfg_;
  std::string system_name_ = cfg_.system_name();
  BuildOptions opts_;
  // Loggers of vdevs with their own `log` routing (spec §5), before everything that may hold
  // them (devices, their callbacks), so they outlive it.
  std::vector<std::unique_ptr<Logger>> vdev_loggers_;
  memory::GuestMemory mem_;
  std::optional<kvm::KvmSystem> kvm_;
  std::optional<kvm::Vm> vm_;
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  std::vector<std::unique_ptr<VcpuStats>> stats_;
  std::vector<std::thread> threads_;
  std::unique_ptr<VcpuGate> gate_;  // created with the vCPUs (create_vcpus)
  bus::Bus pio_{"port I/O"}, mmio_{"MMIO"};
  std::optional<event::EventLoop> loop_;
  SystemClock clock_;
  UnclaimedAction unclaimed_ = UnclaimedAction::kIgnore;

  // Everything devices need kept alive, in creation order.
  std::vector<std::shared_ptr<void>> keep_;
  std::vector<std::string> device_lines_;
  std::vector<std::function<void()>> at_start_;  // devices' start hooks (VdevContext::at_start)
  // What the devices asked the firmware tables to describe, in configuration order.
  std::vector<vdev::AcpiIsaDevice> acpi_devices_;
  std::vector<vdev::AcpiMmioDevice> acpi_mmio_devices_;
  std::optional<uint64_t> hpet_addr_;
  std::vector<fdt::FdtDevice> fdt_devices_;
  std::optional<std::string> fdt_stdout_;
  // Live state for SIGUSR1 reports, by device_lines_ index (virtio transports: rings, device).
  std::vector<std::pair<size_t, std::function<std::vector<std::string>()>>> live_status_;
  vdev::AcpiPm* pm_ = nullptr;
  std::mutex* pm_mu_ = nullptr;
  bool has_pit_ = false, has_8259_ = false, uses_stdin_ = false;
  uint32_t pit_pin_ = 0;
  std::vector<std::string> boot_lines_;
  struct VirtioMmioSlot {
    uint64_t base;
    uint32_t size;
    uint32_t gsi;
  };
  std::vector<VirtioMmioSlot> virtio_mmio_;
  uint64_t windows_end_ = 0;  // reserve_window's high-water mark
  std::shared_ptr<pci::PciRoot> pci_;
  // Bus changes requested from inside a device access (a guest moving a PCI BAR) run after that
  // access returns, on the vCPU thread that made it (run_deferred()).
  void defer(std::function<void()> fn);
  void run_deferred();
  std::mutex deferred_mu_;
  std::vector<std::function<void()>> deferred_;
  std::atomic<bool> has_deferred_{false};
  uint64_t mmio_next_ = arch::x86::kBoard.pci_mmio_base;  // next free address in the BAR window
  StopState stop_;
  UniqueFd stop_efd_;
  // Guest dumps written and one in progress (main thread only).
  uint64_t dumps_written_ = 0;
  bool dumping_ = false;
  // Last: it borrows the loop, the gate, the vCPUs and guest memory (design §5 "Live GDB").
  std::unique_ptr<GdbServer> gdb_;
  Status build_gdb();  // gdb_server.cpp's part of build(): `set gdb`
};

}  // namespace qvm::machine
