// The device interface (design §3.7, crosvm's device modules): a vdev type is a factory, its
// `create(config, context)` builds the device from its validated `vdev` entry and places it through
// the VdevContext, which offers what a device may use and nothing more. The machine implements the
// context; it never names a device type. Built-in factories are listed in registry.cpp (no static
// constructors).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.hpp"
#include "base/result.hpp"
#include "bus/bus.hpp"
#include "config/vm_config.hpp"
#include "event/event_loop.hpp"
#include "fdt/fdt.hpp"
#include "memory/guest_memory.hpp"
#include "pci/pci_root.hpp"
#include "vdev/api/char_endpoints.hpp"
#include "vdev/api/char_output.hpp"
#include "vdev/common/irq_line.hpp"
#include "virtio/device.hpp"

namespace qvm::vdev {

// A legacy device the firmware tables describe (DSDT under \_SB: ACPI 6.4 §6.1.5 _HID, §6.2.2
// _CRS): one I/O range and an optional ISA IRQ.
struct AcpiIsaDevice {
  std::string hid;  // EISA id, e.g. "PNP0501"
  uint16_t io_base = 0;
  uint8_t io_len = 0;
  std::optional<uint8_t> irq;
};

// A memory-mapped device the DSDT describes for drivers that match devicetree `compatible`
// strings (_HID "PRP0001" + _DSD), with its registers and a level-triggered interrupt.
struct AcpiMmioDevice {
  std::string compatible;
  uint64_t base = 0;
  uint32_t size = 0;
  uint32_t gsi = 0;
};

// A device's interrupt: the line it drives and the GSI it is wired to (for tables and logs).
struct Interrupt {
  std::unique_ptr<IrqLine> line;
  uint32_t gsi = 0;
};

// A virtio device ready for its transport: the machine places it on virtio-mmio (with `loc` and
// `intr`) or on PCI (spec §5) and wires its notifications the same way on both
// (machine/virtio_wiring.cpp).
struct VirtioDeviceBuild {
  std::shared_ptr<virtio::VirtioDevice> device;
  // Optional: once the transport exists, `notify(queue)` runs the device's queue processing
  // through the transport (for host input); hook the device's fds to the event loop here.
  std::function<Status(std::function<void(uint16_t)>)> attach;
  std::string summary;  // appended to the device's dryrun/status line
  bool legacy = false;  // the legacy transport (virtio 0.9.5: MMIO version 1, transitional PCI)
  // Optional: told each queue's notify ioeventfd once it exists (vhost-net's kick); true if the
  // device polls it itself (then the machine does not add it to the event loop).
  std::function<bool(uint16_t queue, int fd)> notify_fd;
  // false: no queue ioeventfds; notifications are handled on the vCPU thread (virtio-net).
  bool ioeventfd = true;
  // Optional, with `ioeventfd`: false for a queue whose notifications should still exit to the
  // vCPU thread (virtio-net `ioeventfd tx`: the receive queues).
  std::function<bool(uint16_t queue)> queue_ioeventfd;
  // Optional: a device that stops for lack of a host resource (rate-limited entropy) says how
  // long until it can go on; the transport's retry timer resumes it then.
  std::function<std::optional<std::chrono::nanoseconds>()> retry_after;
  // For the device line: "" (all queues through ioeventfds), or which notifications exit.
  std::string notify_text(uint16_t nqueues) const {
    if (!ioeventfd) return "notify on the vCPU";
    for (uint16_t q = 0; q < nqueues && queue_ioeventfd; ++q)
      if (!queue_ioeventfd(q)) return "receive notify on the vCPU";
    return "";
  }
};

// A PCI function a device built: its configuration space declares its BARs (addresses unset).
// The machine places it on bus 0 (spec §5, §7.5): a slot (`loc pci:0:DEV` or the first free one),
// its BARs in the PCI windows, INTA#'s GSI in the Interrupt Line, decoding on; and it follows the
// guest's BAR moves (firmware and OSes reassign BARs).
struct PciFunctionBuild {
  std::shared_ptr<pci::PciFunction> function;
  // The bus device behind BAR `index`, offsets relative to the BAR's start.
  std::function<std::shared_ptr<bus::BusDevice>(uint8_t index)> bar_device;
  // Optional: BAR `index` now decodes at `to` instead of `from` (the bus range has moved). Runs
  // on the vCPU thread after the configuration access that moved it.
  std::function<void(uint8_t index, uint64_t from, uint64_t to)> bar_moved;
};
struct PciPlacement {
  uint8_t slot = 0;
  uint32_t intx_gsi = 0;                           // INTA# (IOAPIC, level, active low)
  std::vector<std::pair<uint8_t, uint64_t>> bars;  // BAR index -> where it was placed
  std::string text;                                // "pci 00:03.0 BAR0 0x...+0x..."
  uint64_t bar_address(uint8_t index) const {
    for (const auto& [i, a] : bars)
      if (i == index) return a;
    return 0;
  }
};

// Something the machine set up for a device until the device drops it (a memslot, an irqfd).
class Registration {
 public:
  virtual ~Registration() = default;
};

// An MSI that an eventfd raises in the kernel: a KVM MSI route with an irqfd on it (injected at
// once, no thread in between) until the registration goes. update() changes the message (the
// guest rewrote its MSI-X entry). Any thread.
class MsiIrqfd : public Registration {
 public:
  virtual Status update(uint64_t addr, uint32_t data) = 0;
};

// The context outlives every device built through it: callbacks may keep a reference to it.
class VdevContext {
 public:
  virtual ~VdevContext() = default;

