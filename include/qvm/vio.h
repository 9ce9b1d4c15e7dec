/* qvm vdev API: virtio devices (docs/vdev-api.md "Virtio devices"; spec §9.11).
 *
 * A vdev that calls vio_init() during OPTIONS_END is a virtio device: qvm's own transports serve
 * it (virtio-mmio with `loc` and `intr`, or virtio-pci without `loc`: spec §5), with the same
 * register handling, ioeventfd notifications and interrupts as qvm's built-in virtio devices, and
 * the vdev supplies the device: its id, features, configuration space and what it does with the
 * buffers the driver posts. vread/vwrite are not called for the transport's registers. */
#ifndef QVM_VIO_H
#define QVM_VIO_H

#include <stdint.h>

#include <qvm/vdev-core.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIO_MAX_QUEUES 8
#define VIO_MAX_CONFIG 256
#define VIO_MAX_SEGS 64

struct vio_description {
  uint16_t device_type;        /* virtio 1.2 §5 device id */
  uint16_t num_queues;         /* 1..VIO_MAX_QUEUES */
  uint16_t queue_size[VIO_MAX_QUEUES]; /* maximum size of each: a power of two <= 32768 */
  uint32_t device_config_size; /* bytes of device configuration space, <= VIO_MAX_CONFIG */
  uint64_t device_features;    /* device-specific feature bits (bits 0-23); qvm adds its own */
};

/* The vdev's side. All calls come with the device's transport lock held (and v_mtx with
 * VFF_MUTEX), so they never overlap each other. */
struct vio_ops {
  /* DRIVER_OK: the driver accepted `features`. Non-zero errno: DEVICE_NEEDS_RESET. */
  int (*activate)(vdev_t* vdp, uint64_t features);
  /* The driver reset the device. */
  void (*reset)(vdev_t* vdp);
  /* The driver notified `queue`: take its chains with vio_queue_pop, return them with
   * vio_queue_push. */
  void (*notify)(vdev_t* vdp, unsigned queue);
  /* Device configuration space: `len` bytes at `offset` (checked to fit device_config_size). */
  void (*config_read)(vdev_t* vdp, unsigned offset, void* buf, unsigned len);
  void (*config_write)(vdev_t* vdp, unsigned offset, const void* buf, unsigned len);
};

/* Only during OPTIONS_END. Returns 0 or -1/errno (EINVAL: bad description; EEXIST: twice). */
int vio_init(vdev_t* vdp, const struct vio_description* desc, const struct vio_ops* ops);

/* One buffer of a chain: a host view of guest memory, valid until the chain is pushed back. The
 * guest may change the bytes at any time: copy before checking. */
struct vio_seg {
  void* addr;
  uint32_t len;
  uint32_t device_writes; /* 0: the device reads it; 1: the device writes it */
};
struct vio_chain {
  uint16_t head;
  uint16_t nsegs;
  struct vio_seg seg[VIO_MAX_SEGS]; /* readable segments first, then writable ones */
};

/* Only inside notify() and activate(). The next chain of `queue`: 1 (in *chain), 0 when the ring
 * is empty, -1/errno. A malformed chain never reaches the vdev (qvm returns it with length 0). */
int vio_queue_pop(vdev_t* vdp, unsigned queue, struct vio_chain* chain);
/* Returns chain `head` with `written` bytes; the driver is interrupted if it asked to be, once per
 * notify(). Same calling rule. */
int vio_queue_push(vdev_t* vdp, unsigned queue, uint16_t head, uint32_t written);

#ifdef __cplusplus
}
#endif

#endif
