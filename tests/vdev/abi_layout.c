/* The C ABI of include/qvm/ as this qvm defines it (QVM_VDEV_ABI): structure sizes and field
 * offsets on x86-64 (LP64). Compiled as a module in `make check`: a layout change without a new
 * ABI number fails the build here. */
#include <stddef.h>

#include <qvm/gasp.h>
#include <qvm/guest.h>
#include <qvm/log.h>
#include <qvm/pci.h>
#include <qvm/utils.h>
#include <qvm/vdev-core.h>
#include <qvm/vio.h>

_Static_assert(QVM_VDEV_ABI == 2026120701u, "a new layout needs a new ABI number (and this test)");
_Static_assert(sizeof(struct qvm_state_block) == 16, "qvm_state_block");
_Static_assert(offsetof(struct qvm_state_block, length) == 8, "qvm_state_block.length");
_Static_assert(offsetof(struct qvm_state_block, type) == 12, "qvm_state_block.type");
_Static_assert(sizeof(struct guest_intr) == 16, "guest_intr");
_Static_assert(offsetof(struct guest_intr, src_id) == 12, "guest_intr.src_id");
_Static_assert(offsetof(struct vdev_factory, control) == 8, "vdev_factory.control");
_Static_assert(offsetof(struct vdev_factory, timer) == 40, "vdev_factory.timer");
_Static_assert(offsetof(struct vdev_factory, option_list) == 56, "vdev_factory.option_list");
_Static_assert(offsetof(struct vdev_factory, name) == 64, "vdev_factory.name");
_Static_assert(offsetof(struct vdev_factory, factory_flags) == 72, "vdev_factory.factory_flags");
_Static_assert(sizeof(struct vdev_factory) == 88, "vdev_factory");
_Static_assert(offsetof(struct vdev_s, v_block) == 24, "vdev_s.v_block");
_Static_assert(offsetof(struct vdev_s, v_intr) == 40, "vdev_s.v_intr");
_Static_assert(offsetof(struct vdev_s, v_mtx) == 56, "vdev_s.v_mtx");
_Static_assert(sizeof(struct vdev_s) == 56 + sizeof(pthread_mutex_t) + 16, "vdev_s");
_Static_assert(sizeof(struct vpci_ids) == 16, "vpci_ids");
_Static_assert(sizeof(struct vio_description) == 32, "vio_description");
_Static_assert(offsetof(struct vio_description, device_features) == 24, "vio_description.features");
_Static_assert(sizeof(struct vio_seg) == 16 && offsetof(struct vio_chain, seg) == 8, "vio_chain");
_Static_assert(sizeof(struct vio_ops) == 40, "vio_ops");
_Static_assert(VDEV_CTRL_FIRST_OPTIDX == 16 && VDEV_CTRL_OPTIONS_END == 1 && VDEV_CTRL_TERMINATE == 3,
               "control codes");
_Static_assert(VRS_ERRNO == 0x100 && VFF_MUTEX == 0x100 && VFF_VDEV_PCI == 0x80, "codes and flags");

int qvm_abi_layout_checked(void);
int qvm_abi_layout_checked(void) { return 1; }
