// See runtime_dir.hpp.
#include "base/runtime_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "base/log.hpp"

namespace qvm::base {

std::string runtime_dir() {
  if (::geteuid() == 0) return "/run/qvm";
  const char* x = std::getenv("XDG_RUNTIME_DIR");
  if (x && x[0] == '/') return std::string(x) + "/qvm";
  return "/tmp/qvm-" + std::to_string(::geteuid());
}

Status make_dirs(const std::string& dir, mode_t last_mode) {
  size_t pos = 1;
  for (;;) {
    size_t slash = dir.find('/', pos);
    std::string part = dir.substr(0, slash);
    const bool last = slash == std::string::npos;
    if (::mkdir(part.c_str(), last ? last_mode : 0755) != 0 && errno != EEXIST)
      return Error::from_errno("creating directory " + part, errno);
    if (last) return {};
    pos = slash + 1;
  }
}

// A directory qvm's endpoints and regions live in must be qvm's user's own: another local user who
// created it first (say /tmp/qvm-<uid> before qvm ran) would otherwise receive the guest's frames.
Status check_own_dir(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return Error::from_errno("checking directory " + dir, errno);
  if (S_ISLNK(st.st_mode))
    return make_error("runtime directory " + dir + " is a symbolic link; qvm does not follow it");
  if (!S_ISDIR(st.st_mode)) return make_error("runtime directory " + dir + " is not a directory");
  if (st.st_uid != ::geteuid())
    return make_error(strprintf(
        "runtime directory %s belongs to uid %u, not to qvm's uid %u (did another user create "
        "it?); remove it, or set XDG_RUNTIME_DIR",
        dir.c_str(), static_cast<unsigned>(st.st_uid), static_cast<unsigned>(::geteuid())));
  if (st.st_mode & 022)
    return make_error(strprintf("runtime directory %s is writable by others (mode %03o)",
                                dir.c_str(), static_cast<unsigned>(st.st_mode & 0777)));
  return {};
}

Status private_dir(const std::string& dir) {
  QVM_TRY(make_dirs(dir, 0700));
  QVM_TRY(check_own_dir(dir));
  // Its parent: ours, or root's; writable by others only with the sticky bit (/tmp), so nobody
  // else can rename our directory away and put theirs in its place.
  if (const auto up = dir.rfind('/'); up != std::string::npos && up > 0) {
    const std::string parent = dir.substr(0, up);
    struct stat st {};
    if (::stat(parent.c_str(), &st) != 0)
      return Error::from_errno("checking directory " + parent, errno);
    if ((st.st_uid != ::geteuid() && st.st_uid != 0) ||
        ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)))
      return make_error(strprintf("directory %s (owner uid %u, mode %03o) lets others replace %s",
                                  parent.c_str(), static_cast<unsigned>(st.st_uid),
                                  static_cast<unsigned>(st.st_mode & 07777), dir.c_str()));
  }
  return {};
}

}  // namespace qvm::base
