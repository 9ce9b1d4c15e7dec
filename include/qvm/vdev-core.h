/* qvm vdev API: factories, instances and their lifecycle (docs/vdev-api.md; spec §9.1-§9.6).
 *
 * A vdev is a shared object vdev-TYPE.so. An ELF constructor in it registers one or more factories
 * with vdev_register_factory(); qvm creates one instance (vdev_t) per `vdev TYPE` entry and drives
 * it through control() with the codes below. Plain C: no qvm internals appear here. */
#ifndef QVM_VDEV_CORE_H
#define QVM_VDEV_CORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <qvm/abi.h>
#include <qvm/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vdev_s vdev_t;
struct guest_cpu;    /* opaque: the vCPU (or none) behind a trapped access */
struct guest_system; /* opaque: the VM */

/* control() codes, in lifecycle order (spec §9.5). Options: VDEV_CTRL_FIRST_OPTIDX + i for
 * option_list[i], arg = the option's argument. */
typedef enum {
  VDEV_CTRL_OPTIONS_START = 0,    /* before options: set defaults (v_block.type, ...) */
  VDEV_CTRL_OPTIONS_END = 1,      /* after options: validate, allocate; errno stops the VM */
  VDEV_CTRL_GUEST_CONFIGURED = 2, /* every vdev built; from here callbacks may run concurrently */
  VDEV_CTRL_TERMINATE = 3,        /* the VM ends: stop threads, free */
  VDEV_CTRL_STATUS = 4,           /* SIGUSR1 status report: write lines with vdev_logf */
  VDEV_CTRL_GEN_ACPI = 5,         /* firmware tables are being built (arg: NULL) */
  VDEV_CTRL_GEN_FDT = 6,          /* the FDT is being built (arg: NULL) */
  VDEV_CTRL_BUTTON = 7,           /* power button (SIGTERM/SIGINT/SIGHUP) */
  VDEV_CTRL_ASSIGN = 8,           /* location and interrupt assigned (v_block, v_intr final) */
  VDEV_CTRL_PCI_BARS = 9,         /* reserved: PCI vdevs are not loadable yet */
  VDEV_CTRL_GUEST_STARTING = 10,  /* the vCPUs are about to run */
  VDEV_CTRL_FIRST_OPTIDX = 16,
} vdev_ctrl_options_t;

/* What a trapped access did (vread/vwrite return). */
typedef enum {
  VRS_NORMAL = 0,      /* emulated: the instruction completes */
  VRS_NO_ADVANCE = 1,  /* treated as VRS_NORMAL on KVM (KVM completes the instruction) */
  VRS_ABORT = 2,       /* end the VM (exit code 6, vdev error) */
  VRS_BUS_ERROR = 3,   /* the access fails: reads return all ones, writes are dropped */
  VRS_CONTINUE = 4,    /* not handled here: as VRS_BUS_ERROR */
  VRS_TERMINATE = 5,   /* end the VM (exit code 6) */
  VRS_ERRNO = 0x100,   /* VRS_ERRNO + errno: as VRS_BUS_ERROR, the errno is logged */
} vdev_ref_status_t;

/* Factory flags (spec §9.3). */
enum {
  VFF_NONE = 0x0,
  VFF_RESERVED = 0x1,
  VFF_INTR_NO = 0x2,       /* no interrupt: `intr` refused */
  VFF_INTR_REQ = 0x4,      /* `intr` required */
  VFF_INTR_NONPCI = 0x8,   /* `intr` required unless on PCI */
  VFF_LOC_NO = 0x10,       /* no registers: `loc` refused */
  VFF_VDEV_MEM = 0x20,     /* may be placed in guest-physical memory (loc mem:) */
  VFF_VDEV_X86_IO = 0x40,  /* may be placed in x86 port space (loc io:) */
  VFF_VDEV_PCI = 0x80,     /* may be a PCI function (refused by qvm for now) */
  VFF_MUTEX = 0x100,       /* qvm initializes v_mtx and holds it around every callback */
  VFF_MUTEX_RECURSIVE = 0x200, /* with VFF_MUTEX: v_mtx is recursive */
  VFF_RC = 0x400,          /* accepted, no effect */
  VFF_MANUAL_REGION = 0x800, /* refused: qvm places every region */
};

/* An interrupt a vdev raises: src_id is qvm's handle, param the GSI (x86) it drives. */
struct guest_intr {
  vdev_t* pic;     /* NULL: qvm's interrupt controllers are in the kernel (KVM) */
  unsigned param;  /* GSI */
  unsigned src_id; /* qvm's handle for guest_intr_signal() */
};

struct vdev_factory {
  struct vdev_factory* next; /* set by qvm */
  int (*control)(vdev_t* vdp, vdev_ctrl_options_t ctrl, const char* arg);
  vdev_ref_status_t (*vread)(vdev_t* vdp, unsigned cookie, const struct qvm_state_block* vopnd,
                             const struct qvm_state_block* oopnd, struct guest_cpu* gcp);
  vdev_ref_status_t (*vwrite)(vdev_t* vdp, unsigned cookie, const struct qvm_state_block* vopnd,
                              const struct qvm_state_block* oopnd, struct guest_cpu* gcp);
  void (*pulse)(vdev_t* vdp, int8_t code); /* QNX pulses: must be NULL (Linux has none) */
  void (*timer)(vdev_t* vdp, unsigned cookie); /* a guest_timer_create() timer expired */
  const void* pic;            /* interrupt-controller vdevs: must be NULL (KVM's irqchip) */
  const char* const* option_list; /* NULL-terminated option names; each takes one argument */
  const char* name;           /* the vdev type: `vdev NAME` */
  unsigned factory_flags;     /* VFF_* */
  unsigned acc_sizes;         /* bit n: n-byte accesses allowed (others: bus error) */
  unsigned extra_space;       /* bytes of zeroed private state at v_device */
  unsigned safety;            /* accepted, no effect */
};

struct vdev_s {
  void* v_device;                      /* extra_space bytes, zeroed, 16-byte aligned */
  const struct vdev_factory* v_factory;
  struct guest_system* v_gsp;
  struct qvm_state_block v_block;      /* the register range (`loc`) */
  struct guest_intr v_intr;            /* the first `intr` */
  pthread_mutex_t v_mtx;               /* with VFF_MUTEX */
  const char* v_name;                  /* `name`, else the type */
  void* v_qvm;                         /* qvm's own: do not touch */
};

/* Called from the vdev's ELF constructor with QVM_VDEV_ABI. Returns 0, or an errno (EINVAL: bad
 * factory; EEXIST: the type is taken; ENOTSUP: wrong ABI). */
int vdev_register_factory(struct vdev_factory* factory, unsigned abi);

#ifdef __cplusplus
}
#endif

#endif
