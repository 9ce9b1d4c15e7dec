#include "base/safe_open.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "base/log.hpp"

namespace qvm {

namespace {

// True if following the symlink at `path` is safe: owned by root or by this user.
Result<bool> trusted_link(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::from_errno("lstat '" + path + "'", errno);
  if (!S_ISLNK(st.st_mode)) return false;  // ELOOP for another reason: refuse
  return st.st_uid == 0 || st.st_uid == ::geteuid();
}

}  // namespace

Result<UniqueFd> open_no_foreign_symlink(const std::string& path, int flags, mode_t mode) {
  const int base = flags | O_CLOEXEC | O_NOCTTY;
  UniqueFd fd(::open(path.c_str(), base | O_NOFOLLOW, mode));
  if (fd) return fd;
  if (errno != ELOOP) return Error::from_errno("cannot open '" + path + "'", errno);
  struct stat st {};
  const bool ok = QVM_TRY(trusted_link(path));
  if (!ok) {
    ::lstat(path.c_str(), &st);
    return make_error("'" + path + "' is a symbolic link owned by another user (uid " +
                      std::to_string(st.st_uid) + "): not followed");
  }
  fd = UniqueFd(::open(path.c_str(), base, mode));
  if (!fd) return Error::from_errno("cannot open '" + path + "'", errno);
  return fd;
}

Result<UniqueFd> open_output_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return Error::from_errno("cannot create directory '" + path + "'", errno);
  UniqueFd fd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd && errno == ELOOP) {
    if (!QVM_TRY(trusted_link(path)))
      return make_error("'" + path + "' is a symbolic link owned by another user: not followed");
    fd = UniqueFd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  if (!fd) return Error::from_errno("cannot open directory '" + path + "'", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error::from_errno("fstat '" + path + "'", errno);
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return make_error("directory '" + path + "' belongs to another user (uid " +
                      std::to_string(st.st_uid) + ")");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
    return make_error("directory '" + path + "' is writable by group or others");
  return fd;
}

Result<UniqueFd> open_in_dir(int dirfd, const std::string& name, mode_t mode) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return make_error("bad file name '" + name + "'");
  UniqueFd fd(
      ::openat(dirfd, name.c_str(),
               O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
               mode));  // O_NONBLOCK: a FIFO planted there fails (ENXIO) instead of blocking
  if (!fd) return Error::from_errno("cannot create '" + name + "'", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error("'" + name + "' is not a regular file");
  return fd;
}

Status write_all(int fd, const void* data, size_t len, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::from_errno("cannot write " + what, n < 0 ? errno : EIO);
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

}  // namespace qvm
