// EventLoop: fd callbacks, timers, and the adaptive busy poll (add_poller) that virtio-blk's
// io_uring engine uses.
#include "event/event_loop.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <functional>

#include "base/log.hpp"
#include "base/unique_fd.hpp"

namespace qvm::event {
namespace {

using namespace std::chrono_literals;

// An eventfd that is readable once (count 1) and a callback that drains it then calls `then`.
struct OneEvent {
  UniqueFd fd{::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK)};
  Status watch(EventLoop& loop, std::function<void()> then = {}) {
    const int f = fd.get();
    return loop.add_fd(f, [f, then] {
      uint64_t v = 0;
      (void)!::read(f, &v, sizeof v);
      if (then) then();
    });
  }
};

TEST(EventLoop, CallsBackOnReadableFdAndStops) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  OneEvent ev;
  ASSERT_TRUE(ev.fd);
  int calls = 0;
  ASSERT_TRUE(ev.watch(*loop, [&] {
                  ++calls;
                  loop->stop();
                }).ok());
  ASSERT_TRUE(loop->run().ok());
  EXPECT_EQ(calls, 1);
}

// A poller that finds work keeps the loop awake with no fd becoming readable: the later calls
// happen only because the window is open.
TEST(EventLoop, PollerThatFindsWorkIsCalledAgainWithoutEvents) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  OneEvent ev;  // one event to start the loop
  ASSERT_TRUE(ev.fd);
  ASSERT_TRUE(ev.watch(*loop).ok());
  int calls = 0;
  loop->add_poller(
      [&] {
        ++calls;
        if (calls == 5) loop->stop();
        return true;
      },
      std::chrono::nanoseconds(50ms));
  ASSERT_TRUE(loop->run().ok());
  EXPECT_EQ(calls, 5);
}

// A poller that finds nothing does not spin: it runs once per batch of events, and the loop
// sleeps in between (the timer fires every 2 ms; 10 expiries = 10 batches).
TEST(EventLoop, IdlePollerRunsOncePerEventBatch) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  int ticks = 0;
  auto timer = Timer::create(*loop, [&](uint64_t n) {
    ticks += static_cast<int>(n);
    if (ticks >= 10) loop->stop();
  });
  ASSERT_TRUE(timer.ok());
  ASSERT_TRUE((*timer)->arm(2ms).ok());
  int calls = 0;
  loop->add_poller(
      [&] {
        ++calls;
        return false;
      },
      std::chrono::nanoseconds(1s));
  ASSERT_TRUE(loop->run().ok());
  EXPECT_GE(calls, 1);
  EXPECT_LE(calls, 10);
}

// After the last find the window closes and the loop goes back to sleep: the poller finds work
// twice, then never again; over the next 20 ms only the timer's batches call it.
TEST(EventLoop, WindowClosesAfterLastFind) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  int ticks = 0;
  auto timer = Timer::create(*loop, [&](uint64_t n) {
    ticks += static_cast<int>(n);
    if (ticks >= 10) loop->stop();
  });
  ASSERT_TRUE(timer.ok());
  ASSERT_TRUE((*timer)->arm(2ms).ok());
  int calls = 0, after_window = 0;
  auto last_find = std::chrono::steady_clock::now();
  loop->add_poller(
      [&] {
        ++calls;
        if (calls <= 2) {
          last_find = std::chrono::steady_clock::now();
          return true;
        }
        if (std::chrono::steady_clock::now() - last_find > 5ms) ++after_window;
        return false;
      },
      std::chrono::nanoseconds(100us));
  ASSERT_TRUE(loop->run().ok());
  EXPECT_GT(calls, 2);
  EXPECT_LE(after_window, 10);  // at most one per timer batch once the window has closed
}

TEST(EventLoop, ZeroWindowRegistersNoPoller) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  OneEvent ev;
  ASSERT_TRUE(ev.fd);
  ASSERT_TRUE(ev.watch(*loop, [&] { loop->stop(); }).ok());
  int calls = 0;
  loop->add_poller(
      [&] {
        ++calls;
        return true;
      },
      std::chrono::nanoseconds(0));
  ASSERT_TRUE(loop->run().ok());
  EXPECT_EQ(calls, 0);
}

// A callback registered inside a vdev's log scope (`vdev ... log`) runs in it.
TEST(EventLoop, CallbacksKeepTheirLogScope) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  Logger own("qvm");
  Logger* seen = &own;
  Logger* seen_plain = &own;
  OneEvent scoped, plain;
  int ran = 0;
  {
    LogScope s(&own);
    ASSERT_TRUE(scoped
                    .watch(*loop,
                           [&] {
                             seen = LogScope::active();
                             if (++ran == 2) loop->stop();
                           })
                    .ok());
  }
  ASSERT_TRUE(plain
                  .watch(*loop,
                         [&] {
                           seen_plain = LogScope::active();
                           if (++ran == 2) loop->stop();
                         })
                  .ok());
  seen = nullptr;
  ASSERT_TRUE(loop->run().ok());
  EXPECT_EQ(seen, &own);
  EXPECT_EQ(seen_plain, nullptr);
}

}  // namespace
}  // namespace qvm::event
