// Loadable vdevs (docs/vdev-api.md; spec §9): a `vdev TYPE` that is not built in is looked up as
// vdev-TYPE.so, whose ELF constructor registers a C `struct vdev_factory` (include/qvm/). This
// layer is the thin adapter between that C API and the C++ device interface (vdev/api).
#pragma once

#include <string>
#include <string_view>

#include "base/result.hpp"
#include "config/schema.hpp"
#include "vdev/api/context.hpp"

namespace qvm::vdev::plugin {

// The schema of a loadable vdev type: loaded now if needed from the directories of `vdev_path`
// (colon-separated), then $QVM_VDEV_PATH, then the install directory. nullptr if no
// vdev-TYPE.so exists there; an error naming the object if one exists but cannot be used.
Result<const config::VdevSchema*> find_or_load(std::string_view type, std::string_view vdev_path);

// The factory that builds every loaded type (create() looks the type up); nullptr if `type` was
// not loaded.
const VdevFactory* factory_for(std::string_view type);

// The install directory searched last (CMake: <libdir>/qvm/vdev).
std::string_view install_dir();

}  // namespace qvm::vdev::plugin
