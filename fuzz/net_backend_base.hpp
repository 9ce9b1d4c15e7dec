// What the virtio-net fuzz targets' backends share (virtio_net_tx's sink, virtio_net_rx's
// source): an eventfd as the poll fd, every offload supported, the link up, their counters.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "base/unique_fd.hpp"
#include "fuzz_input.hpp"
#include "net/backend.hpp"

namespace qvm::fuzz {

class FuzzBackend : public net::Backend {
 public:
  FuzzBackend() : efd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) { check(efd_.valid()); }
  net::Offloads supported_offloads() const override { return {true, true, true, true, true}; }
  Status set_rx_offloads(const net::Offloads&) override { return {}; }
  int poll_fd() const override { return efd_.get(); }
  bool link_up() const override { return true; }
  net::BackendStats stats() const override { return stats_; }

 protected:
  // Makes poll_fd() readable; drain() reads it back (true if it was).
  void signal() {
    uint64_t one = 1;
    check(::write(efd_.get(), &one, sizeof one) == sizeof one);
  }
  bool drain() {
    uint64_t v = 0;
    return ::read(efd_.get(), &v, sizeof v) == sizeof v;
  }
  UniqueFd efd_;
  net::BackendStats stats_;
};

}  // namespace qvm::fuzz
