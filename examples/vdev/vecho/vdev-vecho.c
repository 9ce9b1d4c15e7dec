/* vdev vecho: a sample loadable virtio device for qvm (docs/vdev-api.md "Virtio devices"), served
 * by qvm's virtio-mmio and virtio-pci transports through qvm/vio.h.
 *
 * Device id 63 (a sample's id, not one the virtio specification assigns), one queue of up to 64
 * entries. Each request is a chain of device-readable bytes followed by device-writable buffers;
 * the device writes the request's bytes back, each XORed with the low byte of `key`, and returns
 * the chain with that many bytes. Configuration space (little-endian):
 *   0x00 u32 requests  read-only: chains completed since the device was created
 *   0x04 u32 key       read/write: the XOR key (option `key`, default 0x5a)
 *
 *   vdev vecho loc 0xd0003000 intr myioapic:10 key 0x21  (virtio-mmio)
 *   vdev vecho                                            (virtio-pci)
 *
 * Build: cc -shared -fPIC $(pkg-config --cflags qvm-vdev) -o vdev-vecho.so vdev-vecho.c */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <qvm/log.h>
#include <qvm/utils.h>
#include <qvm/vdev-core.h>
#include <qvm/vio.h>

struct vecho {
  uint32_t requests;
  uint32_t key;
  struct vio_chain chain; /* scratch for vio_queue_pop */
};

static const char* const vecho_options[] = {"key", NULL};

static void vecho_notify(vdev_t* vdp, unsigned queue) {
  struct vecho* ve = vdp->v_device;
  const uint8_t key = (uint8_t)ve->key;
  /* Bounded: the ring holds at most 64 chains; pop returns 0 once it is empty. */
  while (vio_queue_pop(vdp, queue, &ve->chain) == 1) {
    unsigned r = 0, rofs = 0; /* reading position: segment, offset */
    uint32_t written = 0;
    for (unsigned w = 0; w < ve->chain.nsegs; w++) {
      struct vio_seg* out = &ve->chain.seg[w];
      if (!out->device_writes) continue;
      for (uint32_t i = 0; i < out->len; i++) {
        while (r < ve->chain.nsegs && (ve->chain.seg[r].device_writes || rofs == ve->chain.seg[r].len)) {
          r++;
          rofs = 0;
        }
        if (r == ve->chain.nsegs) goto done;
        ((uint8_t*)out->addr)[i] = ((const uint8_t*)ve->chain.seg[r].addr)[rofs++] ^ key;
        written++;
      }
    }
  done:
    ve->requests++;
    vio_queue_push(vdp, queue, ve->chain.head, written);
  }
}

static void vecho_config_read(vdev_t* vdp, unsigned offset, void* buf, unsigned len) {
  struct vecho* ve = vdp->v_device;
  uint8_t cfg[8];
  memcpy(cfg, &ve->requests, 4);
  memcpy(cfg + 4, &ve->key, 4);
  memcpy(buf, cfg + offset, len); /* qvm checked offset + len <= 8 */
}

static void vecho_config_write(vdev_t* vdp, unsigned offset, const void* buf, unsigned len) {
  struct vecho* ve = vdp->v_device;
  uint8_t cfg[8];
  memcpy(cfg, &ve->requests, 4);
  memcpy(cfg + 4, &ve->key, 4);
  for (unsigned i = 0; i < len; i++)
    if (offset + i >= 4) cfg[offset + i] = ((const uint8_t*)buf)[i]; /* only `key` is writable */
  memcpy(&ve->key, cfg + 4, 4);
}

static const struct vio_ops vecho_ops = {
    .notify = vecho_notify,
    .config_read = vecho_config_read,
    .config_write = vecho_config_write,
};

static int vecho_control(vdev_t* vdp, vdev_ctrl_options_t ctrl, const char* arg) {
  struct vecho* ve = vdp->v_device;
  uint64_t v;
  switch ((int)ctrl) {
    case VDEV_CTRL_OPTIONS_START:
      ve->key = 0x5a;
      return 0;
    case VDEV_CTRL_FIRST_OPTIDX + 0: /* key */
      if (qvm_parse_num(arg, 0, &v, NULL) != 0 || v > 0xffffffffu) {
        vdev_logf(VDEV_LOG_ERROR, vdp, "key '%s': expected a 32-bit number", arg);
        return EINVAL;
      }
      ve->key = (uint32_t)v;
      return 0;
    case VDEV_CTRL_OPTIONS_END: {
      const struct vio_description d = {.device_type = 63, .num_queues = 1, .queue_size = {64},
                                        .device_config_size = 8};
      return vio_init(vdp, &d, &vecho_ops) == 0 ? 0 : errno;
    }
    default:
      return 0;
  }
}

static struct vdev_factory vecho_factory = {
    .control = vecho_control,
    .option_list = vecho_options,
    .name = "vecho",
    /* virtio-mmio with loc + intr, else virtio-pci (spec §5) */
    .factory_flags = VFF_VDEV_MEM | VFF_VDEV_PCI | VFF_INTR_NONPCI | VFF_MUTEX,
    .extra_space = sizeof(struct vecho),
};

__attribute__((constructor)) static void vecho_register(void) {
  vdev_register_factory(&vecho_factory, QVM_VDEV_ABI);
}
