/* qvm test guest: virtio over MMIO (virtio 1.2 §4.2; version 2 registers, legacy version 1 too)
 * and over PCI (§4.1, modern: virtio_pci_cap structures, common configuration, MSI-X).
 * Ring 3 driver core shared by tests/virtio*.c: one struct vdev, one init sequence and one
 * split-virtqueue implementation for both transports. See docs/testing.md ("virtio").
 *
 * Discovery: the DSDT/SSDTs are scanned (bounded) for Device objects with _HID "LNRO0005"; each
 * one's _CRS gives the register window (Memory32Fixed) and the GSI (Extended Interrupt, with its
 * trigger mode). `virtio_mmio=BASE@GSI[,BASE@GSI...]` on the command line adds slots that ACPI
 * did not describe (edge-triggered assumed). */
#ifndef QVM_GUEST_VIRTIO_H
#define QVM_GUEST_VIRTIO_H

#include "guest.h"

/* ---- registers (§4.2.2) ----------------------------------------------------------------- */
#define VMMIO_MAGIC 0x000
#define VMMIO_VERSION 0x004
#define VMMIO_DEVICE_ID 0x008
#define VMMIO_VENDOR_ID 0x00c
#define VMMIO_DEVICE_FEATURES 0x010
#define VMMIO_DEVICE_FEATURES_SEL 0x014
#define VMMIO_DRIVER_FEATURES 0x020
#define VMMIO_DRIVER_FEATURES_SEL 0x024
#define VMMIO_GUEST_PAGE_SIZE 0x028 /* legacy */
#define VMMIO_QUEUE_SEL 0x030
#define VMMIO_QUEUE_NUM_MAX 0x034
#define VMMIO_QUEUE_NUM 0x038
#define VMMIO_QUEUE_ALIGN 0x03c /* legacy */
#define VMMIO_QUEUE_PFN 0x040   /* legacy */
#define VMMIO_QUEUE_READY 0x044
#define VMMIO_QUEUE_NOTIFY 0x050
#define VMMIO_INTERRUPT_STATUS 0x060
#define VMMIO_INTERRUPT_ACK 0x064
#define VMMIO_STATUS 0x070
#define VMMIO_QUEUE_DESC_LOW 0x080
#define VMMIO_QUEUE_DESC_HIGH 0x084
#define VMMIO_QUEUE_DRIVER_LOW 0x090
#define VMMIO_QUEUE_DRIVER_HIGH 0x094
#define VMMIO_QUEUE_DEVICE_LOW 0x0a0
#define VMMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VMMIO_CONFIG_GENERATION 0x0fc
#define VMMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976 /* "virt" */

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_ENTROPY 4

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define BIT64(n) (1ull << (n))

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* ---- discovery -------------------------------------------------------------------------- */
#define VMMIO_MAX_SLOTS 16
struct vmmio_slot {
    uint64_t base;
    uint32_t size;      /* Memory32Fixed length */
    uint32_t gsi;
    bool has_irq;
    bool level;         /* _CRS trigger mode (QEMU microvm: level; qvm: edge) */
    bool active_low;
    int64_t uid;        /* _UID, -1 if absent */
    const char *source; /* "acpi" | "cmdline" */
    uint32_t magic, version, device_id, vendor_id; /* probed */
};
/* Scans ACPI (once) and probes each slot; returns the number of slots, *out the array. */
unsigned vmmio_discover(struct vmmio_slot **out);
/* The nth slot (0-based) with that device id, or NULL. */
struct vmmio_slot *vmmio_find(uint32_t device_id, unsigned nth);
unsigned vmmio_slot_index(const struct vmmio_slot *s);

/* ---- split virtqueue + device ------------------------------------------------------------ */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};
struct virtq {
    unsigned index;
    uint16_t size;
    uint16_t next_desc;   /* round-robin descriptor allocation */
    uint16_t avail_idx;   /* driver's shadow of avail->idx */
    uint16_t last_used;
    volatile struct virtq_desc *desc;
    volatile uint16_t *avail;            /* flags, idx, ring[size], used_event */
    volatile uint16_t *used_hdr;         /* flags, idx */
    volatile struct virtq_used_elem *used;
    uint64_t mem;                        /* queue memory (desc at +0, avail, used at +4096) */
};
struct vbuf {
    uint64_t addr;
    uint32_t len;
    bool device_writes;
};