  // dryrun: everything is built and placed, but nothing is opened on the host that the run would
  // not need to describe itself, and no KVM state exists.
  virtual bool dryrun() const = 0;
  virtual const std::string& system_name() const = 0;  // `system` (spec §3.1)
  virtual const Clock& clock() const = 0;
  // Guest RAM below and above 4 GiB, and the vCPU count (CMOS reports them).
  struct MemorySummary {
    uint64_t below_4g = 0, above_4g = 0;
    uint32_t cpus = 1;
  };
  virtual MemorySummary memory() const = 0;

  // The GSI of the vdev's first `intr` (spec §5), or `fallback` when it has none; an error names
  // what is missing.
  virtual Result<uint32_t> gsi(const config::VdevConfig& v, std::optional<uint32_t> fallback) = 0;
  // The GSIs of all of the vdev's `intr` entries (multi-interrupt vdevs: hpet), in order.
  virtual Result<std::vector<uint32_t>> gsis(const config::VdevConfig& v) = 0;
  // A line driving that GSI on the in-kernel irqchip.
  virtual Result<Interrupt> interrupt(const config::VdevConfig& v,
                                      std::optional<uint32_t> fallback) = 0;
  // The vdev's `loc` port, or its schema's default location.
  virtual uint64_t port(const config::VdevConfig& v) const = 0;
  virtual Status add_pio(uint64_t base, uint64_t len, std::shared_ptr<bus::BusDevice> dev,
                         const std::string& name) = 0;
  // A register range in guest-physical memory (every access exits to the device); it must not
  // overlap RAM, ROM, `reserve` or another device.
  virtual Status add_mmio(uint64_t base, uint64_t len, std::shared_ptr<bus::BusDevice> dev,
                          const std::string& name) = 0;
  // Removes a range added with add_pio/add_mmio at `base` (run time: e.g. a vdev's window).
  virtual Status remove_io(bool io, uint64_t base) = 0;
  // Runs `fn` once the bus access in progress on this thread has returned (bus changes cannot
  // happen inside one), or now when none is.
  virtual void after_access(std::function<void()> fn) = 0;
  // Guest-physical space for a window that is neither RAM nor registers (shared-memory
  // regions): `size` bytes aligned to `align`, above RAM, ROM, `reserve`, the PCI windows and
  // every window reserved before. Described in no firmware table; the caller tells the guest.
  virtual Result<uint64_t> reserve_window(uint64_t size, uint64_t align,
                                          const std::string& name) = 0;
  // Host memory (page aligned) as guest memory at `gpa` until the registration goes: a KVM
  // memslot, never trapped. Any thread. In dryrun a registration that does nothing.
  virtual Result<std::unique_ptr<Registration>> map_host_memory(uint64_t gpa,
                                                                std::span<uint8_t> host) = 0;
  // An eventfd that drives `gsi` in the kernel (KVM irqfd) until the registration goes. With
  // `resample_fd` the line is level-triggered: it stays asserted until the guest's EOI, which
  // signals `resample_fd` (the device re-signals `fd` if its condition still holds).
  virtual Result<std::unique_ptr<Registration>> irqfd(uint32_t gsi, int fd, int resample_fd) = 0;
  // `fd` raises the MSI (addr, data) (see MsiIrqfd). In dryrun a registration that does nothing.
  virtual Result<std::unique_ptr<MsiIrqfd>> msi_irqfd(int fd, uint64_t addr, uint32_t data) = 0;
  // Guest RAM and ROM: the one checked accessor (memory/guest_memory.hpp).
  virtual memory::GuestMemory& guest_memory() = 0;
  // One MSI (x86: address 0xfeeXXXXX), from any thread. A no-op in dryrun.
  virtual Status signal_msi(uint64_t addr, uint32_t data) = 0;

