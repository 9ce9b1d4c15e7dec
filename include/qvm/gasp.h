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

#ifdef __cplusplus
}
#endif

#endif
