#include "net/poller.hpp"

#include <cerrno>

namespace qvm::net {

Result<Poller> Poller::create() {
  Poller p;
  p.ep_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!p.ep_) return Error::from_errno("epoll_create1", errno);
  return p;
}

Status Poller::add(int fd, uint32_t events, uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
    return Error::from_errno("epoll_ctl add", errno);
  return {};
}

Status Poller::modify(int fd, uint32_t events, uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev) != 0)
    return Error::from_errno("epoll_ctl mod", errno);
  return {};
}

void Poller::remove(int fd) {
  (void)::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

size_t Poller::wait(std::span<epoll_event> out) {
  for (;;) {
    int n = ::epoll_wait(ep_.get(), out.data(), static_cast<int>(out.size()), 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return 0;
  }
}

}  // namespace qvm::net
