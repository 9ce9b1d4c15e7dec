/* qvm vdev API: basic types shared by the other headers (docs/vdev-api.md; spec §9.4, §9.6). */
#ifndef QVM_TYPES_H
#define QVM_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where a state block lives (qvm_state_block.type). */
enum qvm_state_types {
  QST_MEMORY = 0,  /* guest-physical memory (an MMIO register range) */
  QST_X86_IO = 1,  /* x86 I/O port space */
  QST_PCI = 2,     /* a PCI function's BAR: location = offset in the BAR, cookie = BAR index */
  QST_DATA = 3,    /* the CPU side of a trapped access: the value being read or written */
  QST_DEFAULT = 0xffff, /* not chosen yet: qvm picks from loc / the factory flags */
};

/* "No location yet" (v_block.location before `loc` or automatic placement). */
#define QSL_NO_LOCATION UINT64_MAX

/* A range of a guest address space, or the data side of an access. */
struct qvm_state_block {
  uint64_t location; /* address, port, or offset in a BAR */
  uint32_t length;   /* bytes */
  uint16_t type;     /* enum qvm_state_types */
  uint16_t flags;    /* reserved: 0 */
};

#ifdef __cplusplus
}
#endif

#endif
