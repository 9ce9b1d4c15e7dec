// qvm's runtime directory (design §5): where peer-link endpoints and shared-memory regions live.
// /run/qvm when root, else $XDG_RUNTIME_DIR/qvm, else /tmp/qvm-<uid>. Another local user may have
// created a path first (/tmp is shared), so every directory qvm uses there is verified before use.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.hpp"

namespace qvm::base {

std::string runtime_dir();
// mkdir -p; the last component gets `last_mode` when it is created.
Status make_dirs(const std::string& dir, mode_t last_mode);
// `dir` is a directory (not a symbolic link) owned by qvm's effective uid and not writable by
// group or others; else an error that says what is wrong.
Status check_own_dir(const std::string& dir);
// make_dirs(dir, 0700) and check_own_dir on it; its parent must be ours or root's and not
// writable by others unless sticky.
Status private_dir(const std::string& dir);

}  // namespace qvm::base
