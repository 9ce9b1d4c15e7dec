// Shared helpers for the network tests: a virtio-net device on MockDriver queues over a
// socketpair backend, frame builders, and a pump for backends.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "net/backend.hpp"
#include "net/vnet_hdr.hpp"
#include "vdev/virtio_net/virtio_net.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::net::testing {

using virtio::testing::MockDriver;
using Seg = MockDriver::Seg;

struct NetInterrupt final : public virtio::VirtioInterrupt {
  int used[2] = {0, 0};
  int config = 0;
  void signal_used(uint16_t q) override { ++used[q & 1]; }
  void signal_config() override { ++config; }
};

inline std::vector<uint8_t> eth_frame(size_t len, uint8_t seed) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed + i * 3);
  std::memset(f.data(), 0xff, 6);  // broadcast destination
  f[12] = 0x88;                    // local experimental ethertype 0x88b5
  f[13] = 0xb5;
  return f;
}

inline std::vector<uint8_t> with_hdr(const VnetHdr& h, const std::vector<uint8_t>& f,
                                     size_t hdr_len = kVnetHdrLen) {
  std::vector<uint8_t> v(hdr_len);
  std::memcpy(v.data(), &h, hdr_len);
  v.insert(v.end(), f.begin(), f.end());
  return v;
}

inline size_t count_fds() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

inline bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// Services backends until `done()` or `timeout`; received frames are appended to `rx[i]`.
inline bool pump(std::vector<Backend*> bs, std::vector<std::vector<std::vector<uint8_t>>>& rx,
                 const std::function<bool()>& done,
                 std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
  rx.resize(bs.size());
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::vector<pollfd> p;
    for (auto* b : bs) p.push_back({b->poll_fd(), POLLIN, 0});
    (void)::poll(p.data(), p.size(), 5);
    for (size_t i = 0; i < bs.size(); ++i) {
      auto r = bs[i]->service();
      if (!r.rx_ready) continue;
      for (int k = 0; k < 64; ++k) {
        std::vector<uint8_t> buf(kVnetHdrLen + kMaxFrame);
        iovec v{buf.data(), buf.size()};
        auto n = bs[i]->receive(std::span<const iovec>(&v, 1));
        if (!n || *n == 0) break;
        buf.resize(*n);
        rx[i].push_back(std::move(buf));
      }
    }
  }
  return true;
}

inline SendResult send_bytes(Backend& b, const std::vector<uint8_t>& v) {
  iovec io{const_cast<uint8_t*>(v.data()), v.size()};
  auto r = b.send(std::span<const iovec>(&io, 1));
  return r.ok() ? *r : SendResult::kDropped;
}

}  // namespace qvm::net::testing
