/* qvm vdev API: the guest's address space (docs/vdev-api.md; spec §9.7). */
#ifndef QVM_GASP_H
#define QVM_GASP_H

#include <stddef.h>
#include <stdint.h>

#include <qvm/vdev-core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* gasp_map_vdma flags. */
enum { GMF_READ = 0x1, GMF_WRITE = 0x2 };

/* A host pointer to len bytes of guest RAM at gpa, for device-style DMA, or NULL with errno
 * (EFAULT: not wholly inside one RAM region; EACCES: GMF_WRITE on ROM). Valid until the VM ends.
 * The guest may change the bytes at any time: copy before checking. */
void* gasp_map_vdma(vdev_t* vdp, uint64_t gpa, size_t len, unsigned flags);

/* Region flags for gasp_region_set_soft (spec §9.6). qvm's regions trap reads and writes. */
enum gasp_region_flags {
  GRF_NONE = 0x0,    /* delete the region */
  GRF_VIRT_RD = 0x1, /* reads call vread */
  GRF_VIRT_WR = 0x2, /* writes call vwrite */
};

/* Adds (flags GRF_VIRT_RD | GRF_VIRT_WR) or deletes (GRF_NONE) a trapped region of the vdev at
 * run time, e.g. a window the guest moves: accesses call vread/vwrite with `cookie` and vopnd as
 * for the vdev's own registers. blk: QST_MEMORY or QST_X86_IO, location and length (a memory
 * region must not overlap RAM, ROM, `reserve` or any device). From inside vread/vwrite the
 * change takes effect once that access returns. Returns 0 or -1/errno (EINVAL bad block or
 * flags, EBUSY overlap, ENOENT nothing of this vdev to delete there, ENOSPC more than 16). */
int gasp_region_set_soft(vdev_t* vdp, const struct qvm_state_block* blk, unsigned flags,
                         unsigned cookie);

/* Serializes a vdev's changes of the guest address space with other vdevs' (one VM per qvm
 * process: gsp may be NULL). Recursive. */
void gasp_lock(struct guest_system* gsp);
void gasp_unlock(struct guest_system* gsp);

#ifdef __cplusplus
}
#endif

#endif
