/* vdev regbank: a sample loadable vdev for qvm (docs/vdev-api.md). A bank of 32-bit registers
 * with a one-shot timer that raises a level interrupt:
 *
 *   0x00 ID          read-only: the `id` option (default 0x51564d52, "RMVQ" little-endian)
 *   0x04 SCRATCH     read/write
 *   0x08 TIMER_US    write N: the timer fires once after N microseconds (0 stops it); reads N
 *   0x0c STATUS      bit 0: the timer fired; the interrupt is asserted while it is set; write 1
 *                    to clear it
 *   0x10 COUNT       read-only: how many times the timer fired
 *   0x14 ELAPSED_US  read-only: microseconds from the TIMER_US write to the last expiry
 *   0x18 WINDOW      write a guest-physical address: a 4 KiB read-only window appears there
 *                    whose first register mirrors ID (0 removes it); reads the address
 *
 * 4-byte accesses only (acc_sizes); anything else is a bus error (reads all ones). Placed in
 * memory or port space by `loc`, with an optional `intr`, or without `loc` a PCI function
 * (vendor 0x1c05, device 0x7f01: a sample's id, class 0xff0000) with the registers in its 4 KiB
 * BAR0 and the interrupt on INTA#:
 *   vdev regbank loc 0xd0002000 intr myioapic:7 id 0x1234abcd
 *   vdev regbank
 *
 * Build: cc -shared -fPIC $(pkg-config --cflags qvm-vdev) -o vdev-regbank.so vdev-regbank.c */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <qvm/gasp.h>
#include <qvm/guest.h>
#include <qvm/log.h>
#include <qvm/pci.h>
#include <qvm/utils.h>
#include <qvm/vdev-core.h>

#define REG_ID 0x00
#define REG_SCRATCH 0x04
#define REG_TIMER_US 0x08
#define REG_STATUS 0x0c
#define REG_COUNT 0x10
#define REG_ELAPSED_US 0x14
#define REG_WINDOW 0x18
#define WINDOW_SIZE 0x1000
#define COOKIE_WINDOW 1
#define REGBANK_SIZE 0x20

struct regbank {
  uint32_t id, scratch, timer_us, status, count, elapsed_us;
  uint64_t armed_ns;
  uint32_t window;
  int timer;
};

enum { OPT_ID }; /* option_list order */
static const char* const regbank_options[] = {"id", NULL};

/* The register offset of an access: within the BAR on PCI, else from the vdev's `loc`. */
static uint64_t reg_offset(const vdev_t* vdp, const struct qvm_state_block* vopnd) {
  return vopnd->type == QST_PCI ? vopnd->location : vopnd->location - vdp->v_block.location;
}

static void update_irq(vdev_t* vdp, struct regbank* rb) {
  if (vdp->v_intr.src_id) guest_intr_signal(&vdp->v_intr, (rb->status & 1) ? GIS_ON : GIS_OFF);
}

static int regbank_control(vdev_t* vdp, vdev_ctrl_options_t ctrl, const char* arg) {
  struct regbank* rb = vdp->v_device;
  uint64_t v;
  switch ((int)ctrl) {
    case VDEV_CTRL_OPTIONS_START:
      rb->id = 0x51564d52u;
      rb->timer = -1;
      vdp->v_block.length = REGBANK_SIZE;
      return 0;
    case VDEV_CTRL_FIRST_OPTIDX + OPT_ID:
      if (qvm_parse_num(arg, 0, &v, NULL) != 0 || v > 0xffffffffu) {
        vdev_logf(VDEV_LOG_ERROR, vdp, "id '%s': expected a 32-bit number", arg);
        return EINVAL;
      }
      rb->id = (uint32_t)v;
      return 0;
    case VDEV_CTRL_PCI_BARS: { /* on PCI: name the function, one 4 KiB memory BAR */
      const struct vpci_ids ids = {.vendor = 0x1c05, .device = 0x7f01, .subsystem_vendor = 0x1c05,
                                   .subsystem = 0x7f01, .class_code = 0xff0000};
      if (vpci_set_ids(vdp, &ids) != 0 || vpci_add_bar(vdp, 0, 0x1000, VPCI_BAR_MEM) != 0) return errno;
      return 0;
    }
    case VDEV_CTRL_OPTIONS_END:
      rb->timer = guest_timer_create(vdp, 0);
      return rb->timer < 0 ? errno : 0;
    case VDEV_CTRL_STATUS:
      vdev_logf(VDEV_LOG_INFO, vdp, "scratch 0x%08x status %u count %u elapsed %u us", rb->scratch,
                rb->status, rb->count, rb->elapsed_us);
      return 0;
    default:
      return 0; /* the other stages need nothing here */
  }
}

