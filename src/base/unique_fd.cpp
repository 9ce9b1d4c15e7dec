#include "base/unique_fd.hpp"

#include <unistd.h>

namespace qvm {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);  // close(2) errors leave nothing to recover
  fd_ = fd;
}

}  // namespace qvm
