// virtio-console (virtio 1.2 §5.3): configuration space, activation and the per-port data
// queues. The MULTIPORT control queues are in virtio_console_control.cpp. See the header for the
// host-side contract.
#include "vdev/virtio_console/virtio_console.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/log.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

using virtio::feature_bit;

VirtioConsole::VirtioConsole(Options opts, Hooks hooks)
    : VirtioConsole(opts,
                    [kick = std::move(hooks.kick)](uint16_t q) {
                      if (kick && q == kReceiveQueue) kick();
                    },
                    {Port{{}, std::move(hooks.output), std::move(hooks.rx_space), true}}) {}

VirtioConsole::VirtioConsole(Options opts, std::function<void(uint16_t)> kick,
                             std::vector<Port> ports)
    : opts_(opts), kick_(std::move(kick)), cols_(opts.cols), rows_(opts.rows) {
  if (ports.empty()) ports.emplace_back();
  if (ports.size() > kMaxPorts) ports.resize(kMaxPorts);
  for (auto& p : ports) {
    if (p.name.size() > kMaxNameBytes) p.name.resize(kMaxNameBytes);
    ports_.push_back(PortState{std::move(p), {}, false, false, false});
  }
  // §5.3.2: receiveq/transmitq of port 0, then (MULTIPORT) the control pair and the other ports.
  const size_t nq = ports_.size() == 1 ? 2 : 2 * (ports_.size() + 1);
  queue_sizes_.assign(nq, kQueueSize);
}

uint32_t VirtioConsole::device_type() const {
  return virtio::kDeviceIdConsole;
}

uint64_t VirtioConsole::device_features() const {
  uint64_t f = feature_bit(console::kFeatureSize) | feature_bit(console::kFeatureEmergWrite);
  if (ports_.size() > 1) f |= feature_bit(console::kFeatureMultiport);
  return f;
}

void VirtioConsole::read_config(uint32_t offset, std::span<uint8_t> data) const {
  console::Config c{};
  {
    std::lock_guard lk(mu_);
    c.cols = cols_;
    c.rows = rows_;
  }
  c.max_nr_ports = static_cast<uint32_t>(ports_.size());  // read with MULTIPORT (§5.3.4)
  uint8_t raw[sizeof c];
  std::memcpy(raw, &c, sizeof c);
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t o = size_t{offset} + i;
    data[i] = o < sizeof raw ? raw[o] : 0;
  }
}

void VirtioConsole::write_config(uint32_t offset, std::span<const uint8_t> data) {
  // §5.3.4: writing emerg_wr emits its low byte on port 0; everything else is read-only.
  if (offset == offsetof(console::Config, emerg_wr) && !data.empty() && ports_[0].cfg.output)
    ports_[0].cfg.output(data.first(1));
}

uint32_t VirtioConsole::config_generation() const {
  std::lock_guard lk(mu_);
  return generation_;
}

Status VirtioConsole::activate(virtio::ActivationContext& ctx) {
  if (ctx.queues.size() != queue_sizes_.size())
    return make_error(strprintf("virtio-console: %zu queues, expected %zu", ctx.queues.size(),
                                queue_sizes_.size()));
  mem_ = &ctx.mem;
  queues_ = ctx.queues.data();
  num_queues_ = ctx.queues.size();
  multiport_ = ports_.size() > 1 && (ctx.features & feature_bit(console::kFeatureMultiport));
  std::lock_guard lk(mu_);
  irq_ = &ctx.interrupt;
  return {};
}

void VirtioConsole::reset() {
  mem_ = nullptr;
  queues_ = nullptr;
  num_queues_ = 0;
  multiport_ = false;
  std::lock_guard lk(mu_);
  irq_ = nullptr;
  // Buffered input is kept: it was typed for whoever reads the port next. The driver must
  // announce itself and its ports again (DEVICE_READY, PORT_READY, PORT_OPEN).
  control_.clear();
  for (auto& p : ports_) p.ready = p.open = false;
}

size_t VirtioConsole::receive(std::span<const uint8_t> bytes, uint32_t port) {
  if (port >= ports_.size()) return 0;
  size_t take;
  {
    std::lock_guard lk(mu_);
    auto& p = ports_[port];
    const size_t room = opts_.max_buffered > p.rx.size() ? opts_.max_buffered - p.rx.size() : 0;
    take = std::min(room, bytes.size());
    p.rx.insert(p.rx.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(take));
    if (take < bytes.size()) p.refused = true;
  }
  if (take > 0 && kick_) kick_(receive_queue(port));
  return take;
}

