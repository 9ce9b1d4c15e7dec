// virtio-console (virtio 1.2 §5.3), port 0 only. See the header for the host-side contract.
#include "vdev/virtio_console/virtio_console.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

using virtio::feature_bit;

VirtioConsole::VirtioConsole(Options opts, Hooks hooks)
    : opts_(opts), hooks_(std::move(hooks)), cols_(opts.cols), rows_(opts.rows) {}

uint32_t VirtioConsole::device_type() const {
  return virtio::kDeviceIdConsole;
}

uint64_t VirtioConsole::device_features() const {
  return feature_bit(console::kFeatureSize) | feature_bit(console::kFeatureEmergWrite);
}

void VirtioConsole::read_config(uint32_t offset, std::span<uint8_t> data) const {
  console::Config c{};
  {
    std::lock_guard lk(mu_);
    c.cols = cols_;
    c.rows = rows_;
  }
  c.max_nr_ports = 1;  // meaningful only with MULTIPORT (§5.3.4)
  uint8_t raw[sizeof c];
  std::memcpy(raw, &c, sizeof c);
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t o = size_t{offset} + i;
    data[i] = o < sizeof raw ? raw[o] : 0;
  }
}

void VirtioConsole::write_config(uint32_t offset, std::span<const uint8_t> data) {
  // §5.3.4: writing emerg_wr emits its low byte on port 0; everything else is read-only.
  if (offset == offsetof(console::Config, emerg_wr) && !data.empty() && hooks_.output)
    hooks_.output(data.first(1));
}

uint32_t VirtioConsole::config_generation() const {
  std::lock_guard lk(mu_);
  return generation_;
}

Status VirtioConsole::activate(virtio::ActivationContext& ctx) {
  if (ctx.queues.size() != 2) return make_error("virtio-console has two queues");
  mem_ = &ctx.mem;
  queues_ = ctx.queues.data();
  std::lock_guard lk(mu_);
  irq_ = &ctx.interrupt;
  return {};
}

void VirtioConsole::reset() {
  mem_ = nullptr;
  queues_ = nullptr;
  std::lock_guard lk(mu_);
  irq_ = nullptr;
  // Buffered input is kept: it was typed for whoever reads the console next.
}

size_t VirtioConsole::receive(std::span<const uint8_t> bytes) {
  size_t take;
  {
    std::lock_guard lk(mu_);
    const size_t room = opts_.max_buffered > rx_.size() ? opts_.max_buffered - rx_.size() : 0;
    take = std::min(room, bytes.size());
    rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    if (take < bytes.size()) refused_ = true;
  }
  if (take > 0 && hooks_.kick) hooks_.kick();
  return take;
}

size_t VirtioConsole::buffered() const {
  std::lock_guard lk(mu_);
  return rx_.size();
}

void VirtioConsole::resize(uint16_t cols, uint16_t rows) {
  std::lock_guard lk(mu_);
  if (cols == cols_ && rows == rows_) return;
  cols_ = cols;
  rows_ = rows;
  ++generation_;
  // §5.3.6: a size change is announced with a configuration change notification.
  if (irq_) irq_->signal_config();
}

void VirtioConsole::process_queue(uint16_t index) {
  if (!mem_ || !queues_) return;
  if (index == kReceiveQueue) fill_receive();
  if (index == kTransmitQueue) drain_transmit();
}

void VirtioConsole::fill_receive() {
  virtio::Queue& q = queues_[kReceiveQueue];
  std::array<uint8_t, 1024> chunk;
  bool space_again = false;
  // At most one pass over the ring; each chain gets as many buffered bytes as it holds.
  for (uint32_t n = 0; n < q.size(); ++n) {
    {
      std::lock_guard lk(mu_);
      if (rx_.empty()) break;
    }
    auto chain = q.next(*mem_);
    if (!chain) break;
    virtio::ChainWriter w(*mem_, *chain);
    while (w.remaining() > 0) {
      size_t len;
      {
        std::lock_guard lk(mu_);
        len = std::min({rx_.size(), chunk.size(), static_cast<size_t>(w.remaining())});
        std::copy_n(rx_.begin(), len, chunk.begin());
      }
      if (len == 0) break;
      auto wrote = w.write(std::span<const uint8_t>(chunk.data(), len));
      if (!wrote || *wrote == 0) break;
      std::lock_guard lk(mu_);
      rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(*wrote));
    }
    if (w.bytes_written() == 0)
      virtio::log_guest_error("virtio-console: receive buffer %u has no writable bytes",
                              chain->head);
    if (!q.add_used(*mem_, chain->head, w.bytes_written())) break;
  }
  {
    std::lock_guard lk(mu_);
    if (refused_ && rx_.size() < opts_.max_buffered) {
      refused_ = false;
      space_again = true;
    }
    if (q.needs_notification(*mem_) && irq_) irq_->signal_used(kReceiveQueue);
  }
  if (space_again && hooks_.rx_space) hooks_.rx_space();
}

void VirtioConsole::drain_transmit() {
  virtio::Queue& q = queues_[kTransmitQueue];
  std::array<uint8_t, 4096> chunk;
  for (uint32_t n = 0; n < q.size(); ++n) {
    auto chain = q.next(*mem_);
    if (!chain) break;
    virtio::ChainReader r(*mem_, *chain);
    while (r.remaining() > 0) {
      auto got = r.read(chunk);
      if (!got || *got == 0) break;
      if (hooks_.output) hooks_.output(std::span<const uint8_t>(chunk.data(), *got));
    }
    // §5.3.6.2: transmit buffers are returned with nothing written.
    if (!q.add_used(*mem_, chain->head, 0)) break;
  }
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) irq_->signal_used(kTransmitQueue);
}

}  // namespace qvm::vdev
