// vdev shmem (spec §6.5, §11; docs/shmem.md): on PCI (default) a function 1C05:0001 whose BAR0
// is the factory page and whose INTA# is the notification interrupt; with `loc` a memory-mapped
// factory page and the `intr` line, described to the guest as a "qvm,guest_shm" device. `create`
// keeps named regions in existence while this qvm runs; `allow`/`deny` decide which names the
// guest may use.
#include <algorithm>
#include <map>
#include <mutex>

#include "base/log.hpp"
#include "config/values.hpp"
#include "pci/config_space.hpp"
#include "pci/msix.hpp"
#include "pci/pci_root.hpp"
#include "shm/region.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/shmem/device.hpp"

namespace qvm::vdev {
namespace {

using shmem::NamePolicy;
using shmem::NameRule;
using shmem::ShmemDevice;

// BAR0: the factory page. BAR1: MSI-X, one vector (a qvm addition: the QNX drivers use INTA#;
// a driver that enables MSI-X gets its notifications as messages, injected by KVM at once).
class ShmemFunction final : public pci::PciFunction {
 public:
  static constexpr uint8_t kMsixBar = 1;
  ShmemFunction() : cfg_(0x1c05, 0x0001, 0x050000 /* memory controller, RAM */) {
    cfg_.set_subsystem(0x1c05, 0x0001);
    cfg_.set_interrupt_pin(1);
    cfg_.add_bar(pci::BarInfo{.index = 0, .size = shmem::FactoryPage::kSize});
    cfg_.add_bar(pci::BarInfo{.index = kMsixBar, .size = 4096});
    msix_ = std::make_shared<pci::Msix>(cfg_, pci::Msix::packed(1, kMsixBar), nullptr);
  }
  pci::ConfigSpace& config() override { return cfg_; }
  void config_written(uint16_t offset, unsigned size) override {
    msix_->config_written(offset, size);
  }
  const std::shared_ptr<pci::Msix>& msix() const { return msix_; }

 private:
  pci::ConfigSpace cfg_;
  std::shared_ptr<pci::Msix> msix_;
};

struct Create {
  std::string name;
  uint32_t pages;
  config::SrcLoc loc;
};

Result<std::vector<Create>> creates(const config::VdevConfig& v) {
  std::vector<Create> out;
  auto it = v.options.find("create");
  if (it == v.options.end()) return out;
  for (const config::OptionValue& o : it->second) {
    auto parts = config::split(o.text, ',');
    auto size = config::parse_number(parts.size() == 2 ? parts[1] : "");
    if (parts.size() != 2 || !size) return make_error(o.loc.str() + ": create NAME,SIZE");
    const uint64_t pages = (*size + shm::kPage - 1) / shm::kPage;
    if (pages == 0 || pages > shm::kMaxPages)
      return make_error(strprintf("%s: create: a region has 4 KiB to 4 GiB - 8 KiB (%u pages)",
                                  o.loc.str().c_str(), shm::kMaxPages));
    out.push_back(Create{std::string(parts[0]), static_cast<uint32_t>(pages), o.loc});
  }
  return out;
}

NamePolicy policy(const config::VdevConfig& v) {
  struct Ordered {
    NameRule rule;
    config::SrcLoc loc;
  };
  std::vector<Ordered> all;
  for (const char* kind : {"allow", "deny"}) {
    auto it = v.options.find(kind);
    if (it == v.options.end()) continue;
    for (const config::OptionValue& o : it->second)
      all.push_back(Ordered{NameRule{kind[0] == 'a', o.text}, o.loc});
  }
  std::stable_sort(all.begin(), all.end(), [](const Ordered& a, const Ordered& b) {
    const std::string fa = a.loc.file ? *a.loc.file : "", fb = b.loc.file ? *b.loc.file : "";
    return std::tie(fa, a.loc.line, a.loc.col) < std::tie(fb, b.loc.line, b.loc.col);
  });
  std::vector<NameRule> rules;
  for (auto& o : all) rules.push_back(std::move(o.rule));
  return NamePolicy(std::move(rules));
}

// The VM's windows: reserved, with their control pages, by its first shmem vdev. Keyed by the
// context (one per VM); a context that is gone has let its windows go.
Result<std::shared_ptr<shmem::Windows>> vm_windows(VdevContext& ctx) {
  static std::mutex mu;
  static std::map<VdevContext*, std::weak_ptr<shmem::Windows>> all;
  std::lock_guard lk(mu);
  std::erase_if(all, [](const auto& e) { return e.second.expired(); });
  if (auto it = all.find(&ctx); it != all.end()) return it->second.lock();
  const uint64_t base = QVM_TRY(
      ctx.reserve_window(shmem::kWindows * shmem::kWindowStride, shmem::kWindowStride, "shmem"));
  auto w = std::make_shared<shmem::Windows>(base);
  for (uint32_t k = 0; k < shmem::kWindows; ++k)
    QVM_TRY(ctx.add_mmio(w->control(k), shm::kPage, w->control_page(k),
                         strprintf("shmem window %u", k)));
  ctx.keep(w);
  all[&ctx] = w;
  return w;
}

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  const std::vector<Create> pre = QVM_TRY(creates(v));
  NamePolicy names = policy(v);
  for (const Create& c : pre)
    if (!names.permits(c.name))
      log_warn("%s: create %s: this vdev's allow/deny keeps its own guest from that region",
               c.loc.str().c_str(), c.name.c_str());
  const std::shared_ptr<shmem::Windows> windows = QVM_TRY(vm_windows(ctx));
  const uint64_t window = windows->base();
  const std::string dir = shm::default_dir();
  const bool on_pci = v.on_pci();

