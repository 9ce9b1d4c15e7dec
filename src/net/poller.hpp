// A small non-blocking epoll set owned by a backend: its fd is what the device's owner polls
// (backend.hpp, "Event model"); service() drains it with wait() and a zero timeout.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <span>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm::net {

class Poller {
 public:
  static Result<Poller> create();
  int fd() const { return ep_.get(); }
  // `events`: EPOLLIN/EPOLLOUT (0 = hang-ups only; EPOLLHUP/EPOLLERR are always reported).
  Status add(int fd, uint32_t events, uint64_t tag);
  Status modify(int fd, uint32_t events, uint64_t tag);
  void remove(int fd);
  // Ready events now (never blocks); the count filled in `out`.
  size_t wait(std::span<epoll_event> out);

 private:
  UniqueFd ep_;
};

}  // namespace qvm::net
