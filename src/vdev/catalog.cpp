#include "vdev/catalog.hpp"

#include "vdev/schemas.hpp"

namespace qvm::vdev {
namespace {

// Each type's schema lives in its device's folder (schemas.hpp); this is the list of them, in
// the order `--help` shows them.
std::vector<config::VdevSchema> make_schemas() {
  return {ioapic_schema(),     i8259_schema(),          timer8254_schema(),
          mc146818_schema(),   pckeyboard_schema(),     hpet_schema(),
          ser8250_schema(),    testdev_schema(),        wdt_ib700_schema(),
          virtio_blk_schema(), virtio_console_schema(), virtio_entropy_schema(),
          virtio_net_schema(), shmem_schema()};
}

const std::vector<config::VdevSchema>& schemas() {
  static const std::vector<config::VdevSchema> s = make_schemas();
  return s;
}

}  // namespace

std::span<const config::VdevSchema> builtin_schemas() {
  return schemas();
}

const config::VdevSchema* find_schema(std::string_view type) {
  for (const auto& s : schemas())
    if (s.type == type) return &s;
  return nullptr;
}

std::vector<std::string> builtin_type_names() {
  std::vector<std::string> n;
  for (const auto& s : schemas()) n.push_back(s.type);
  return n;
}

}  // namespace qvm::vdev
