// The opaque `struct guest_cpu` of include/qvm/guest.h: the data side of one trapped access
// (spec §9.6: the vdev moves the value with guest_cpu_read/guest_cpu_write).
#pragma once

#include <cstdint>

struct guest_cpu {
  uint8_t* data;
  uint32_t len;
  bool is_read;  // vread: the vdev supplies the bytes; vwrite: it takes them
};