size_t VirtioConsole::buffered(uint32_t port) const {
  std::lock_guard lk(mu_);
  return port < ports_.size() ? ports_[port].rx.size() : 0;
}

bool VirtioConsole::guest_open(uint32_t port) const {
  std::lock_guard lk(mu_);
  return port == 0 || (port < ports_.size() && ports_[port].open);
}

void VirtioConsole::resize(uint16_t cols, uint16_t rows) {
  bool kick = false;
  {
    std::lock_guard lk(mu_);
    if (cols == cols_ && rows == rows_) return;
    cols_ = cols;
    rows_ = rows;
    ++generation_;
    // §5.3.6: a size change is announced with a configuration change notification; with
    // MULTIPORT the console port also gets a RESIZE control message (rows, then cols).
    if (irq_) irq_->signal_config();
    if (ports_.size() > 1 && ports_[0].ready) {
      const uint16_t sz[2] = {rows, cols};
      // SAFETY: two uint16_t viewed as their 4 bytes.
      queue_control(0, console::kResize, 0,
                    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(sz), sizeof sz));
      kick = true;
    }
  }
  if (kick && kick_) kick_(kControlReceiveQueue);
}

void VirtioConsole::process_queue(uint16_t index) {
  if (!mem_ || !queues_ || index >= num_queues_) return;
  if (index == kReceiveQueue) return fill_receive(0);
  if (index == kTransmitQueue) return drain_transmit(0);
  if (!multiport_) return;  // §5.3.6: without MULTIPORT only port 0's queues exist
  if (index == kControlReceiveQueue) return fill_control();
  if (index == kControlTransmitQueue) return drain_control();
  const uint32_t port = (index - 2u) / 2u;
  if (index % 2 == 0)
    fill_receive(port);
  else
    drain_transmit(port);
}

void VirtioConsole::fill_receive(uint32_t port) {
  virtio::Queue& q = queues_[receive_queue(port)];
  PortState& p = ports_[port];
  std::array<uint8_t, 1024> chunk;
  bool space_again = false;
  // At most one pass over the ring; each chain gets as many buffered bytes as it holds.
  for (uint32_t n = 0; n < q.size(); ++n) {
    {
      std::lock_guard lk(mu_);
      // Ports other than the console wait for a guest program to open them.
      if (p.rx.empty() || (port != 0 && !p.open)) break;
    }
    auto chain = q.next(*mem_);
    if (!chain) break;
    virtio::ChainWriter w(*mem_, *chain);
    while (w.remaining() > 0) {
      size_t len;
      {
        std::lock_guard lk(mu_);
        len = std::min({p.rx.size(), chunk.size(), static_cast<size_t>(w.remaining())});
        std::copy_n(p.rx.begin(), len, chunk.begin());
      }
      if (len == 0) break;
      auto wrote = w.write(std::span<const uint8_t>(chunk.data(), len));
      if (!wrote || *wrote == 0) break;
      std::lock_guard lk(mu_);
      p.rx.erase(p.rx.begin(), p.rx.begin() + static_cast<std::ptrdiff_t>(*wrote));
    }
    if (w.bytes_written() == 0)
      virtio::log_guest_error("virtio-console: port %u receive buffer %u has no writable bytes",
                              port, chain->head);
    if (!q.add_used(*mem_, chain->head, w.bytes_written())) break;
  }
  {
    std::lock_guard lk(mu_);
    if (p.refused && p.rx.size() < opts_.max_buffered) {
      p.refused = false;
      space_again = true;
    }
    if (q.needs_notification(*mem_) && irq_) irq_->signal_used(receive_queue(port));
  }
  if (space_again && p.cfg.rx_space) p.cfg.rx_space();
}

void VirtioConsole::drain_transmit(uint32_t port) {
  virtio::Queue& q = queues_[transmit_queue(port)];
  const auto& out = ports_[port].cfg.output;
  std::array<uint8_t, 4096> chunk;
  for (uint32_t n = 0; n < q.size(); ++n) {
    auto chain = q.next(*mem_);
    if (!chain) break;
    virtio::ChainReader r(*mem_, *chain);
    while (r.remaining() > 0) {
      auto got = r.read(chunk);
      if (!got || *got == 0) break;
      if (out) out(std::span<const uint8_t>(chunk.data(), *got));
    }
    // §5.3.6.2: transmit buffers are returned with nothing written.
    if (!q.add_used(*mem_, chain->head, 0)) break;
  }
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) irq_->signal_used(transmit_queue(port));
}

}  // namespace qvm::vdev
