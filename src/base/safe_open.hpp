// Opening host files that other local users may have prepared (design: hostile neighbours).
// A symlink as the last component is followed only when root or this user owns it: a link that
// another user planted (say in a shared directory) could aim a write by qvm, running as root or
// as a VM's owner, at any file. Directory components are left to the kernel's checks
// (fs.protected_symlinks for sticky world-writable directories).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm {

// open(2) with O_CLOEXEC | O_NOCTTY plus `flags`, refusing a foreign final symlink.
Result<UniqueFd> open_no_foreign_symlink(const std::string& path, int flags, mode_t mode = 0644);

// A directory to write files into: created (0755) if missing; it must be a directory (a symlink
// to one only if owned by root or this user) owned by this user or root, and not writable by
// group or others unless it has the sticky bit. Returns an O_PATH|O_DIRECTORY fd for openat().
Result<UniqueFd> open_output_dir(const std::string& path);

// A file in such a directory, created or truncated, never through a symlink.
Result<UniqueFd> open_in_dir(int dirfd, const std::string& name, mode_t mode = 0644);

// Writes all of `data` (retrying short writes and EINTR).
Status write_all(int fd, const void* data, size_t len, const std::string& what);

}  // namespace qvm
