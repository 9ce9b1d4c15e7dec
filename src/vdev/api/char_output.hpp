// The host side of a character device's output (ser8250 and virtio-console `hostdev`): a write
// never blocks its caller, which may be a vCPU thread (a guest's THR write) or the event loop.
// Bytes the host does not take at once wait in a bounded buffer that a timer on the event loop
// drains; beyond the buffer they are dropped and counted (as Firecracker's serial does), so a host
// that stops reading cannot hold a vCPU, and SIGQUIT always stops the VM.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "event/event_loop.hpp"

namespace qvm::vdev {

class CharOutput {
 public:
  static constexpr size_t kBufferBytes = 64 * 1024;
  static constexpr std::chrono::milliseconds kDrainPeriod{5};

  // `fd` (-1: output goes nowhere) stays owned by the caller. A pipe, FIFO or terminal is reopened
  // with O_NONBLOCK through /proc/self/fd, so qvm's own stdout keeps its flags for the shell;
  // sockets are written with MSG_DONTWAIT, regular files as they are. `loop` null (dryrun): no
  // drain timer, nothing is buffered.
  static Result<std::shared_ptr<CharOutput>> create(int fd, event::EventLoop* loop);

  // From any thread; never blocks.
  void write(std::span<const uint8_t> bytes);
  uint64_t dropped() const;
  size_t buffered() const;

 private:
  CharOutput() = default;
  // Writes what the host takes now; true when nothing is left. Under mu_.
  bool flush_locked();
  ssize_t put(const uint8_t* p, size_t n);

  int fd_ = -1;
  UniqueFd reopened_;
  bool socket_ = false;
  mutable std::mutex mu_;
  std::deque<uint8_t> pending_;
  uint64_t dropped_ = 0;
  std::unique_ptr<event::Timer> drain_;
  bool drain_armed_ = false;
};

}  // namespace qvm::vdev
