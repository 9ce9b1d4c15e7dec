// The x86 boot flow of spec §7.1 after the devices exist: memory map, ACPI and MP tables, the
// loaded images, and the vCPUs with the boot vCPU's registers set per the loader's BootPlan.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>

#include "arch/x86/acpi.hpp"
#include "arch/x86/bda.hpp"
#include "arch/x86/e820.hpp"
#include "arch/x86/layout.hpp"
#include "arch/x86/loader.hpp"
#include "arch/x86/mptable.hpp"
#include "base/log.hpp"
#include "base/safe_open.hpp"
#include "fdt/fdt.hpp"
#include "machine/machine_impl.hpp"
#include "machine/x86_cpu.hpp"

namespace qvm::machine {
namespace {

constexpr uint64_t kAcpiBase = arch::x86::kBoard.acpi_base,
                   kAcpiLimit = arch::x86::kBoard.acpi_limit;
constexpr uint64_t kMpTableAddr = arch::x86::kBoard.mptable_addr;
constexpr uint64_t kMaxImage = 1ull << 30;

Result<std::vector<uint8_t>> read_file(const std::string& path, const config::SrcLoc& loc) {
  // O_NONBLOCK: a FIFO or device must not block the open; only regular files are read.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return Error::from_errno(loc.str() + ": cannot load '" + path + "'", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(loc.str() + ": '" + path + "' is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxImage)
    return make_error(loc.str() + ": '" + path + "' is over 1 GiB");
  std::vector<uint8_t> buf(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::read(fd.get(), buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Error::from_errno(loc.str() + ": cannot read '" + path + "'", n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
  return buf;
}

}  // namespace

Status MachineImpl::build_boot() {
  namespace x86 = arch::x86;
  x86::MachineLayout layout;
  layout.num_cpus = static_cast<uint32_t>(cfg_.cpu_count());
  for (const auto& r : mem_.regions()) {
    if (r.readonly) {
      layout.reserved.push_back({r.gpa, r.size});
    } else {
      layout.ram.push_back({r.gpa, r.size});
    }
  }
  for (const auto& r : cfg_.reserves)
    if (r.kind == config::ReserveConfig::Kind::kLoc && r.loc.space == config::AddrSpace::kMem)
      layout.reserved.push_back({r.loc.addr, r.length});
  layout.has_8259 = has_8259_;
  layout.hpet_addr = hpet_addr_;
  if (auto lf = cfg_.var("legacy-free")) {
    auto b = config::parse_bool(*lf);
    layout.legacy_free = b && *b;
  }
  layout.has_pit = has_pit_;
  // The in-kernel PIT raises GSI 0; with KVM's default routing that is IOAPIC pin 0, so IRQ0 needs
  // no override (configured as `timer8254 intr myioapic:0`).
  layout.irq_overrides = x86::standard_irq_overrides(has_pit_ && pit_pin_ == 2, layout.sci_gsi);
  for (const auto& d : acpi_devices_) {
    x86::IsaDevice isa;
    isa.hid = d.hid;
    isa.io_base = d.io_base;
    isa.io_len = d.io_len;
    isa.irq = d.irq;
    layout.isa_devices.push_back(isa);
  }

  if (pci_) layout.pci = x86::PciHostInfo{};
  for (const auto& d : virtio_mmio_) layout.virtio_mmio.push_back({d.base, d.size, d.gsi});
  for (const auto& d : acpi_mmio_devices_)
    layout.compatible_mmio.push_back({d.compatible, d.base, d.size, d.gsi});
  // Extra ACPI tables (`acpi load`), then the generated ones.
  std::vector<std::vector<uint8_t>> extra;
  for (const auto& l : cfg_.loads)
    if (l.type == config::BlobType::kAcpi) extra.push_back(QVM_TRY(read_file(l.path, l.loc)));
  uint64_t rsdp = 0;
  if (mem_.contains(kAcpiBase, kAcpiLimit - kAcpiBase)) {
    auto acpi = QVM_TRY(x86::build_acpi(layout, extra, mem_, kAcpiBase, kAcpiLimit));
    rsdp = acpi.rsdp_addr;
    std::string sigs;
    for (const auto& t : acpi.tables) sigs += " " + t.signature;
    boot_lines_.push_back(strprintf("acpi: RSDP at 0x%llx; tables:%s",
                                    static_cast<unsigned long long>(rsdp), sigs.c_str()));
    if (auto dir = cfg_.var("acpi-dump-dir")) {
      // A directory of ours (or root's), files created in it without following links (a
      // neighbour cannot point qvm's writes elsewhere: base/safe_open.hpp).
      UniqueFd dfd = QVM_TRY(open_output_dir(*dir));
      for (const auto& t : acpi.tables) {
        const std::string name = t.signature + ".dat";
        UniqueFd f = QVM_TRY(open_in_dir(dfd.get(), name));
        QVM_TRY(write_all(f.get(), t.bytes.data(), t.bytes.size(), "'" + *dir + "/" + name + "'"));
      }
      boot_lines_.push_back("acpi: tables written to " + *dir);
    }
    if (mem_.contains(kMpTableAddr, 0x1000))
      QVM_TRY(x86::build_mptable(layout, mem_, kMpTableAddr));
  } else {
    log_warn(
        "no guest memory at 0x%llx-0x%llx: the guest gets no ACPI or MP tables (add 'rom "
        "0xc0000,0x40000')",
        static_cast<unsigned long long>(kAcpiBase),
        static_cast<unsigned long long>(kAcpiLimit - 1));
  }
  auto map = x86::e820(layout);

  // Images: the first auto-typed `load` is the kernel; `initrd`, `module` and `data` blobs join
  // it. A multiboot kernel takes `initrd` and `module` blobs, in order, as its boot modules.
  std::optional<std::vector<uint8_t>> kernel, initrd;
  std::optional<uint64_t> kernel_addr;
  struct Module {
    std::vector<uint8_t> bytes;
    std::string string;
    const config::LoadConfig* from;
  };
  std::vector<Module> modules;
  for (const auto& l : cfg_.loads) {
    switch (l.type) {
      case config::BlobType::kAuto:
        if (kernel) {
          auto blob = QVM_TRY(read_file(l.path, l.loc));
          if (!l.addr)
            return make_error(l.loc.str() + ": a second image needs an address: load ADDR,FILE");
          if (auto s = mem_.write(*l.addr, blob); !s)
            return make_error(l.loc.str() + ": " + s.error().message);
        } else {
          kernel = QVM_TRY(read_file(l.path, l.loc));
          kernel_addr = l.addr;
        }
        break;
      case config::BlobType::kInitrd:
        initrd = QVM_TRY(read_file(l.path, l.loc));
        modules.push_back({*initrd, l.path, &l});
        break;
      case config::BlobType::kModule:
        modules.push_back({QVM_TRY(read_file(l.path, l.loc)), l.module_string, &l});
        break;
      case config::BlobType::kData: {
        auto blob = QVM_TRY(read_file(l.path, l.loc));
        if (auto s = mem_.write(*l.addr, blob); !s)
          return make_error(l.loc.str() + ": " + s.error().message);
        break;
      }
      case config::BlobType::kAcpi:
        break;
      case config::BlobType::kFdt:
        log_warn("%s: fdt blobs are for ARM guests; ignored on x86-64", l.loc.str().c_str());
        break;
    }
  }
  if (!kernel)
    for (const auto& m : modules)
      if (m.from->type == config::BlobType::kModule)
        return make_error(m.from->loc.str() +
                          ": boot modules need a multiboot kernel ('load FILE'); there is none");
  std::optional<x86::BootPlan> plan;
  if (kernel) {
    const config::LoadConfig& kload = *std::find_if(
        cfg_.loads.begin(), cfg_.loads.end(),
        [](const config::LoadConfig& l) { return l.type == config::BlobType::kAuto; });
    const bool multiboot = x86::detect_image(*kernel) == x86::ImageKind::kMultiboot;
    std::string cmdline = cfg_.cmdline.value_or("");
    std::vector<x86::BootModule> mods;
    if (multiboot) {
      // GRUB legacy's convention, which multiboot kernels expect (Xen strips the first word):
      // the command line starts with the image's name.
      cmdline = cmdline.empty() ? kload.path : kload.path + " " + cmdline;
      for (const auto& m : modules) mods.push_back({m.bytes, m.string});
    } else {
      for (const auto& m : modules)
        if (m.from->type == config::BlobType::kModule)
          return make_error(m.from->loc.str() + ": boot modules need a multiboot kernel; '" +
                            kload.path + "' has no multiboot header");
      modules.clear();
    }
    x86::LoadInput in;
    in.image = *kernel;
    in.load_addr = kernel_addr;
    if (initrd && !multiboot) in.initrd = std::span<const uint8_t>(*initrd);
    in.cmdline = cmdline;
    in.rsdp_addr = rsdp;
    in.e820 = map;
    in.modules = mods;
    auto p = x86::load_kernel(in, mem_);
    if (!p) return make_error(kload.loc.str() + ": " + p.error().message);
    plan = *p;
    // No firmware runs before a kernel qvm loads: leave what a PC BIOS would in its data area.
    QVM_TRY(x86::build_bda(layout, mem_));
    boot_lines_.push_back(strprintf("boot: %s entry 0x%llx", x86::boot_mode_name(plan->mode),
                                    static_cast<unsigned long long>(plan->entry)));
    for (size_t i = 0; i < mods.size(); i++)
      boot_lines_.push_back(strprintf("boot: multiboot module %zu: %zu bytes, '%s'", i,
                                      mods[i].bytes.size(), modules[i].string.c_str()));
  } else if (mem_.contains(0xfffffff0, 16)) {
    boot_lines_.push_back("boot: firmware at the reset vector 0xfffffff0 (real mode)");
  } else {
    boot_lines_.push_back("boot: nothing loaded (no 'load' entry)");
  }
  if (auto path = cfg_.var("fdt-dump-file"))
    QVM_TRY(write_fdt(*path, plan ? plan->initrd_addr : 0, plan ? plan->initrd_size : 0));
  if (opts_.dryrun) return {};
  // Without a kernel, firmware in guest memory at the reset vector (0xfffffff0, e.g. SeaBIOS
  // loaded with `data load 0xfffe0000,bios.bin` into a `rom`) runs from the architectural reset
  // state KVM gives a new vCPU (CS f000:fff0, base 0xffff0000, real mode).
  bool firmware = !plan && mem_.contains(0xfffffff0, 16);
  if (!plan && !firmware)
    return make_error(
        "nothing to run: add 'load FILE' (a kernel, ELF or raw image), or firmware at the reset "
        "vector");
  QVM_TRY(create_vcpus());
  if (firmware) return {};
  return setup_boot_vcpu(*vcpus_[0], *plan);
}

// spec §4 `set fdt-dump-file`: the device tree of the built VM (memory, CPUs, IOAPIC, devices).
// x86 guests boot from ACPI; the FDT documents the same machine for inspection and tools.
Status MachineImpl::write_fdt(const std::string& path, uint64_t initrd_addr, uint64_t initrd_size) {
  fdt::FdtMachine m;
  m.num_cpus = static_cast<uint32_t>(cfg_.cpu_count());
  for (const auto& r : mem_.regions())
    if (!r.readonly) m.memory.push_back({r.gpa, r.size});
  m.bootargs = cfg_.cmdline.value_or("");
  m.intc.reg = {arch::x86::kBoard.ioapic_addr, 0x1000};
  if (initrd_size) m.initrd = fdt::FdtRange{initrd_addr, initrd_size};
  m.devices = fdt_devices_;
  m.stdout_path = fdt_stdout_;
  auto blob = QVM_TRY(fdt::build_fdt(m));
  // Not through another user's symlink; a FIFO does not hang qvm (base/safe_open.hpp).
  UniqueFd f = QVM_TRY(open_no_foreign_symlink(path, O_WRONLY | O_CREAT | O_NONBLOCK));
  struct stat st {};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error("fdt-dump-file '" + path + "' is not a regular file");
  if (::ftruncate(f.get(), 0) != 0)
    return Error::from_errno("cannot truncate '" + path + "'", errno);
  QVM_TRY(write_all(f.get(), blob.data(), blob.size(), "the FDT to '" + path + "'"));
  std::printf("FDT saved to '%s'\n", path.c_str());  // the QNX qvm's message (release notes)
  std::fflush(stdout);
  return {};
}

Status MachineImpl::create_vcpus() {
  auto cpuid = QVM_TRY(kvm_->supported_cpuid());
  for (size_t i = 0; i < cfg_.cpu_count(); ++i) {
    auto v = QVM_TRY(kvm::Vcpu::create(*kvm_, *vm_, static_cast<uint32_t>(i)));
    QVM_TRY(v.set_cpuid(
        cpuid_for_vcpu(cpuid, static_cast<uint32_t>(i), static_cast<uint32_t>(cfg_.cpu_count()))));
    vcpus_.push_back(std::make_unique<kvm::Vcpu>(std::move(v)));
    stats_.push_back(std::make_unique<VcpuStats>());
  }
  gate_ = std::make_unique<VcpuGate>(vcpus_.size(), [this](size_t i) { kick_vcpu(i); });
  return {};
}

}  // namespace qvm::machine
