// The C functions of include/qvm/*.h (docs/vdev-api.md), exported from the qvm executable to the
// vdevs it loads (src/app: the dynamic list). Every argument comes from third-party code: checked,
// and a bad one fails that call with an errno instead of ending qvm.
#include <qvm/gasp.h>
#include <qvm/guest.h>
#include <qvm/log.h>
#include <qvm/pci.h>
#include <qvm/utils.h>
#include <qvm/vdev-core.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>

#include "base/exit_code.hpp"
#include "config/values.hpp"
#include "vdev/plugin/guest_cpu.hpp"
#include "vdev/plugin/internal.hpp"

using qvm::vdev::plugin::Instance;
using qvm::vdev::plugin::instance_of;

namespace {

int fail(int e) {
  errno = e;
  return -1;
}

// Guest RAM (not ROM, when writing) holding all of [gpa, gpa+len).
bool ram_range(Instance& in, uint64_t gpa, uint64_t len, bool write) {
  for (const auto& r : in.ctx->guest_memory().regions())
    if (gpa >= r.gpa && len <= r.size && gpa - r.gpa <= r.size - len) return !(write && r.readonly);
  return false;
}

// gasp_lock() and run-time region changes (one VM per process).
std::recursive_mutex& gasp_mu() {
  static std::recursive_mutex mu;
  return mu;
}
constexpr size_t kMaxSoftRegions = 16;

}  // namespace