  std::shared_ptr<ShmemDevice> d;
  std::string where;
  if (on_pci) {
    if (!v.intr.empty()) return make_error("on PCI its interrupt is INTA#: remove 'intr'");
    auto fn = std::make_shared<ShmemFunction>();
    // The device needs the INTA# GSI for its `vector` register; the BAR's device needs the
    // device: one indirection resolves the order.
    auto holder = std::make_shared<std::shared_ptr<ShmemDevice>>();
    struct Forward final : bus::BusDevice {
      std::shared_ptr<std::shared_ptr<ShmemDevice>> d;
      std::shared_ptr<bus::BusDevice> regs;
      void read(uint64_t o, std::span<uint8_t> b) override {
        if (regs) return regs->read(o, b);
        for (auto& x : b) x = 0xff;
      }
      void write(uint64_t o, std::span<const uint8_t> b) override {
        if (regs) regs->write(o, b);
      }
    };
    auto fwd = std::make_shared<Forward>();
    fwd->d = holder;
    PciFunctionBuild pb;
    pb.function = fn;
    pb.bar_device = [fwd, fn](uint8_t index) -> std::shared_ptr<bus::BusDevice> {
      if (index == ShmemFunction::kMsixBar) return fn->msix();
      return fwd;
    };
    const PciPlacement at = QVM_TRY(ctx.add_pci(v, std::move(pb)));
    d = std::make_shared<ShmemDevice>(ctx, dir, windows, at.intx_gsi, std::move(names));
    *holder = d;
    fwd->regs = d->factory_registers();
    ctx.keep(fn);
    ctx.keep(fwd);
    where = at.text + strprintf("  INTA# gsi %u", at.intx_gsi);
    if (!ctx.dryrun()) {
      QVM_TRY(d->start(at.intx_gsi));
      d->use_msix(fn->msix().get());
    }
  } else {
    if (!v.location || v.location->space != config::AddrSpace::kMem)
      return make_error("outside PCI it needs 'loc ADDRESS' (the factory page) and 'intr'");
    const uint64_t base = v.location->addr;
    if (base % shm::kPage) return make_error(v.location_loc.str() + ": loc must be 4 KiB aligned");
    const uint32_t gsi = QVM_TRY(ctx.gsi(v, std::nullopt));
    d = std::make_shared<ShmemDevice>(ctx, dir, windows, gsi, std::move(names));
    QVM_TRY(ctx.add_mmio(base, shmem::FactoryPage::kSize, d->factory_registers(), "shmem"));
    ctx.add_fdt_device(fdt::FdtDevice{.node_name = "shmem",
                                      .compatible = "qvm,guest_shm",
                                      .reg = {base, shmem::FactoryPage::kSize},
                                      .interrupts = {gsi},
                                      .clock_frequency = std::nullopt},
                       false);
    ctx.add_acpi_mmio_device(
        AcpiMmioDevice{.compatible = "qvm,guest_shm",
                       .base = base,
                       .size = static_cast<uint32_t>(shmem::FactoryPage::kSize),
                       .gsi = gsi});
    where = strprintf("mem 0x%llx-0x%llx  gsi %u", static_cast<unsigned long long>(base),
                      static_cast<unsigned long long>(base + shmem::FactoryPage::kSize - 1), gsi);
    if (!ctx.dryrun()) QVM_TRY(d->start(gsi));
  }
  // `create`: the regions exist from now until qvm exits (nothing is created in dryrun).
  std::vector<std::string> made;
  for (const Create& c : pre) {
    made.push_back(strprintf("%s(%u pages)", c.name.c_str(), c.pages));
    if (ctx.dryrun()) continue;
    auto h = shm::Holder::create(dir, c.name, c.pages);
    if (!h) return make_error(c.loc.str() + ": create " + c.name + ": " + h.error().message);
    if (h->get()->pages() != c.pages)
      log_warn("%s: create %s: the region exists already with %u pages, not %u",
               c.loc.str().c_str(), c.name.c_str(), h->get()->pages(), c.pages);
    ctx.keep(std::shared_ptr<shm::Holder>(std::move(*h)));
  }
  ctx.keep(d);
  std::string line = strprintf("shmem       %s  regions at 0x%llx + k * 4 GiB (%s)", where.c_str(),
                               static_cast<unsigned long long>(window), dir.c_str());
  for (const auto& m : made) line += "  create " + m;
  ShmemDevice* raw = d.get();
  ctx.describe(std::move(line), [raw] { return raw->status_lines(); });
  return {};
}

}  // namespace

constinit const VdevFactory kShmemFactory{"shmem", create};

}  // namespace qvm::vdev
