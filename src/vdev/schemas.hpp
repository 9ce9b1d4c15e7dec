// The option schema of each vdev type, declared in its device's folder (schema.cpp), and the
// typed options structs their parse() fills (spec §5-§6). vdev/catalog.cpp lists them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/schema.hpp"

namespace qvm::vdev {

config::VdevSchema ioapic_schema();          // platform/schema.cpp
config::VdevSchema i8259_schema();           // platform/schema.cpp
config::VdevSchema timer8254_schema();       // platform/schema.cpp
config::VdevSchema pckeyboard_schema();      // platform/schema.cpp
config::VdevSchema testdev_schema();         // platform/schema.cpp
config::VdevSchema mc146818_schema();        // rtc/schema.cpp
config::VdevSchema ser8250_schema();         // uart/schema.cpp
config::VdevSchema hpet_schema();            // hpet/schema.cpp (not built yet)
config::VdevSchema wdt_ib700_schema();       // wdt_ib700/schema.cpp (not built yet)
config::VdevSchema virtio_blk_schema();      // virtio_blk/schema.cpp
config::VdevSchema virtio_console_schema();  // virtio_console/schema.cpp
config::VdevSchema virtio_entropy_schema();  // virtio_entropy/schema.cpp
config::VdevSchema virtio_net_schema();      // virtio_net/schema.cpp
config::VdevSchema shmem_schema();           // shmem/schema.cpp (not built yet)

// mc146818: `reg INDEX,VALUE` presets, in the order written.
struct Mc146818Options {
  std::vector<std::pair<uint8_t, uint8_t>> regs;
};
// ser8250: the `hostdev` ends.
struct Ser8250Options {
  std::vector<std::string> hostdevs;
};
// wdt-ib700: `action [dump,]terminate|reset`.
struct Ib700Options {
  bool reset = false;  // else terminate (exit 4)
  bool dump = false;   // a guest dump first
};
// virtio-console: port 0's `hostdev` ends, then each `port NAME[,HOSTDEV[,HOSTDEV]]`.
struct VirtioConsoleOptions {
  struct Port {
    std::string name;
    std::vector<std::string> hostdevs;
  };
  std::vector<Port> ports;
};

}  // namespace qvm::vdev
