// One `vdev` entry of a loadable type: the lifecycle of spec §9.5 driven from the device
// interface's create(config, context), and its trapped register range on the bus
// (docs/vdev-api.md "Lifecycle").
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "base/exit_code.hpp"
#include "vdev/plugin/guest_cpu.hpp"
#include "vdev/plugin/internal.hpp"
#include "vdev/plugin/plugin.hpp"

namespace qvm::vdev::plugin {
namespace {

constexpr unsigned kMaxIntrs = 1024;
std::atomic<IrqLine*> g_intrs[kMaxIntrs];
std::atomic<unsigned> g_next_intr{1};  // 0: no interrupt

// The vdev's registers on the port or MMIO bus.
class TrapRegion final : public bus::BusDevice {
 public:
  TrapRegion(std::weak_ptr<Instance> in, uint64_t base, uint16_t space, unsigned cookie)
      : in_(std::move(in)), base_(base), space_(space), cookie_(cookie) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    std::memset(data.data(), 0, data.size());
    if (!access(offset, data.data(), static_cast<uint32_t>(data.size()), true))
      std::memset(data.data(), 0xff, data.size());  // a bus error reads all ones
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    uint8_t buf[8] = {};
    std::memcpy(buf, data.data(), std::min<size_t>(data.size(), sizeof buf));
    (void)access(offset, buf, static_cast<uint32_t>(std::min<size_t>(data.size(), sizeof buf)),
                 false);
  }

 private:
  // False: the access failed (bus error), the VM may be stopping.
  bool access(uint64_t offset, uint8_t* data, uint32_t len, bool is_read) {
    // The machine owns the instance (VdevContext::keep); the bus may outlive it at teardown.
    std::shared_ptr<Instance> held = in_.lock();
    if (!held) return false;
    Instance& in = *held;
    const vdev_factory& f = *in.plugin->factory;
    const unsigned sizes = f.acc_sizes ? f.acc_sizes : ~0u;
    auto cb = is_read ? f.vread : f.vwrite;
    if (len > 8 || !(sizes & (1u << len)) || !cb) {
      warn(in, offset, len, is_read, "access size not allowed by the vdev (acc_sizes)");
      return false;
    }
    const qvm_state_block vop{base_ + offset, len, space_, 0};
    const qvm_state_block oop{0, len, QST_DATA, 0};
    guest_cpu gc{data, len, is_read};
    in.lock();
    const auto r = static_cast<unsigned>(cb(&in.pub, cookie_, &vop, &oop, &gc));
    in.unlock();
    if (r == VRS_NORMAL || r == VRS_NO_ADVANCE) return true;
    if (r == VRS_ABORT || r == VRS_TERMINATE) {
      in.ctx->request_stop(kExitVdevError,
                           strprintf("vdev %s ended the VM (%s at 0x%llx)", in.name.c_str(),
                                     r == VRS_ABORT ? "VRS_ABORT" : "VRS_TERMINATE",
                                     static_cast<unsigned long long>(base_ + offset)));
      return false;
    }
    if (r >= VRS_ERRNO) {
      warn(in, offset, len, is_read, std::strerror(static_cast<int>(r - VRS_ERRNO)));
      return false;
    }
    return false;  // VRS_BUS_ERROR, VRS_CONTINUE, unknown values
  }
  void warn(Instance& in, uint64_t offset, uint32_t len, bool is_read, const char* why) {
    uint64_t supp = 0;
    if (in.log_rl.allow(std::chrono::steady_clock::now(), &supp))
      log_warn("vdev %s: %u-byte %s at 0x%llx failed: %s (%llu similar suppressed)",
               in.name.c_str(), len, is_read ? "read" : "write",
               static_cast<unsigned long long>(base_ + offset), why,
               static_cast<unsigned long long>(supp));
  }
  std::weak_ptr<Instance> in_;
  uint64_t base_;
  uint16_t space_;
  unsigned cookie_;
};

// A loadable vdev's PCI function: the configuration space from vpci_set_ids/vpci_add_bar, INTA#
// (PCI 3.0 §6.2.2: Command.InterruptDisable masks it, Status.Interrupt shows it either way).
class PluginPciFunction final : public pci::PciFunction {
 public:
  PluginPciFunction(const Instance::PciIds& ids, bool intx)
      : cfg_(ids.vendor, ids.device, ids.class_code, ids.revision) {
    cfg_.set_subsystem(ids.subsystem_vendor, ids.subsystem);
    if (intx) cfg_.set_interrupt_pin(1);
  }
  pci::ConfigSpace& config() override { return cfg_; }
  uint32_t config_read(uint16_t offset, unsigned size) override {
    uint32_t v = cfg_.read(offset, size);
    if (offset <= 0x06 && offset + size > 0x06 && asserted_.load())
      v |= 0x08u << (8 * (0x06 - offset));
    return v;
  }
  void config_written(uint16_t offset, unsigned size) override {
    if (offset < 0x06 && offset + size > 0x04) update();
  }
  // guest_intr_signal on v_intr lands here.
  class Line final : public IrqLine {
   public:
    explicit Line(PluginPciFunction& f) : f_(f) {}
    void set_level(bool high) override {
      f_.asserted_.store(high);
      f_.update();
    }

