/* qvm vdev API: loadable vdevs on PCI (docs/vdev-api.md "On PCI"; spec §5, §7.5, §9.5).
 *
 * A factory with VFF_VDEV_PCI is a PCI function when its `vdev` entry has no `loc` (or
 * `loc pci:0:DEV`). qvm then sends VDEV_CTRL_PCI_BARS after OPTIONS_END; during that call the vdev
 * names its function (vpci_set_ids, required) and declares its BARs (vpci_add_bar). qvm places
 * the function on bus 0, assigns the BARs, wires INTA# to v_intr (guest_intr_signal), and sends
 * each BAR access to vread/vwrite with vopnd->type QST_PCI, vopnd->location the offset in the
 * BAR and `cookie` the BAR index. */
#ifndef QVM_PCI_H
#define QVM_PCI_H

#include <stdint.h>

#include <qvm/vdev-core.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vpci_ids {
  uint16_t vendor;
  uint16_t device;
  uint16_t subsystem_vendor;
  uint16_t subsystem;
  uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
  uint8_t revision;
};

/* vpci_add_bar flags. */
enum { VPCI_BAR_MEM = 0x0, VPCI_BAR_IO = 0x1 };

/* Only during VDEV_CTRL_PCI_BARS. Returns 0 or -1/errno (EPERM outside it, EINVAL bad ids). */
int vpci_set_ids(vdev_t* vdp, const struct vpci_ids* ids);
/* BAR `index` (0-5) of `size` bytes: a power of two, memory 4 KiB-16 MiB, I/O 4-256 bytes.
 * Memory BARs are 32-bit, non-prefetchable. Returns 0 or -1/errno (EEXIST: index taken). */
int vpci_add_bar(vdev_t* vdp, unsigned index, uint64_t size, unsigned flags);

#ifdef __cplusplus
}
#endif

#endif
