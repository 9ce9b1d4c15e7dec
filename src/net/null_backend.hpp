// A backend with no other end (virtio-net without `peer` or `tapdev`): the link is down, frames
// from the guest are dropped (counted), nothing is ever received.
#pragma once

#include <memory>

#include "net/backend.hpp"
#include "net/poller.hpp"

namespace qvm::net {

class NullBackend final : public Backend {
 public:
  static Result<std::unique_ptr<NullBackend>> create() {
    Poller p = QVM_TRY(Poller::create());
    return std::unique_ptr<NullBackend>(new NullBackend(std::move(p)));
  }
  std::string describe() const override { return "none"; }
  Offloads supported_offloads() const override { return {}; }
  Status set_rx_offloads(const Offloads&) override { return {}; }
  Result<SendResult> send(std::span<const iovec>) override {
    ++stats_.tx_dropped;
    return SendResult::kDropped;
  }
  Result<size_t> receive(std::span<const iovec>) override { return size_t{0}; }
  int poll_fd() const override { return poller_.fd(); }
  ServiceResult service() override { return {}; }
  void set_rx_enabled(bool) override {}
  bool rx_enabled() const override { return false; }
  bool link_up() const override { return false; }
  BackendStats stats() const override { return stats_; }

 private:
  explicit NullBackend(Poller p) : poller_(std::move(p)) {}
  Poller poller_;
  BackendStats stats_;
};

}  // namespace qvm::net
