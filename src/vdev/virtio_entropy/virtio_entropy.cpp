#include "vdev/virtio_entropy/virtio_entropy.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>

#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

VirtioEntropy::Source VirtioEntropy::getrandom_source() {
  return [](std::span<uint8_t> out) -> Status {
    size_t done = 0;
    // Bounded: each successful call returns at least one byte; EINTR retries are bounded too.
    for (int tries = 0; done < out.size() && tries < 64; ++tries) {
      ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::from_errno("getrandom", errno);
      }
      done += static_cast<size_t>(n);
    }
    if (done < out.size()) return make_error("getrandom: short read");
    return {};
  };
}

VirtioEntropy::VirtioEntropy(const Clock& clock, Options opts, Source source)
    : clock_(clock), opts_(opts), source_(std::move(source)) {
  tokens_ = static_cast<double>(opts_.rate_bytes_per_sec);
  last_refill_ = clock_.monotonic();
}

uint32_t VirtioEntropy::device_type() const {
  return virtio::kDeviceIdEntropy;
}

Status VirtioEntropy::activate(virtio::ActivationContext& ctx) {
  if (ctx.queues.size() != 1) return make_error("virtio-entropy has one queue");
  mem_ = &ctx.mem;
  queue_ = &ctx.queues[0];
  irq_ = &ctx.interrupt;
  return {};
}

void VirtioEntropy::reset() {
  mem_ = nullptr;
  queue_ = nullptr;
  irq_ = nullptr;
  retry_ns_.store(-1);
}

std::optional<std::chrono::nanoseconds> VirtioEntropy::retry_after() const {
  int64_t ns = retry_ns_.load();
  if (ns < 0) return std::nullopt;
  return std::chrono::nanoseconds(ns);
}

void VirtioEntropy::refill() {
  const auto now = clock_.monotonic();
  const double rate = static_cast<double>(opts_.rate_bytes_per_sec);
  if (now > last_refill_) {
    const double dt = std::chrono::duration<double>(now - last_refill_).count();
    tokens_ = std::min(rate, tokens_ + dt * rate);  // burst: one second's worth
  }
  last_refill_ = now;
}

void VirtioEntropy::process_queue(uint16_t index) {
  retry_ns_.store(-1);
  if (index != 0 || !queue_ || !mem_) return;
  const bool limited = opts_.rate_bytes_per_sec != 0;
  std::array<uint8_t, 512> buf;
  // At most one pass over the ring per notification: pop() never yields more than `size`
  // chains before the ring is empty again.
  for (uint32_t n = 0; n < queue_->size(); ++n) {
    if (limited) {
      refill();
      if (tokens_ < 1.0) {
        // Time until one whole byte is available.
        const double wait_s = (1.0 - tokens_) / static_cast<double>(opts_.rate_bytes_per_sec);
        retry_ns_.store(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait_s * 1e9))));
        // Only if something is actually waiting.
        auto chain = queue_->next(*mem_);
        if (chain)
          queue_->undo_pop();
        else
          retry_ns_.store(-1);
        break;
      }
    }
    auto chain = queue_->next(*mem_);
    if (!chain) break;
    virtio::ChainWriter w(*mem_, *chain);
    uint64_t want = w.remaining();
    if (limited) want = std::min<uint64_t>(want, static_cast<uint64_t>(tokens_));
    while (want > 0) {
      const size_t n_bytes = static_cast<size_t>(std::min<uint64_t>(want, buf.size()));
      std::span<uint8_t> piece(buf.data(), n_bytes);
      if (auto s = source_(piece); !s) {
        virtio::log_guest_error("virtio-entropy: %s", s.error().message.c_str());
        break;
      }
      auto wrote = w.write(piece);
      if (!wrote || *wrote == 0) break;
      want -= *wrote;
    }
    const uint32_t written = w.bytes_written();
    if (limited) tokens_ -= written;
    served_ += written;
    (void)queue_->add_used(*mem_, chain->head, written);
  }
  // Malformed chains completed by next() count as used entries too.
  if (queue_->needs_notification(*mem_)) irq_->signal_used(0);
}

}  // namespace qvm::vdev
