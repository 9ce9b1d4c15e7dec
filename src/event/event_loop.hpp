// A single-threaded epoll loop: callbacks on readable fds, periodic timers (timerfd), and
// signals (signalfd). Runs on qvm's main thread; device models are reached from it only through
// their own locks.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm::event {

class EventLoop {
 public:
  using Callback = std::function<void()>;
  static Result<EventLoop> create();

  Status add_fd(int fd, Callback on_readable);
  Status remove_fd(int fd);
  // Runs until stop() or until `timeout` passes without events (never if negative).
  Status run();
  void stop() { stopping_ = true; }
  bool stopping() const { return stopping_; }

 private:
  UniqueFd epfd_;
  std::map<int, std::shared_ptr<Callback>> cbs_;
  bool stopping_ = false;
};

// A timerfd that calls back on each expiry (missed expiries are coalesced and counted).
class Timer {
 public:
  static Result<std::unique_ptr<Timer>> create(EventLoop& loop,
                                               std::function<void(uint64_t expirations)> cb);
  ~Timer();
  Status arm(std::chrono::nanoseconds period);  // 0 disarms
  int fd() const { return fd_.get(); }

 private:
  Timer(EventLoop& loop) : loop_(loop) {}
  EventLoop& loop_;
  UniqueFd fd_;
  std::function<void(uint64_t)> cb_;
};

}  // namespace qvm::event
