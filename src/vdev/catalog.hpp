// The built-in vdev types and their option schemas (spec §5-§6). An explicit list, no static
// constructors (design §3.7); plugin types will be added to the same lookup.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/schema.hpp"
#include "config/vm_config.hpp"

namespace qvm::vdev {

std::span<const config::VdevSchema> builtin_schemas();
const config::VdevSchema* find_schema(std::string_view type);
std::vector<std::string> builtin_type_names();
// An interrupt controller's GSI of line 0 (`intr pic:N` drives that + N); nullopt if `pic` is not
// an interrupt controller.
std::optional<uint32_t> pic_gsi_base(const config::VdevConfig& pic);

}  // namespace qvm::vdev
