// Identifiers that QNX guests and the public QNX guest drivers key on (spec §6.4 virtio, §6.5 and
// §11 shmem): the QNX PCI vendor id, used by the QNX qvm as the subsystem vendor of its virtio
// functions, as the virtio-mmio VendorID and as the vendor of its own PCI devices.
#pragma once

#include <cstdint>

namespace qvm {

inline constexpr uint16_t kQnxPciVendor = 0x1c05;

}  // namespace qvm