/* ---- virtio over PCI (§4.1) --------------------------------------------------------------- */
#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_MODERN 0x1040 /* + device type */
#define VPCI_CAP_COMMON 1
#define VPCI_CAP_NOTIFY 2
#define VPCI_CAP_ISR 3
#define VPCI_CAP_DEVICE 4
#define VPCI_CAP_PCI_CFG 5
/* common configuration structure (§4.1.4.3) */
#define VPCI_DFSELECT 0x00
#define VPCI_DF 0x04
#define VPCI_GFSELECT 0x08
#define VPCI_GF 0x0c
#define VPCI_MSIX_CONFIG 0x10
#define VPCI_NUM_QUEUES 0x12
#define VPCI_STATUS 0x14
#define VPCI_CFG_GENERATION 0x15
#define VPCI_Q_SELECT 0x16
#define VPCI_Q_SIZE 0x18
#define VPCI_Q_MSIX 0x1a
#define VPCI_Q_ENABLE 0x1c
#define VPCI_Q_NOFF 0x1e
#define VPCI_Q_DESC 0x20
#define VPCI_Q_DRIVER 0x28
#define VPCI_Q_DEVICE 0x30
#define VIRTIO_MSI_NO_VECTOR 0xffff

#define PCI_CMD_IO 0x1
#define PCI_CMD_MEM 0x2
#define PCI_CMD_MASTER 0x4
#define PCI_CMD_INTX_DISABLE 0x400

#define VPCI_MAX_FNS 32
struct vpci_cap {
    bool present;
    uint8_t pos;  /* offset of the capability in config space */
    uint8_t bar;
    uint32_t off, len;
    uint64_t addr; /* BAR address + off, once the BAR is known */
};
struct vpci_fn {
    unsigned bus, dev, fn;
    uint16_t vendor, device, subsys_vendor, subsys;
    uint8_t rev, int_pin, int_line;
    uint32_t type;          /* virtio device type (0x1040+type, or the subsystem id if transitional) */
    bool transitional;      /* 0x1000-0x103f */
    uint64_t bar[6], bar_size[6];
    bool bar_io[6], bar_64[6], bar_fixed[6]; /* bar_fixed: assigned (or moved below 4 GiB) by us */
    struct vpci_cap cap[6];  /* by cfg_type 1..5 (first of each type) */
    unsigned ncaps_vendor;   /* vendor-specific capabilities seen */
    uint32_t notify_mult;
    /* MSI-X (capability 0x11) */
    uint8_t msix_pos;        /* 0: none */
    uint16_t msix_size;
    uint8_t msix_table_bar, msix_pba_bar;
    uint32_t msix_table_off, msix_pba_off;
    uint64_t msix_table, msix_pba;
    char err[80];            /* discovery problem (BAR, capability), "" if usable */
};
/* Enumerates bus 0 once (0xCF8), sizes BARs, assigns unassigned / above-4-GiB memory BARs from a
 * free window (vpci_window=BASE-END, default 0xc0000000-0xd0000000, skipping anything decoded),
 * walks the capability lists, enables memory decoding + bus mastering with INTx disabled. */
unsigned vpci_discover(void);              /* number of virtio functions */
struct vpci_fn *vpci_at(unsigned i);       /* the i-th virtio function in bus order */
struct vpci_fn *vpci_find(uint32_t type, unsigned nth);
const char *vpci_name(const struct vpci_fn *f); /* "00:03.0" (static buffer per call slot) */
void vpci_intx(struct vpci_fn *f, bool enable); /* Command.InterruptDisable */
/* MSI-X: entry -> IDT vector on this CPU (edge, fixed), masked or not; enable/function mask */
void vpci_msix_enable(struct vpci_fn *f, bool on);
void vpci_msix_entry(struct vpci_fn *f, unsigned entry, unsigned vec, bool masked);
void vpci_msix_mask(struct vpci_fn *f, unsigned entry, bool masked);
bool vpci_msix_pending(struct vpci_fn *f, unsigned entry);

enum vtransport { VT_MMIO, VT_PCI };