static vdev_ref_status_t regbank_vread(vdev_t* vdp, unsigned cookie, const struct qvm_state_block* vopnd,
                                       const struct qvm_state_block* oopnd, struct guest_cpu* gcp) {
  struct regbank* rb = vdp->v_device;
  uint32_t v = 0;
  if (cookie == COOKIE_WINDOW) { /* the window: ID at its start, zeros elsewhere */
    if (vopnd->location == rb->window) v = rb->id;
    return guest_cpu_to_vrs(guest_cpu_write(gcp, 0, oopnd, 1, &v, sizeof v) ? errno : 0);
  }
  switch (reg_offset(vdp, vopnd)) {
    case REG_ID: v = rb->id; break;
    case REG_SCRATCH: v = rb->scratch; break;
    case REG_TIMER_US: v = rb->timer_us; break;
    case REG_STATUS: v = rb->status; break;
    case REG_COUNT: v = rb->count; break;
    case REG_ELAPSED_US: v = rb->elapsed_us; break;
    case REG_WINDOW: v = rb->window; break;
    default: break; /* reserved: reads 0 */
  }
  return guest_cpu_to_vrs(guest_cpu_write(gcp, 0, oopnd, 1, &v, sizeof v) ? errno : 0);
}

static vdev_ref_status_t regbank_vwrite(vdev_t* vdp, unsigned cookie, const struct qvm_state_block* vopnd,
                                        const struct qvm_state_block* oopnd, struct guest_cpu* gcp) {
  struct regbank* rb = vdp->v_device;
  uint32_t v;
  if (cookie == COOKIE_WINDOW) return VRS_NORMAL; /* read-only window: writes are ignored */
  if (guest_cpu_read(gcp, 0, oopnd, 1, &v, sizeof v) != 0) return guest_cpu_to_vrs(errno);
  switch (reg_offset(vdp, vopnd)) {
    case REG_SCRATCH: rb->scratch = v; break;
    case REG_TIMER_US:
      rb->timer_us = v;
      rb->armed_ns = guest_clock_ns(vdp);
      guest_timer_notify(vdp, rb->timer, (uint64_t)v * 1000u, 0);
      break;
    case REG_STATUS:
      rb->status &= ~(v & 1u);
      update_irq(vdp, rb);
      break;
    case REG_WINDOW: { /* move the window: delete the old region, add the new one */
      struct qvm_state_block blk = {.location = rb->window, .length = WINDOW_SIZE, .type = QST_MEMORY};
      if (rb->window) gasp_region_set_soft(vdp, &blk, GRF_NONE, COOKIE_WINDOW);
      rb->window = 0;
      blk.location = v & ~(uint32_t)(WINDOW_SIZE - 1);
      if (v && gasp_region_set_soft(vdp, &blk, GRF_VIRT_RD | GRF_VIRT_WR, COOKIE_WINDOW) == 0)
        rb->window = (uint32_t)blk.location;
      else if (v)
        vdev_logf(VDEV_LOG_WARN, vdp, "no window at 0x%x: errno %d", v, errno);
      break;
    }
    default: break; /* read-only and reserved registers ignore writes */
  }
  return VRS_NORMAL;
}

static void regbank_timer(vdev_t* vdp, unsigned cookie) {
  (void)cookie;
  struct regbank* rb = vdp->v_device;
  rb->count++;
  rb->elapsed_us = (uint32_t)((guest_clock_ns(vdp) - rb->armed_ns) / 1000u);
  rb->status |= 1;
  update_irq(vdp, rb);
}

static struct vdev_factory regbank_factory = {
    .control = regbank_control,
    .vread = regbank_vread,
    .vwrite = regbank_vwrite,
    .timer = regbank_timer,
    .option_list = regbank_options,
    .name = "regbank",
    /* qvm holds v_mtx around every callback: the vCPU threads and the timer never race */
    .factory_flags = VFF_VDEV_MEM | VFF_VDEV_X86_IO | VFF_VDEV_PCI | VFF_MUTEX,
    .acc_sizes = 1u << 4,
    .extra_space = sizeof(struct regbank),
};

__attribute__((constructor)) static void regbank_register(void) {
  vdev_register_factory(&regbank_factory, QVM_VDEV_ABI);
}