extern "C" {

int vdev_register_factory(struct vdev_factory* factory, unsigned abi) {
  return qvm::vdev::plugin::register_factory(factory, abi);
}

int guest_cpu_read(struct guest_cpu* gcp, unsigned flags, const struct qvm_state_block* blks,
                   unsigned nblks, void* buf, unsigned buflen) {
  if (flags != 0 || !blks || nblks != 1 || (!buf && buflen)) return fail(EINVAL);
  if (gcp) {  // the value a vwrite carries
    if (gcp->is_read || blks->type != QST_DATA) return fail(EINVAL);
    const unsigned n = std::min({buflen, gcp->len, blks->length});
    std::memcpy(buf, gcp->data, n);
    if (buflen > n) std::memset(static_cast<uint8_t*>(buf) + n, 0, buflen - n);
    return 0;
  }
  return fail(EINVAL);  // guest memory needs the vdev: use gasp_map_vdma
}

int guest_cpu_write(struct guest_cpu* gcp, unsigned flags, const struct qvm_state_block* blks,
                    unsigned nblks, const void* buf, unsigned buflen) {
  if (flags != 0 || !blks || nblks != 1 || (!buf && buflen)) return fail(EINVAL);
  if (gcp) {  // the value a vread returns
    if (!gcp->is_read || blks->type != QST_DATA) return fail(EINVAL);
    const unsigned n = std::min({buflen, gcp->len, blks->length});
    std::memcpy(gcp->data, buf, n);
    return 0;
  }
  return fail(EINVAL);
}

vdev_ref_status_t guest_cpu_to_vrs(int err) {
  if (err == 0) return VRS_NORMAL;
  if (err < 0 || err > 0xffff) return VRS_BUS_ERROR;
  return static_cast<vdev_ref_status_t>(VRS_ERRNO + err);
}

int guest_intr_signal(const struct guest_intr* gip, unsigned state) {
  if (!gip) return fail(EINVAL);
  qvm::vdev::IrqLine* line = qvm::vdev::plugin::find_intr(gip->src_id);
  if (!line) return fail(ENOENT);
  switch (state) {
    case GIS_ON:
      line->set_level(true);
      return 0;
    case GIS_OFF:
      line->set_level(false);
      return 0;
    case GIS_ISR:
      line->pulse();
      return 0;
    default:
      return fail(EINVAL);
  }
}

int guest_msi_signal(vdev_t* vdp, uint64_t addr, uint32_t data) {
  Instance* in = instance_of(vdp);
  if (!in) return fail(EINVAL);
  if ((addr & 0xfff00000u) != 0xfee00000u || (addr >> 32) != 0) return fail(EINVAL);
  if (auto s = in->ctx->signal_msi(addr, data); !s)
    return fail(s.error().sys_errno ? s.error().sys_errno : EIO);
  return 0;
}

int guest_timer_create(vdev_t* vdp, unsigned cookie) {
  Instance* in = instance_of(vdp);
  if (!in) return fail(EINVAL);
  if (in->timers.size() >= qvm::vdev::plugin::kMaxTimers) return fail(EAGAIN);
  Instance::TimerSlot slot;
  slot.cookie = cookie;
  if (!in->ctx->dryrun()) {
    auto t = qvm::event::Timer::create(in->ctx->loop(), [in, cookie](uint64_t) {
      const vdev_factory& f = *in->plugin->factory;
      if (!f.timer || in->terminated) return;
      in->lock();
      f.timer(&in->pub, cookie);
      in->unlock();
    });
    if (!t) return fail(t.error().sys_errno ? t.error().sys_errno : EIO);
    slot.timer = std::move(*t);
  }
  in->timers.push_back(std::move(slot));
  return static_cast<int>(in->timers.size() - 1);
}

int guest_timer_notify(vdev_t* vdp, int timer_id, uint64_t first_ns, uint64_t period_ns) {
  Instance* in = instance_of(vdp);
  if (!in || timer_id < 0 || static_cast<size_t>(timer_id) >= in->timers.size())
    return fail(EINVAL);
  auto& t = in->timers[static_cast<size_t>(timer_id)].timer;
  if (!t) return 0;                             // dryrun
  constexpr uint64_t kMax = uint64_t{1} << 62;  // ~146 years: fits timespec and nanoseconds
  if (first_ns > kMax || period_ns > kMax) return fail(EINVAL);
  if (auto s = t->arm(std::chrono::nanoseconds(static_cast<int64_t>(first_ns)),
                      std::chrono::nanoseconds(static_cast<int64_t>(period_ns)));
      !s)
    return fail(EIO);
  return 0;
}

uint64_t guest_clock_ns(vdev_t* vdp) {
  Instance* in = instance_of(vdp);
  if (!in) return 0;
  return static_cast<uint64_t>(in->ctx->clock().monotonic().count());
}

void guest_terminate(vdev_t* vdp, int cause) {
  Instance* in = instance_of(vdp);
  if (!in) return;
  const bool custom = cause >= GTC_CUSTOM_FIRST && cause <= GTC_CUSTOM_LAST;
  const bool known = cause == GTC_GUEST_STOP || cause == GTC_WATCHDOG || cause == GTC_UNSUPPORTED ||
                     cause == GTC_VDEV_ERROR || cause == GTC_OTHER;
  const int code = custom || known ? cause : qvm::kExitVdevError;
  in->ctx->request_stop(
      code, "vdev " + in->name + " ended the VM (guest_terminate " + std::to_string(cause) + ")");
}

void* gasp_map_vdma(vdev_t* vdp, uint64_t gpa, size_t len, unsigned flags) {
  Instance* in = instance_of(vdp);
  if (!in || len == 0 || (flags & ~unsigned{GMF_READ | GMF_WRITE})) {
    errno = EINVAL;
    return nullptr;
  }
  if (!ram_range(*in, gpa, len, false)) {
    errno = EFAULT;
    return nullptr;
  }
  if ((flags & GMF_WRITE) && !ram_range(*in, gpa, len, true)) {
    errno = EACCES;
    return nullptr;
  }
  auto r = in->ctx->guest_memory().host_range(gpa, len);
  if (!r) {
    errno = EFAULT;
    return nullptr;
  }
  return r->data();
}

void vdev_logf(unsigned cls, vdev_t* vdp, const char* fmt, ...) {
  if (!fmt) return;
  Instance* in = vdp ? instance_of(vdp) : nullptr;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  const std::string name = in ? in->name : std::string("vdev");
  if (qvm::vdev::plugin::tl_status_lines) {
    if (qvm::vdev::plugin::tl_status_lines->size() < 64)
      qvm::vdev::plugin::tl_status_lines->push_back(buf);
    return;
  }
  uint64_t supp = 0;
  if (in && !in->log_rl.allow(std::chrono::steady_clock::now(), &supp)) return;
  const auto c = static_cast<qvm::LogClass>(std::min(cls, unsigned{VDEV_LOG_VERBOSE}));
  if (supp)
    qvm::Logger::current().logf(c, "%s: %s (%llu similar suppressed)", name.c_str(), buf,
                                static_cast<unsigned long long>(supp));
  else
    qvm::Logger::current().logf(c, "%s: %s", name.c_str(), buf);
}

int qvm_parse_num(const char* str, unsigned flags, uint64_t* value, const char** end) {
  if (!str || !value || (flags & ~unsigned{QPNF_SIZE_SUFFIX | QPNF_NEGATIVE | QPNF_TRAILING}))
    return fail(EINVAL);
  const char* p = str;
  bool neg = false;
  if (*p == '-' && (flags & QPNF_NEGATIVE)) {
    neg = true;
    ++p;
  }
  unsigned base = 10;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
  } else if (p[0] == '0' && (p[1] == 'd' || p[1] == 'D')) {
    p += 2;
  }
  uint64_t v = 0;
  const char* digits = p;
  for (;; ++p) {
    unsigned d;
    if (*p >= '0' && *p <= '9')
      d = static_cast<unsigned>(*p - '0');
    else if (base == 16 && *p >= 'a' && *p <= 'f')
      d = static_cast<unsigned>(*p - 'a' + 10);
    else if (base == 16 && *p >= 'A' && *p <= 'F')
      d = static_cast<unsigned>(*p - 'A' + 10);
    else
      break;
    if (v > (UINT64_MAX - d) / base) return fail(ERANGE);
    v = v * base + d;
  }
  if (p == digits) return fail(EINVAL);
  if (flags & QPNF_SIZE_SUFFIX) {
    unsigned shift = 0;
    switch (*p) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      default:
        break;
    }
    if (shift) {
      if (v > (UINT64_MAX >> shift)) return fail(ERANGE);
      v <<= shift;
      ++p;
    }
  }
  if (*p && !(flags & QPNF_TRAILING)) return fail(EINVAL);
  *value = neg ? ~v + 1 : v;
  if (end) *end = p;
  return 0;
}