#define VDEV_MAX_QUEUES 6
struct vdev {
    enum vtransport transport;
    struct vmmio_slot *slot; /* VT_MMIO */
    struct vpci_fn *pci;     /* VT_PCI */
    uint64_t base;           /* MMIO: register window; PCI: common configuration */
    uint64_t notify, isr, devcfg; /* PCI structures */
    uint32_t notify_mult;
    uint16_t qnotify_off[VDEV_MAX_QUEUES];
    uint16_t qvec[VDEV_MAX_QUEUES], cfgvec; /* PCI: MSI-X vectors as read back */
    uint32_t version;
    uint64_t device_features, features; /* offered / negotiated */
    unsigned nq;
    struct virtq q[VDEV_MAX_QUEUES];
    unsigned vec; /* interrupt vector once vdev_irq_route() was called, else 0 */
    uint64_t kicks, kicks_suppressed; /* vq_kick: notifications sent / left out (NO_NOTIFY) */
    char err[120];
};

/* Full init sequence (§3.1.1): reset, ACKNOWLEDGE, DRIVER, features (want & offered, plus
 * VERSION_1 on version 2, which must be offered), FEATURES_OK + read-back (version 2), queue
 * set-up (size min(QueueNumMax, qsize); version 2: desc/driver/device addresses + QueueReady,
 * version 1: GuestPageSize/QueueAlign 4096 + QueuePFN), DRIVER_OK. false + d->err on failure. */
bool vdev_init(struct vdev *d, struct vmmio_slot *s, uint64_t want, unsigned nqueues, unsigned qsize);
/* The same over PCI; qvec[i] is written to queue_msix_vector of queue i before it is enabled
 * (qvec NULL: VIRTIO_MSI_NO_VECTOR), cfgvec to config_msix_vector; each is read back into
 * d->qvec / d->cfgvec (0xffff = the device refused; not an error here, the caller decides). */
bool vpci_init(struct vdev *d, struct vpci_fn *f, uint64_t want, unsigned nqueues, unsigned qsize,
               const uint16_t *qvec, uint16_t cfgvec);
uint32_t vdev_status(struct vdev *d);
const char *vdev_name(const struct vdev *d); /* "mmio@ADDR" or "pci@BB:DD.F" */
bool vdev_reset(struct vdev *d); /* Status 0; true if it reads back 0 */
uint32_t vdev_cfg32(struct vdev *d, unsigned off);
void vdev_cfg_write32(struct vdev *d, unsigned off, uint32_t v);
uint64_t vdev_cfg64(struct vdev *d, unsigned off); /* ConfigGeneration-consistent (not on legacy) */

/* Add one chain (readable buffers first); returns the head index, -1 if it cannot. */
int vq_add(struct virtq *q, const struct vbuf *b, unsigned n);
/* The same at fixed descriptors head..head+n-1 (caller-managed slots; no wrap). */
int vq_add_at(struct virtq *q, uint16_t head, const struct vbuf *b, unsigned n);
/* Notifies queue qi unless the device set VIRTQ_USED_F_NO_NOTIFY (§2.7.7: the driver SHOULD NOT
 * notify then; read after a full barrier, so a device that clears it and re-checks the ring
 * misses nothing). */
void vq_kick(struct vdev *d, unsigned qi);
bool vq_poll(struct virtq *q, uint32_t *id, uint32_t *len);
/* Poll the used ring of queue qi for one entry, bounded. */
bool vq_wait(struct vdev *d, unsigned qi, uint64_t timeout_us, uint32_t *id, uint32_t *len);
void vq_set_no_interrupt(struct virtq *q, bool on);

/* Route the slot's GSI (its IOAPIC from the MADT) to a vector with a ring-0 handler that reads
 * InterruptStatus and acknowledges it; trigger mode from _CRS. masked=true only programs it. */
bool vdev_irq_route(struct vdev *d, bool masked);
void vdev_irq_mask(struct vdev *d);
/* the IOAPIC (MADT) serving a GSI, and one redirection entry (lo written last) */
bool gsi_ioapic(uint32_t gsi, uint64_t *base, unsigned *pin);
void ioapic_rte(uint64_t base, unsigned pin, uint32_t lo, uint32_t hi);
extern volatile uint32_t vmmio_isr_bits[VMMIO_MAX_SLOTS]; /* OR of InterruptStatus seen by the handler */

/* DMA memory: identity-mapped RAM after the guest image (bump allocator, zeroed, bounded). */
void *dma_alloc(size_t size, size_t align);

static inline void virt_wmb(void) { __asm__ volatile("" ::: "memory"); }
static inline void virt_mb(void) { __asm__ volatile("lock; addl $0,0(%%rsp)" ::: "memory", "cc"); }

/* FNV-1a 32-bit, used to report written data the runner checks in the host file */
uint32_t fnv1a32(const void *p, size_t n);

#endif
