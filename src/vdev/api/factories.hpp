// The built-in vdev factories (each defined in its device's folder) and the registry that lists
// them (registry.cpp: an explicit list, no static constructors; design §3.7).
#pragma once

#include <span>
#include <string_view>

#include "vdev/api/context.hpp"

namespace qvm::vdev {

extern const VdevFactory kSer8250Factory;     // uart/factory.cpp
extern const VdevFactory kMc146818Factory;    // rtc/factory.cpp
extern const VdevFactory kPckeyboardFactory;  // platform/factory.cpp
extern const VdevFactory kTestdevFactory;
extern const VdevFactory kIoapicFactory;
extern const VdevFactory k8259Factory;
extern const VdevFactory kTimer8254Factory;
extern const VdevFactory kVirtioBlkFactory;      // virtio_blk/factory.cpp
extern const VdevFactory kVirtioConsoleFactory;  // virtio_console/factory.cpp
extern const VdevFactory kVirtioEntropyFactory;  // virtio_entropy/factory.cpp
extern const VdevFactory kVirtioNetFactory;      // virtio_net/factory.cpp
extern const VdevFactory kWdtIb700Factory;       // wdt_ib700/factory.cpp
extern const VdevFactory kShmemFactory;          // shmem/factory.cpp
extern const VdevFactory kHpetFactory;           // hpet/factory.cpp

// The built-in factories (registry.cpp); each type's schema is in vdev/catalog (schemas.hpp).
std::span<const VdevFactory* const> builtin_factories();
// The factory of a vdev type (built in, or loaded: vdev/plugin), or nullptr.
const VdevFactory* find_factory(std::string_view type);

}  // namespace qvm::vdev