   private:
    PluginPciFunction& f_;
  };
  void connect(std::unique_ptr<IrqLine> intx) { intx_ = std::move(intx); }

 private:
  void update() {
    std::lock_guard lk(mu_);
    const bool level = asserted_.load() && !(cfg_.raw16(0x04) & 0x400);
    if (intx_ && level != driven_) intx_->set_level(level);
    driven_ = level;
  }
  pci::ConfigSpace cfg_;
  std::atomic<bool> asserted_{false};
  std::mutex mu_;
  bool driven_ = false;
  std::unique_ptr<IrqLine> intx_;
};

Status errno_status(const std::string& what, int err) {
  return make_error(what + ": " + std::strerror(err) + " (errno " + std::to_string(err) + ")");
}

void add_start_hook(Instance* raw, VdevContext& ctx) {
  ctx.at_start([raw] {
    if (int e = raw->control(VDEV_CTRL_GUEST_CONFIGURED, nullptr); e != 0) {
      raw->ctx->request_stop(
          kExitVdevError, "vdev " + raw->name + ": GUEST_CONFIGURED failed: " + std::strerror(e));
      return;
    }
    (void)raw->control(VDEV_CTRL_GUEST_STARTING, nullptr);
  });
}

// A vdev that called vio_init: qvm's virtio transports serve it like a built-in virtio device
// (MMIO with `loc`/`intr`, else PCI: spec §5); its line and status report are the transport's.
Status place_virtio(const std::shared_ptr<Instance>& in, const config::VdevConfig& v,
                    VdevContext& ctx) {
  VirtioDeviceBuild b;
  b.device = in->vio;
  b.summary = "  (" + in->plugin->path + ")";
  QVM_TRY(ctx.add_virtio(v, std::move(b)));
  if (int e = in->control(VDEV_CTRL_ASSIGN, nullptr); e != 0)
    return errno_status("ASSIGN failed", e);
  add_start_hook(in.get(), ctx);
  return {};
}

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  const Loaded* p = find_loaded(v.type);
  if (!p) return make_error("vdev type " + v.type + " is not loaded");
  const vdev_factory& f = *p->factory;
  auto in = std::make_shared<Instance>();
  in->self = in;
  in->plugin = p;
  in->ctx = &ctx;
  in->cfg = &v;
  in->name = v.name ? *v.name : v.type;
  if (f.extra_space) {
    const size_t size = (f.extra_space + 15u) & ~size_t{15};
    in->extra = std::aligned_alloc(16, size);
    if (!in->extra) return make_error("out of memory for the vdev's extra_space");
    std::memset(in->extra, 0, size);
  }
  in->pub.v_device = in->extra;
  in->pub.v_factory = &f;
  in->pub.v_gsp = nullptr;
  in->pub.v_block = qvm_state_block{QSL_NO_LOCATION, 0, QST_DEFAULT, 0};
  in->pub.v_name = in->name.c_str();
  in->pub.v_qvm = in.get();
  if (f.factory_flags & VFF_MUTEX) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (f.factory_flags & VFF_MUTEX_RECURSIVE)
      pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&in->pub.v_mtx, &a);
    pthread_mutexattr_destroy(&a);
    in->mutex = true;
  }
  // Keep the instance from here on: whatever fails below, TERMINATE still reaches the vdev when
  // the machine lets go of it.
  ctx.keep(in);

  // `intr` first, so OPTIONS_START already sees v_intr (spec §5: the vdev's first `intr`).
  if (!v.intr.empty()) {
    Interrupt irq = QVM_TRY(ctx.interrupt(v, std::nullopt));
    in->pub.v_intr.param = irq.gsi;
    in->pub.v_intr.src_id = add_intr(std::move(irq.line));
    if (in->pub.v_intr.src_id == 0) return make_error("too many interrupts");
    in->intr_ids.push_back(in->pub.v_intr.src_id);
  }

  if (int e = in->control(VDEV_CTRL_OPTIONS_START, nullptr); e != 0)
    return errno_status("OPTIONS_START failed", e);
  // Options in option_list order, each occurrence in the order written (docs/vdev-api.md).
  for (size_t i = 0; i < p->schema.options.size(); ++i) {
    auto it = v.options.find(p->schema.options[i].name);
    if (it == v.options.end()) continue;
    for (const config::OptionValue& o : it->second) {
      const auto code = static_cast<vdev_ctrl_options_t>(VDEV_CTRL_FIRST_OPTIDX + i);
      if (int e = in->control(code, o.text.c_str()); e != 0)
        return errno_status(o.loc.str() + ": option " + it->first + " '" + o.text + "'", e);
    }
  }
  // Placement: `loc` wins; else what the vdev set in v_block during OPTIONS_START.
  if (v.location) {
    in->pub.v_block.location = v.location->addr;
    in->pub.v_block.type = v.location->space == config::AddrSpace::kIo ? QST_X86_IO : QST_MEMORY;
  }
  in->in_options_end = true;
  const int end = in->control(VDEV_CTRL_OPTIONS_END, nullptr);
  in->in_options_end = false;
  if (end != 0) return errno_status("OPTIONS_END failed", end);
  in->cfg = nullptr;
  if (in->vio) return place_virtio(in, v, ctx);

  std::string where = "no registers";
  const qvm_state_block& b = in->pub.v_block;
  const bool on_pci = v.on_pci();
  if (on_pci) {
    if (!v.intr.empty()) return make_error("on PCI its interrupt is INTA#: remove 'intr'");
    in->in_pci_bars = true;
    const int e = in->control(VDEV_CTRL_PCI_BARS, nullptr);
    in->in_pci_bars = false;
    if (e != 0) return errno_status("PCI_BARS failed", e);
    if (!in->pci_ids)
      return make_error("the vdev named no PCI function (vpci_set_ids) in PCI_BARS");
    const bool intx = !(f.factory_flags & VFF_INTR_NO);
    auto fn = std::make_shared<PluginPciFunction>(*in->pci_ids, intx);
    for (const auto& bar : in->pci_bars)
      fn->config().add_bar(pci::BarInfo{.index = bar.index, .size = bar.size, .io = bar.io});
    PciFunctionBuild pb;
    pb.function = fn;
    std::weak_ptr<Instance> weak = in;
    pb.bar_device = [weak](uint8_t index) -> std::shared_ptr<bus::BusDevice> {
      return std::make_shared<TrapRegion>(weak, 0, QST_PCI, index);
    };
    const PciPlacement at = QVM_TRY(ctx.add_pci(v, std::move(pb)));
    if (intx) {
      fn->connect(ctx.gsi_line(at.intx_gsi));
      in->pub.v_intr.param = at.intx_gsi;
      in->pub.v_intr.src_id = add_intr(std::make_unique<PluginPciFunction::Line>(*fn));
      if (in->pub.v_intr.src_id == 0) return make_error("too many interrupts");
      in->intr_ids.push_back(in->pub.v_intr.src_id);
    }
    ctx.keep(fn);
    in->pub.v_block =
        qvm_state_block{at.bars.empty() ? QSL_NO_LOCATION : at.bars[0].second, 0, QST_PCI, 0};
    where = at.text + (intx ? strprintf("  INTA# gsi %u", at.intx_gsi) : "");
  } else if (!(f.factory_flags & VFF_LOC_NO)) {
    if (b.location == QSL_NO_LOCATION) return make_error("needs 'loc LOCATION'");
    if (b.length == 0)
      return make_error("the vdev set no register length (v_block.length) by OPTIONS_END");
    const bool io =
        b.type == QST_X86_IO || (b.type == QST_DEFAULT && !(f.factory_flags & VFF_VDEV_MEM));
    if (io && !(f.factory_flags & VFF_VDEV_X86_IO))
      return make_error("the vdev cannot be placed in port space");
    if (!io && !(f.factory_flags & VFF_VDEV_MEM))
      return make_error("the vdev cannot be placed in memory space");
    if (io && (b.location > 0xffff || b.location + b.length > 0x10000))
      return make_error(strprintf("ports 0x%llx+0x%x are outside 0-0xffff",
                                  static_cast<unsigned long long>(b.location), b.length));
    in->pub.v_block.type = io ? QST_X86_IO : QST_MEMORY;
    auto region = std::make_shared<TrapRegion>(in, b.location, in->pub.v_block.type, 0);
    if (io)
      QVM_TRY(ctx.add_pio(b.location, b.length, region, v.type));
    else
      QVM_TRY(ctx.add_mmio(b.location, b.length, region, v.type));
    where = strprintf("%s 0x%llx-0x%llx", io ? "io" : "mem",
                      static_cast<unsigned long long>(b.location),
                      static_cast<unsigned long long>(b.location + b.length - 1));
  }
  if (int e = in->control(VDEV_CTRL_ASSIGN, nullptr); e != 0)
    return errno_status("ASSIGN failed", e);

  std::string line = strprintf("%-11s %s", v.type.c_str(), where.c_str());
  if (!v.intr.empty() && !on_pci) line += strprintf("  gsi %u", in->pub.v_intr.param);
  line += "  (" + p->path + ")";
  Instance* raw = in.get();
  ctx.describe(line, [raw] {
    std::vector<std::string> lines;
    tl_status_lines = &lines;
    (void)raw->control(VDEV_CTRL_STATUS, nullptr);
    tl_status_lines = nullptr;
    return lines;
  });
  add_start_hook(raw, ctx);
  return {};
}

