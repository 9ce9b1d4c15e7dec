// Constants of the virtio 1.2 specification shared by queues, transports and devices.
#pragma once

#include <cstdint>

namespace qvm::virtio {

// Device status bits (virtio 1.2 §2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusDeviceNeedsReset = 64;
inline constexpr uint32_t kStatusFailed = 128;

// Reserved feature bits (virtio 1.2 §6).
inline constexpr uint32_t kFeatureIndirectDesc = 28;  // VIRTIO_F_INDIRECT_DESC
inline constexpr uint32_t kFeatureEventIdx = 29;      // VIRTIO_F_EVENT_IDX
inline constexpr uint32_t kFeatureVersion1 = 32;      // VIRTIO_F_VERSION_1

inline constexpr uint64_t feature_bit(uint32_t bit) {
  return uint64_t{1} << bit;
}

// Device ids (virtio 1.2 §5).
inline constexpr uint32_t kDeviceIdNet = 1;
inline constexpr uint32_t kDeviceIdBlock = 2;
inline constexpr uint32_t kDeviceIdConsole = 3;
inline constexpr uint32_t kDeviceIdEntropy = 4;

// Split virtqueue layout (virtio 1.2 §2.7.5, §2.7.6, §2.7.8).
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint16_t kUsedFlagNoNotify = 1;

struct VirtqDesc {  // struct virtq_desc, virtio 1.2 §2.7.5
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

struct VirtqUsedElem {  // struct virtq_used_elem, virtio 1.2 §2.7.8
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(VirtqUsedElem) == 8);

// Interrupt status bits of virtio-mmio (§4.2.2) and of the PCI ISR (§4.1.4.5).
inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

}  // namespace qvm::virtio
