// The built-in vdev types and their option schemas (spec §5-§6). An explicit list, no static
// constructors (design §3.7); plugin types will be added to the same lookup.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "config/schema.hpp"

namespace qvm::vdev {

std::span<const config::VdevSchema> builtin_schemas();
const config::VdevSchema* find_schema(std::string_view type);
std::vector<std::string> builtin_type_names();

}  // namespace qvm::vdev
