#include "event/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/log.hpp"

namespace qvm::event {

Result<EventLoop> EventLoop::create() {
  EventLoop l;
  l.epfd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!l.epfd_) return Error::from_errno("epoll_create1", errno);
  return l;
}

Status EventLoop::add_fd(int fd, Callback cb) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
    return Error::from_errno("epoll_ctl add", errno);
  // A vdev with its own `log` routing registers inside its LogScope: the callback keeps it.
  cbs_[fd] = std::make_shared<Callback>(in_log_scope(std::move(cb)));
  return {};
}

Status EventLoop::remove_fd(int fd) {
  cbs_.erase(fd);
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0)
    return Error::from_errno("epoll_ctl del", errno);
  return {};
}

void EventLoop::add_poller(std::function<bool()> poll, std::chrono::nanoseconds window) {
  if (window.count() <= 0) return;
  if (Logger* l = LogScope::active())
    poll = [l, p = std::move(poll)] {
      LogScope s(l);
      return p();
    };
  pollers_.push_back(Poller{std::move(poll), window});
}

Status EventLoop::run() {
  using Clock = std::chrono::steady_clock;
  epoll_event evs[32];
  Clock::time_point poll_until{};
  while (!stopping_) {
    const bool polling = !pollers_.empty() && Clock::now() < poll_until;
    int n = ::epoll_wait(epfd_.get(), evs, 32, polling ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("epoll_wait", errno);
    }
    for (int i = 0; i < n && !stopping_; ++i) {
      auto it = cbs_.find(evs[i].data.fd);
      if (it == cbs_.end()) continue;
      auto cb = it->second;  // keep alive if the callback removes itself
      (*cb)();
    }
    for (const Poller& p : pollers_)
      if (p.poll()) poll_until = std::max(poll_until, Clock::now() + p.window);
  }
  return {};
}

Result<std::unique_ptr<Timer>> Timer::create(EventLoop& loop, std::function<void(uint64_t)> cb) {
  std::unique_ptr<Timer> t(new Timer(loop));
  t->fd_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!t->fd_) return Error::from_errno("timerfd_create", errno);
  t->cb_ = std::move(cb);
  Timer* raw = t.get();
  QVM_TRY(loop.add_fd(t->fd(), [raw] {
    uint64_t n = 0;
    if (::read(raw->fd(), &n, sizeof n) == static_cast<ssize_t>(sizeof n) && n > 0) raw->cb_(n);
  }));
  return t;
}

Timer::~Timer() {
  if (fd_) (void)loop_.remove_fd(fd_.get());
}

Status Timer::arm(std::chrono::nanoseconds period) {
  return arm(period, period);
}

Status Timer::arm(std::chrono::nanoseconds first, std::chrono::nanoseconds period) {
  itimerspec its{};
  its.it_interval.tv_sec = period.count() / 1'000'000'000;
  its.it_interval.tv_nsec = period.count() % 1'000'000'000;
  its.it_value.tv_sec = first.count() / 1'000'000'000;
  its.it_value.tv_nsec = first.count() % 1'000'000'000;
  if (::timerfd_settime(fd_.get(), 0, &its, nullptr) != 0)
    return Error::from_errno("timerfd_settime", errno);
  return {};
}

}  // namespace qvm::event