  // The in-kernel interrupt controllers and PIT (KVM): the IOAPIC's fixed address on this
  // board, the 8259 pair's presence (MADT PCAT_COMPAT), the PIT on IOAPIC pin 0 or 2.
  virtual uint64_t ioapic_address() const = 0;
  virtual void in_kernel_pic() = 0;
  virtual Status in_kernel_pit(uint32_t pin) = 0;
  // The GSI the firmware tables map ISA IRQ `irq` to (the MADT's interrupt source overrides:
  // IRQ0 is GSI 2 when the PIT is on pin 2, else every IRQ is its own GSI). Final once every vdev
  // is built (at_start).
  virtual uint32_t isa_irq_gsi(uint8_t irq) const = 0;
  // An HPET entering or leaving legacy replacement mode: the in-kernel PIT stops or resumes
  // driving IRQ0 (a no-op without one). From any thread.
  virtual void hpet_legacy(bool on) = 0;

  // The main thread's event loop (timers, host fds); devices own what they add to it.
  virtual event::EventLoop& loop() = 0;
  // Host ends of a character device (`hostdev` values); a device reading the terminal says so.
  virtual Result<CharEndpoints> open_char(const std::vector<std::string>& hostdevs) = 0;
  virtual void uses_terminal() = 0;

  // Runs `fn` on the main thread once every vdev is built, just before the vCPUs start (never in
  // dryrun).
  virtual void at_start(std::function<void()> fn) = 0;

  // Ends the VM with `exit_code` (spec §8.3), from any thread; the first request wins.
  // kRestartInPlace (base/exit_code.hpp) instead builds and boots the VM again.
  virtual void request_stop(int exit_code, const std::string& reason) = 0;
  // A guest dump (spec §3.13, §8.5; docs/debugging.md): every vCPU paused, its registers and all
  // guest memory written as an ELF core to the `dump` destination, the vCPUs resumed; the path,
  // size and time are logged, `reason` says why ("watchdog wdt1 expired"). Blocks until the core
  // is written. The event loop's thread only (timer and fd callbacks): a vCPU thread would wait
  // for itself, so it gets an error. An error too without `dump` (dump_configured()), in dryrun,
  // or when the destination fails; the caller decides what follows (a watchdog still stops).
  virtual Status write_dump(std::string_view reason) = 0;
  virtual bool dump_configured() const = 0;

  // Keeps `what` alive as long as the VM (models, adapters, timers, fds), in creation order.
  virtual void keep(std::shared_ptr<void> what) = 0;
  // Firmware-table descriptions of the device.
  virtual void add_acpi_device(AcpiIsaDevice d) = 0;
  virtual void add_acpi_mmio_device(AcpiMmioDevice d) = 0;
  // The HPET's register block, for the ACPI HPET table and the DSDT (one per VM).
  virtual Status add_acpi_hpet(uint64_t base) = 0;
  // `console`: the device is the guest's console (/chosen stdout-path) unless one came first.
  virtual void add_fdt_device(fdt::FdtDevice d, bool console) = 0;
  // Places a PCI function (above). The caller describes the device (its line names
  // placement.text).
  virtual Result<PciPlacement> add_pci(const config::VdevConfig& v, PciFunctionBuild build) = 0;
  // A line driving `gsi` on the in-kernel irqchip (e.g. a PCI function's INTA#).
  virtual std::unique_ptr<IrqLine> gsi_line(uint32_t gsi) = 0;
  // Places a virtio device on its transport and describes it (its line and status report).
  virtual Status add_virtio(const config::VdevConfig& v, VirtioDeviceBuild build) = 0;
  // The device's line in `dryrun` and in the status report (SIGUSR1); `live` adds lines of the
  // device's state to each status report.
  virtual void describe(std::string line) = 0;
  virtual void describe(std::string line, std::function<std::vector<std::string>()> live) = 0;
};

// One vdev type. Plain data (a function pointer): the built-in factories are constant-initialized,
// nothing runs before main.
struct VdevFactory {
  std::string_view type;
  Status (*create)(const config::VdevConfig&, VdevContext&);
};

}  // namespace qvm::vdev
