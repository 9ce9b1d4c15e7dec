// A backend over one connected, message-preserving fd (a TAP queue, a seqpacket or datagram
// socket): one readv/writev per frame. Link up until the fd hangs up. TapBackend builds on it;
// tests and the fuzzer use it over a socketpair.
#pragma once

#include <memory>

#include "base/unique_fd.hpp"
#include "net/backend.hpp"
#include "net/poller.hpp"

namespace qvm::net {

class FdBackend : public Backend {
 public:
  // `fd` is made non-blocking. `offloads`: what the other end of the fd handles.
  static Result<std::unique_ptr<FdBackend>> create(UniqueFd fd, Offloads offloads,
                                                   std::string description);

  std::string describe() const override { return description_; }
  Offloads supported_offloads() const override { return supported_; }
  Status set_rx_offloads(const Offloads& o) override;
  Result<SendResult> send(std::span<const iovec> iov) override;
  Result<size_t> receive(std::span<const iovec> iov) override;
  int poll_fd() const override { return poller_.fd(); }
  ServiceResult service() override;
  void set_rx_enabled(bool on) override;
  bool rx_enabled() const override { return rx_enabled_; }
  bool link_up() const override { return up_; }
  BackendStats stats() const override { return stats_; }

  int data_fd() const { return fd_.get(); }
  Offloads rx_offloads() const { return rx_offloads_; }

 protected:
  FdBackend(UniqueFd fd, Poller poller, Offloads offloads, std::string description)
      : fd_(std::move(fd)),
        poller_(std::move(poller)),
        supported_(offloads),
        description_(std::move(description)) {}
  Status init();
  // Hook for subclasses: apply rx offloads to the fd (TUNSETOFFLOAD).
  virtual Status apply_rx_offloads(const Offloads&) { return {}; }
  void update_interest();
  void go_down();

  UniqueFd fd_;
  Poller poller_;
  Offloads supported_;
  Offloads rx_offloads_;
  std::string description_;
  BackendStats stats_;
  bool up_ = true;
  bool rx_enabled_ = false;
  bool want_out_ = false;
  bool link_reported_ = true;
  bool hup_seen_ = false;
  bool is_socket_ = false;
};

// Whether a frame's header uses only offloads in `allowed`.
bool frame_offloads_allowed(const VnetHdr& h, const Offloads& allowed);
// The virtio-net header at the start of a frame spread over `iov` (zeros where it is short).
VnetHdr header_of(std::span<const iovec> iov);
// Offloads made consistent (virtio 1.2 §5.1.3.1, TUNSETOFFLOAD): TSO/UFO need csum, ECN needs TSO.
Offloads normalized(Offloads o);

// One-frame I/O shared by the fd-based backends.
enum class RecvStatus { kFrame, kNone, kEof };
struct RecvOne {
  RecvStatus status = RecvStatus::kNone;
  size_t len = 0;
};
// Reads frames until one passes the checks (length, truncation, offloads in `allowed`), at most a
// few per call; the others are counted in rx_dropped.
Result<RecvOne> recv_frame(int fd, bool is_socket, std::span<const iovec> iov,
                           const Offloads& allowed, BackendStats& st);
// Writes one frame (MSG_NOSIGNAL on sockets). Errors other than EAGAIN drop the frame (counted).
SendResult send_frame(int fd, bool is_socket, std::span<const iovec> iov, BackendStats& st);

}  // namespace qvm::net
