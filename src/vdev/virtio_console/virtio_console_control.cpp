// virtio-console MULTIPORT control queues (virtio 1.2 §5.3.6.2): messages from the driver on
// c_ovq (queue 3) and to the driver on c_ivq (queue 2). Every message is a struct
// virtio_console_control (id, event, value); PORT_NAME is followed by the name's bytes, RESIZE by
// struct virtio_console_resize (rows, cols).
#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "vdev/virtio_console/virtio_console.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"

namespace qvm::vdev {

void VirtioConsole::queue_control(uint32_t id, uint16_t event, uint16_t value,
                                  std::span<const uint8_t> extra) {
  if (control_.size() >= kMaxPendingControl) {
    virtio::log_guest_error(
        "virtio-console: %zu control messages wait for c_ivq buffers; event %u for port %u "
        "dropped",
        control_.size(), event, id);
    return;
  }
  const console::Control c{id, event, value};
  // SAFETY: the control header viewed as its 8 bytes.
  const auto* hdr = reinterpret_cast<const uint8_t*>(&c);
  std::vector<uint8_t> msg(hdr, hdr + sizeof c);
  msg.insert(msg.end(), extra.begin(), extra.end());
  control_.push_back(std::move(msg));
}

void VirtioConsole::drain_control() {
  virtio::Queue& q = queues_[kControlTransmitQueue];
  for (uint32_t n = 0; n < q.size(); ++n) {
    auto chain = q.next(*mem_);
    if (!chain) break;
    virtio::ChainReader r(*mem_, *chain);
    auto c = r.read_obj<console::Control>();
    if (c)
      handle_control(*c);
    else
      virtio::log_guest_error("virtio-console: control message %u shorter than 8 bytes",
                              chain->head);
    if (!q.add_used(*mem_, chain->head, 0)) break;
  }
  {
    std::lock_guard lk(mu_);
    if (q.needs_notification(*mem_) && irq_) irq_->signal_used(kControlTransmitQueue);
  }
  // Answers go out now if the driver has c_ivq buffers posted, else when it posts them.
  fill_control();
}

void VirtioConsole::handle_control(const console::Control& c) {
  uint32_t open_port = UINT32_MAX;  // a port whose buffered input may now flow
  {
    std::lock_guard lk(mu_);
    if (c.event == console::kDeviceReady) {
      // §5.3.6.2: the driver is ready; announce every port.
      if (c.value != 1) {
        virtio::log_guest_error("virtio-console: driver reports DEVICE_READY %u (failure)",
                                c.value);
        return;
      }
      for (uint32_t id = 0; id < ports_.size(); ++id) queue_control(id, console::kDeviceAdd, 0);
      return;
    }
    if (c.id >= ports_.size()) {
      virtio::log_guest_error("virtio-console: control event %u for port %u (max %zu)", c.event,
                              c.id, ports_.size());
      return;
    }
    PortState& p = ports_[c.id];
    switch (c.event) {
      case console::kPortReady:
        if (c.value != 1) {
          virtio::log_guest_error("virtio-console: driver could not add port %u", c.id);
          p.ready = false;
          return;
        }
        p.ready = true;
        if (c.id == 0) queue_control(0, console::kConsolePort, 1);
        if (!p.cfg.name.empty()) {
          // SAFETY: the name's characters viewed as bytes (no terminating NUL is sent).
          queue_control(
              c.id, console::kPortName, 1,
              std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.cfg.name.data()),
                                       p.cfg.name.size()));
        }
        if (p.cfg.host_connected) queue_control(c.id, console::kPortOpen, 1);
        return;
      case console::kPortOpen:
        p.open = c.value != 0;
        if (p.open && !p.rx.empty()) open_port = c.id;
        break;
      default:
        virtio::log_guest_error("virtio-console: unexpected control event %u from the driver",
                                c.event);
        return;
    }
  }
  // Under the transport lock already (process_queue): deliver directly.
  if (open_port != UINT32_MAX) fill_receive(open_port);
}

void VirtioConsole::fill_control() {
  virtio::Queue& q = queues_[kControlReceiveQueue];
  if (!q.ready()) return;
  for (uint32_t n = 0; n < q.size(); ++n) {
    std::vector<uint8_t> msg;
    {
      std::lock_guard lk(mu_);
      if (control_.empty()) break;
    }
    auto chain = q.next(*mem_);
    if (!chain) break;
    {
      std::lock_guard lk(mu_);
      if (!control_.empty()) {
        msg = std::move(control_.front());
        control_.pop_front();
      }
    }
    virtio::ChainWriter w(*mem_, *chain);
    uint32_t len = 0;
    if (w.remaining() < msg.size())
      virtio::log_guest_error(
          "virtio-console: c_ivq buffer %u holds %llu bytes, message needs %zu; dropped",
          chain->head, static_cast<unsigned long long>(w.remaining()), msg.size());
    else if (w.write_exact(msg))
      len = static_cast<uint32_t>(msg.size());
    if (!q.add_used(*mem_, chain->head, len)) break;
  }
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) irq_->signal_used(kControlReceiveQueue);
}

}  // namespace qvm::vdev
