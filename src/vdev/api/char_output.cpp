#include "vdev/api/char_output.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace qvm::vdev {

Result<std::shared_ptr<CharOutput>> CharOutput::create(int fd, event::EventLoop* loop) {
  std::shared_ptr<CharOutput> out(new CharOutput());
  out->fd_ = fd;
  if (fd < 0) return out;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::from_errno("fstat of a hostdev output", errno);
  out->socket_ = S_ISSOCK(st.st_mode);
  int ptn = 0;
  if (S_ISCHR(st.st_mode) && ::ioctl(fd, TIOCGPTN, &ptn) == 0) {
    // A pseudo-terminal master qvm created (`hostdev pty`): reopening its path would make a new
    // terminal, and the description is qvm's own anyway.
    if (int fl = ::fcntl(fd, F_GETFL); fl >= 0) (void)::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  } else if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
    // A new open file description of the same pipe or terminal, non-blocking; the original
    // (perhaps the shell's terminal) keeps its flags.
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    UniqueFd r(::open(self.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (r) {
      out->fd_ = r.get();
      out->reopened_ = std::move(r);
    } else if (int fl = ::fcntl(fd, F_GETFL); fl >= 0 && !(fl & O_NONBLOCK)) {
      // Not reopenable (an anonymous pipe of another user?): this fd is qvm's own then.
      (void)::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
  }
  if (loop) {
    CharOutput* raw = out.get();
    out->drain_ = QVM_TRY(event::Timer::create(*loop, [raw](uint64_t) {
      std::lock_guard lk(raw->mu_);
      if (raw->flush_locked()) {
        (void)raw->drain_->arm(std::chrono::nanoseconds(0));
        raw->drain_armed_ = false;
      }
    }));
  }
  return out;
}

ssize_t CharOutput::put(const uint8_t* p, size_t n) {
  for (;;) {
    ssize_t r = socket_ ? ::send(fd_, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : ::write(fd_, p, n);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

bool CharOutput::flush_locked() {
  uint8_t chunk[4096];
  while (!pending_.empty()) {
    const size_t n = std::min(pending_.size(), sizeof chunk);
    std::copy_n(pending_.begin(), n, chunk);
    const ssize_t r = put(chunk, n);
    if (r <= 0) {
      if (r < 0 && errno == EAGAIN) return false;
      // The host end is gone (EPIPE, EIO): what waits is lost.
      dropped_ += pending_.size();
      pending_.clear();
      return true;
    }
    pending_.erase(pending_.begin(), pending_.begin() + r);
  }
  return true;
}

void CharOutput::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0 || bytes.empty()) return;
  std::lock_guard lk(mu_);
  size_t done = 0;
  if (pending_.empty()) {  // keep the order: nothing may overtake what waits
    while (done < bytes.size()) {
      const ssize_t r = put(bytes.data() + done, bytes.size() - done);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) break;
        dropped_ += bytes.size() - done;  // the host end is gone
        return;
      }
      done += static_cast<size_t>(r);
    }
  }
  if (done == bytes.size()) return;
  const size_t room = drain_ ? kBufferBytes - std::min(kBufferBytes, pending_.size()) : 0;
  const size_t keep = std::min(room, bytes.size() - done);
  pending_.insert(pending_.end(), bytes.begin() + static_cast<ptrdiff_t>(done),
                  bytes.begin() + static_cast<ptrdiff_t>(done + keep));
  dropped_ += bytes.size() - done - keep;
  if (drain_ && !pending_.empty() && !drain_armed_) {
    drain_armed_ = drain_->arm(kDrainPeriod).ok();  // timerfd_settime: any thread
  }
}

uint64_t CharOutput::dropped() const {
  std::lock_guard lk(mu_);
  return dropped_;
}

size_t CharOutput::buffered() const {
  std::lock_guard lk(mu_);
  return pending_.size();
}

}  // namespace qvm::vdev
