#include <array>

#include "vdev/api/factories.hpp"
#include "vdev/plugin/plugin.hpp"

namespace qvm::vdev {

namespace {
constinit const std::array<const VdevFactory*, 14> kAll{
    &kIoapicFactory,        &k8259Factory,       &kTimer8254Factory, &kMc146818Factory,
    &kSer8250Factory,       &kPckeyboardFactory, &kTestdevFactory,   &kWdtIb700Factory,
    &kShmemFactory,         &kHpetFactory,       &kVirtioBlkFactory, &kVirtioConsoleFactory,
    &kVirtioEntropyFactory, &kVirtioNetFactory,
};
}  // namespace

std::span<const VdevFactory* const> builtin_factories() {
  return kAll;
}

const VdevFactory* find_factory(std::string_view type) {
  for (const VdevFactory* f : kAll)
    if (f->type == type) return f;
  return plugin::factory_for(type);  // a loadable vdev the configuration loaded
}

}  // namespace qvm::vdev
