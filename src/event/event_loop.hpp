// A single-threaded epoll loop: callbacks on readable fds, periodic timers (timerfd), and
// signals (signalfd). Runs on qvm's main thread; device models are reached from it only through
// their own locks.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm::event {

class EventLoop {
 public:
  using Callback = std::function<void()>;
  static Result<EventLoop> create();

  Status add_fd(int fd, Callback on_readable);
  Status remove_fd(int fd);
  // Adaptive busy polling (virtio-blk `poll USEC` with io_uring): `poll` is called after every
  // batch of events and returns whether it found work (and did it, or handed it on). Once any
  // poller found work, the loop stops sleeping for `window`: it polls its fds without blocking
  // and calls the pollers again, and the window restarts at each find. A device whose driver
  // posts requests at a high rate is then served without a wake-up per notification or
  // completion (measured in docs/performance.md); an idle device costs nothing once the window
  // has run out. A zero window registers nothing.
  void add_poller(std::function<bool()> poll, std::chrono::nanoseconds window);
  // Runs until stop().
  Status run();
  void stop() { stopping_ = true; }
  bool stopping() const { return stopping_; }

 private:
  UniqueFd epfd_;
  std::map<int, std::shared_ptr<Callback>> cbs_;
  struct Poller {
    std::function<bool()> poll;
    std::chrono::nanoseconds window;
  };
  std::vector<Poller> pollers_;
  bool stopping_ = false;
};

// A timerfd that calls back on each expiry (missed expiries are coalesced and counted).
class Timer {
 public:
  static Result<std::unique_ptr<Timer>> create(EventLoop& loop,
                                               std::function<void(uint64_t expirations)> cb);
  ~Timer();
  Status arm(std::chrono::nanoseconds period);  // 0 disarms
  // First expiry after `first` (0 disarms), then every `period` (0: once).
  Status arm(std::chrono::nanoseconds first, std::chrono::nanoseconds period);
  int fd() const { return fd_.get(); }

 private:
  Timer(EventLoop& loop) : loop_(loop) {}
  EventLoop& loop_;
  UniqueFd fd_;
  std::function<void(uint64_t)> cb_;
};

}  // namespace qvm::event
