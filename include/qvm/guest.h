/* qvm vdev API: what a vdev asks of the guest and the VM (docs/vdev-api.md; spec §8.3, §9.6,
 * §9.8-§9.10). Every function may be called from any thread once the vdev exists. */
#ifndef QVM_GUEST_H
#define QVM_GUEST_H

#include <stdint.h>

#include <qvm/vdev-core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes of qvm (spec §8.3): guest_terminate() takes GTC_* or a custom code 32-63. */
enum guest_terminate_cause {
  GTC_GUEST_STOP = 0,
  GTC_WATCHDOG = 4,
  GTC_UNSUPPORTED = 5,
  GTC_VDEV_ERROR = 6,
  GTC_OTHER = 7,
  GTC_CUSTOM_FIRST = 32,
  GTC_CUSTOM_LAST = 63,
};

/* guest_cpu_read/write flags: none defined yet (pass 0). */
#define GXF_NONE 0u

/* Moves the data of a trapped access. In vwrite: guest_cpu_read(gcp, 0, oopnd, 1, &v, sizeof v)
 * fetches the value the guest wrote; in vread: guest_cpu_write(gcp, 0, oopnd, 1, &v, sizeof v)
 * sets the value the guest reads. With gcp NULL the blocks name guest-physical memory (QST_MEMORY):
 * the bytes are copied from or to guest RAM. Returns 0, or -1 with errno (EFAULT outside RAM,
 * EINVAL bad block). */
int guest_cpu_read(struct guest_cpu* gcp, unsigned flags, const struct qvm_state_block* blks,
                   unsigned nblks, void* buf, unsigned buflen);
int guest_cpu_write(struct guest_cpu* gcp, unsigned flags, const struct qvm_state_block* blks,
                    unsigned nblks, const void* buf, unsigned buflen);
/* Maps a guest_cpu_read/write result (errno) to a vread/vwrite result. */
vdev_ref_status_t guest_cpu_to_vrs(int err);

/* Interrupt states for guest_intr_signal (spec §9.8). */
enum guest_intr_state {
  GIS_ON = 1,  /* assert (level) */
  GIS_OFF = 2, /* deassert */
  GIS_ISR = 4, /* one edge: assert and deassert */
};
/* Drives an interrupt: &vdp->v_intr, or one from qvm_parse_intr(). Returns 0 or -1/errno. */
int guest_intr_signal(const struct guest_intr* gip, unsigned state);
/* Sends one MSI (x86: address 0xfeeXXXXX, data) to the guest. Returns 0 or -1/errno. */
int guest_msi_signal(vdev_t* vdp, uint64_t addr, uint32_t data);

/* Timers: created before GUEST_CONFIGURED (OPTIONS_END is the usual place); on expiry the
 * factory's timer(vdp, cookie) runs on qvm's event thread. guest_timer_create returns an id >= 0
 * or -1/errno. guest_timer_notify arms it: first expiry after first_ns (0 disarms), then every
 * period_ns (0: once). At most 16 timers per vdev. */
int guest_timer_create(vdev_t* vdp, unsigned cookie);
int guest_timer_notify(vdev_t* vdp, int timer_id, uint64_t first_ns, uint64_t period_ns);

/* Nanoseconds of the host's monotonic clock (CLOCK_MONOTONIC), as qvm's own devices see time. */
uint64_t guest_clock_ns(vdev_t* vdp);

/* Ends the VM with exit code `cause` (GTC_*, or 32-63); the first request wins. */
void guest_terminate(vdev_t* vdp, int cause);

#ifdef __cplusplus
}
#endif

#endif
