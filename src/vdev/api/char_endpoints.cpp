#include "vdev/api/char_endpoints.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.hpp"
#include "base/safe_open.hpp"

namespace qvm::vdev {
namespace {

// Never through a symlink another user planted (base/safe_open.hpp): a hostdev file is read into
// the guest or written with qvm's privileges.
Result<UniqueFd> open_path(const std::string& path, int flags) {
  auto fd = open_no_foreign_symlink(path, flags);
  if (!fd) return make_error("hostdev: " + fd.error().message);
  return fd;
}

}  // namespace

Result<CharEndpoints> open_char_endpoints(const std::vector<std::string>& hostdevs, bool dryrun) {
  CharEndpoints ep;
  for (const auto& h : hostdevs) {
    char dir = 0;
    std::string path = h;
    if (!path.empty() && (path[0] == '<' || path[0] == '>')) {
      dir = path[0];
      path = path.substr(1);
    }
    if (path == "-") {
      if (dir != '>') ep.in = STDIN_FILENO;
      if (dir != '<') ep.out = STDOUT_FILENO;
      ep.description += " stdio";
      continue;
    }
    if (path == "pty" && dir == 0 && dryrun) {
      ep.description += " pty (created when the VM runs)";
      continue;
    }
    if (path == "pty" && dir == 0) {
      UniqueFd m(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!m || ::grantpt(m.get()) != 0 || ::unlockpt(m.get()) != 0)
        return Error::from_errno("cannot create a pseudo-terminal", errno);
      const char* name = ::ptsname(m.get());
      log_info("serial port on pseudo-terminal %s", name ? name : "?");
      ep.in = ep.out = m.get();
      ep.description += std::string(" pty:") + (name ? name : "?");
      ep.owned.push_back(std::move(m));
      continue;
    }
    int flags = dir == '<'   ? O_RDONLY
                : dir == '>' ? (O_WRONLY | O_CREAT | O_APPEND)
                             : (O_RDWR | O_CREAT);
    struct stat st {};
    if (dryrun && (flags & O_CREAT) && ::lstat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) return Error::from_errno("hostdev: " + path, errno);
      const auto slash = path.rfind('/');
      const std::string parent = slash == std::string::npos ? "."
                                 : slash == 0               ? "/"
                                                            : path.substr(0, slash);
      if (::access(parent.c_str(), W_OK | X_OK) != 0)
        return Error::from_errno("hostdev: cannot create " + path + " in " + parent, errno);
      ep.description += " " + h + " (created when the VM runs)";
      continue;
    }
    if (dryrun) flags &= ~O_CREAT;
    UniqueFd fd = QVM_TRY(open_path(path, flags));
    if (dir != '>') ep.in = fd.get();
    if (dir != '<') ep.out = fd.get();
    ep.description += " " + h;
    ep.owned.push_back(std::move(fd));
  }
  return ep;
}

}  // namespace qvm::vdev