constexpr VdevFactory kPluginFactory{"(loadable)", &create};

}  // namespace

thread_local std::vector<std::string>* tl_status_lines = nullptr;

Instance::~Instance() {
  // The machine is letting go of its devices: the VM has stopped.
  if (plugin && !terminated) {
    terminated = true;
    (void)control(VDEV_CTRL_TERMINATE, nullptr);
  }
  timers.clear();
  for (unsigned id : intr_ids) remove_intr(id);
  if (mutex) pthread_mutex_destroy(&pub.v_mtx);
  std::free(extra);
  magic = 0;
}

Instance* instance_of(vdev_t* vdp) {
  if (!vdp || !vdp->v_qvm) return nullptr;
  auto* in = static_cast<Instance*>(vdp->v_qvm);
  return in->magic == kInstanceMagic && &in->pub == vdp ? in : nullptr;
}

unsigned add_intr(std::unique_ptr<IrqLine> line) {
  const unsigned id = g_next_intr.fetch_add(1);
  if (id >= kMaxIntrs) return 0;
  g_intrs[id].store(line.release());
  return id;
}

IrqLine* find_intr(unsigned id) {
  return id > 0 && id < kMaxIntrs ? g_intrs[id].load() : nullptr;
}

void remove_intr(unsigned id) {
  if (id > 0 && id < kMaxIntrs) delete g_intrs[id].exchange(nullptr);
}

std::shared_ptr<bus::BusDevice> make_trap_region(std::weak_ptr<Instance> in, uint64_t base,
                                                 uint16_t space, unsigned cookie) {
  return std::make_shared<TrapRegion>(std::move(in), base, space, cookie);
}

const VdevFactory* factory_for(std::string_view type) {
  return find_loaded(type) ? &kPluginFactory : nullptr;
}

}  // namespace qvm::vdev::plugin
