// vdev shmem (spec §6.5, §11): its schema (the device: factory.cpp, docs/shmem.md).
#include "config/values.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {
namespace {

Status check_create(std::string_view s) {
  auto parts = config::split(s, ',');
  if (parts.size() != 2 || parts[0].empty() || parts[0].size() > 31)
    return make_error("expected NAME,SIZE with a name of 1-31 characters, found '" +
                      std::string(s) + "'");
  auto size = config::parse_number(parts[1]);
  if (!size || *size == 0 || *size > (1ull << 32))
    return make_error("expected a shared-memory size of 1 byte to 4 GiB, found '" +
                      std::string(parts[1]) + "'");
  return {};
}

}  // namespace

config::VdevSchema shmem_schema() {
  using namespace schema;
  using config::OptKind;
  return {.type = "shmem",
          .summary = "QNX inter-VM shared memory (PCI 1C05:0001 or memory-mapped factory page)",
          .options = {repeat(opt("allow", OptKind::kString,
                                 "region names this guest may use (shell pattern)", {}, "PATTERN")),
                      repeat(opt("deny", OptKind::kString, "region names this guest may not use",
                                 {}, "PATTERN")),
                      repeat(custom("create", check_create, "pre-create a named region", {},
                                    "NAME,SIZE"))},
          .can_mem = true,
          .can_pci = true,
          .intr = config::IntrPolicy::kNonPci};
}

}  // namespace qvm::vdev