void gasp_lock(struct guest_system*) {
  gasp_mu().lock();
}

void gasp_unlock(struct guest_system*) {
  gasp_mu().unlock();
}

int gasp_region_set_soft(vdev_t* vdp, const struct qvm_state_block* blk, unsigned flags,
                         unsigned cookie) {
  Instance* in = instance_of(vdp);
  if (!in || !blk) return fail(EINVAL);
  const bool io = blk->type == QST_X86_IO;
  if (!io && blk->type != QST_MEMORY) return fail(EINVAL);
  const uint64_t base = blk->location, len = blk->length;
  if (flags != GRF_NONE && flags != (GRF_VIRT_RD | GRF_VIRT_WR)) return fail(EINVAL);
  std::lock_guard lk(gasp_mu());
  auto& soft = in->soft_regions;
  auto it = std::find(soft.begin(), soft.end(), std::make_pair(base, io));
  if (flags == GRF_NONE) {
    if (it == soft.end()) return fail(ENOENT);
    soft.erase(it);
    in->ctx->after_access([ctx = in->ctx, io, base] { (void)ctx->remove_io(io, base); });
    return 0;
  }
  if (len == 0 || base + len < base || (io && base + len > 0x10000)) return fail(EINVAL);
  if (soft.size() >= kMaxSoftRegions) return fail(ENOSPC);
  // Overlaps with RAM, `reserve` and the in-kernel pages are known now; with devices only once
  // the bus has the range: checked again (and reported) when the change is made.
  if (!io) {
    for (const auto& r : in->ctx->guest_memory().regions())
      if (base < r.end() && r.gpa < base + len) return fail(EBUSY);
  }
  soft.emplace_back(base, io);
  auto region =
      qvm::vdev::plugin::make_trap_region(in->self, base, io ? QST_X86_IO : QST_MEMORY, cookie);
  in->ctx->after_access([in, io, base, len, region] {
    std::lock_guard relock(gasp_mu());
    auto s = io ? in->ctx->add_pio(base, len, region, in->name)
                : in->ctx->add_mmio(base, len, region, in->name);
    if (!s) {
      auto& list = in->soft_regions;
      list.erase(std::remove(list.begin(), list.end(), std::make_pair(base, io)), list.end());
      uint64_t supp = 0;
      if (in->log_rl.allow(std::chrono::steady_clock::now(), &supp))
        qvm::log_warn("vdev %s: region at 0x%llx not added: %s (%llu similar suppressed)",
                      in->name.c_str(), static_cast<unsigned long long>(base),
                      s.error().message.c_str(), static_cast<unsigned long long>(supp));
    }
  });
  return 0;
}

int vpci_set_ids(vdev_t* vdp, const struct vpci_ids* ids) {
  Instance* in = instance_of(vdp);
  if (!in || !ids) return fail(EINVAL);
  if (!in->in_pci_bars) return fail(EPERM);
  if (ids->vendor == 0xffff || ids->vendor == 0 || ids->class_code > 0xffffff) return fail(EINVAL);
  in->pci_ids = Instance::PciIds{ids->vendor,    ids->device,     ids->subsystem_vendor,
                                 ids->subsystem, ids->class_code, ids->revision};
  return 0;
}

int vpci_add_bar(vdev_t* vdp, unsigned index, uint64_t size, unsigned flags) {
  Instance* in = instance_of(vdp);
  if (!in || index > 5 || (flags & ~unsigned{VPCI_BAR_IO})) return fail(EINVAL);
  if (!in->in_pci_bars) return fail(EPERM);
  const bool io = flags & VPCI_BAR_IO;
  const bool pow2 = size != 0 && (size & (size - 1)) == 0;
  if (!pow2 || (io && (size < 4 || size > 256)) || (!io && (size < 4096 || size > (16u << 20))))
    return fail(EINVAL);
  for (const auto& b : in->pci_bars)
    if (b.index == index) return fail(EEXIST);
  in->pci_bars.push_back({static_cast<uint8_t>(index), size, io});
  return 0;
}

int qvm_parse_intr(vdev_t* vdp, const char* str, struct guest_intr* gip) {
  Instance* in = instance_of(vdp);
  if (!in || !str || !gip) return fail(EINVAL);
  if (!in->cfg) return fail(EPERM);  // only while the vdev's options are read
  auto ref = qvm::config::parse_intr(str);
  if (!ref || ref->apic) return fail(EINVAL);
  qvm::config::VdevConfig tmp = *in->cfg;
  tmp.intr = {*ref};
  auto irq = in->ctx->interrupt(tmp, std::nullopt);
  if (!irq) return fail(ENOENT);
  const unsigned id = qvm::vdev::plugin::add_intr(std::move(irq->line));
  if (id == 0) return fail(ENOSPC);
  in->intr_ids.push_back(id);
  gip->pic = nullptr;
  gip->param = irq->gsi;
  gip->src_id = id;
  return 0;
}

}  // extern "C"
