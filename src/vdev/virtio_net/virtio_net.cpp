// virtio-net (virtio 1.2 §5.1): features, configuration space, activation, transmit path and the
// event-loop side. The receive path is in virtio_net_rx.cpp. See the header for the contract.
#include "vdev/virtio_net/virtio_net.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"
#include "net/fd_backend.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

using virtio::feature_bit;
using namespace net_dev;

namespace {
enum Tag : uint64_t { kBackendTag = 1, kKickTag = 2, kCallTag0 = 3 };  // + queue index

bool has(uint64_t f, uint32_t bit) {
  return (f & feature_bit(bit)) != 0;
}
}  // namespace

Result<std::shared_ptr<VirtioNet>> VirtioNet::create(Options o, std::unique_ptr<net::Backend> be,
                                                     std::unique_ptr<net::VhostNet> vhost) {
  if (!be) return make_error("virtio-net needs a backend");
  if (o.mtu < 68) return make_error("virtio-net mtu must be at least 68");
  if (o.peerfeats && (*o.peerfeats & ~kPeerfeatsMask))
    return make_error("virtio-net peerfeats has bits outside 0x7fc3");
  net::Poller p = QVM_TRY(net::Poller::create());
  UniqueFd kfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!kfd) return Error::from_errno("eventfd", errno);
  QVM_TRY(p.add(be->poll_fd(), EPOLLIN, kBackendTag));
  QVM_TRY(p.add(kfd.get(), EPOLLIN, kKickTag));
  be->set_rx_enabled(false);
  QVM_TRY(be->set_rx_offloads({}));
  std::shared_ptr<VirtioNet> d(
      new VirtioNet(std::move(o), std::move(be), std::move(p), std::move(kfd)));
  d->compute_features();
  d->link_ = d->backend_->link_up();
  d->mac_ = d->opts_.mac;
  if (vhost) {
    for (uint16_t q = 0; q < 2; ++q) {
      d->call_fds_[q].reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!d->call_fds_[q]) return Error::from_errno("eventfd", errno);
      QVM_TRY(d->poller_.add(d->call_fds_[q].get(), EPOLLIN, kCallTag0 + q));
    }
    d->vhost_ = std::move(vhost);
  }
  return d;
}

VirtioNet::VirtioNet(Options o, std::unique_ptr<net::Backend> be, net::Poller p, UniqueFd kick_fd)
    : opts_(std::move(o)),
      poller_(std::move(p)),
      kick_fd_(std::move(kick_fd)),
      backend_(std::move(be)) {}

VirtioNet::~VirtioNet() = default;

void VirtioNet::compute_features() {
  const net::Offloads s = backend_->supported_offloads();
  uint64_t off = 0;
  if (s.csum) off |= feature_bit(kCsum) | feature_bit(kGuestCsum);
  if (s.tso4) off |= feature_bit(kHostTso4) | feature_bit(kGuestTso4);
  if (s.tso6) off |= feature_bit(kHostTso6) | feature_bit(kGuestTso6);
  if (s.ecn) off |= feature_bit(kHostEcn) | feature_bit(kGuestEcn);
  if (s.ufo) off |= feature_bit(kHostUfo) | feature_bit(kGuestUfo);
  if (opts_.peerfeats) off &= *opts_.peerfeats;
  // Dependencies (§5.1.3.1): TSO/UFO need the checksum feature of their direction, ECN needs TSO.
  if (!has(off, kCsum))
    off &= ~(feature_bit(kHostTso4) | feature_bit(kHostTso6) | feature_bit(kHostUfo));
  if (!has(off, kGuestCsum))
    off &= ~(feature_bit(kGuestTso4) | feature_bit(kGuestTso6) | feature_bit(kGuestUfo));
  if (!has(off, kHostTso4) && !has(off, kHostTso6)) off &= ~feature_bit(kHostEcn);
  if (!has(off, kGuestTso4) && !has(off, kGuestTso6)) off &= ~feature_bit(kGuestEcn);
  features_ = off | feature_bit(kMac) | feature_bit(kStatus) | feature_bit(kMrgRxbuf);
  // §5.1.6.5: the control queue and the commands it takes (all depend on _CTRL_VQ, §5.1.3.1).
  features_ |= feature_bit(kCtrlVq) | feature_bit(kCtrlRx) | feature_bit(kCtrlRxExtra) |
               feature_bit(kCtrlMacAddr) | feature_bit(kCtrlGuestOffloads);
  if (opts_.offer_mtu) features_ |= feature_bit(kMtu);
}

uint32_t VirtioNet::device_type() const {
  return virtio::kDeviceIdNet;
}

void VirtioNet::read_config(uint32_t offset, std::span<uint8_t> data) const {
  Config c{};
  {
    std::lock_guard lk(mu_);
    std::memcpy(c.mac, mac_.data(), sizeof c.mac);
    c.status = link_ ? kStatusLinkUp : 0;
  }
  c.max_virtqueue_pairs = 1;
  c.mtu = opts_.mtu;
  uint8_t raw[sizeof c];
  std::memcpy(raw, &c, sizeof c);
  for (size_t i = 0; i < data.size(); ++i) {
    const size_t o = size_t{offset} + i;
    data[i] = o < sizeof raw ? raw[o] : 0;
  }
}

uint32_t VirtioNet::config_generation() const {
  std::lock_guard lk(mu_);
  return generation_;
}

net::Mac VirtioNet::current_mac() const {
  std::lock_guard lk(mu_);
  return mac_;
}

RxFilter VirtioNet::rx_filter() const {
  std::lock_guard lk(backend_mu_);
  return filter_;
}

bool VirtioNet::link_up() const {
  std::lock_guard lk(mu_);
  return link_;
}

std::string VirtioNet::describe() const {
  std::lock_guard lk(backend_mu_);
  return "mac " + net::format_mac(opts_.mac) + " " + backend_->describe() +
         (vhost_ ? " vhost-net" : "");
}

VirtioNet::Stats VirtioNet::stats() const {
  std::lock_guard lk(backend_mu_);
  Stats s = stats_;
  s.backend = backend_->stats();
  return s;
}

void VirtioNet::update_link() {
  const bool up = backend_->link_up();
  std::lock_guard lk(mu_);
  if (up == link_) return;
  link_ = up;
  ++generation_;
  // §5.1.4.2: a status change is announced with a configuration change notification.
  if (irq_ && has(negotiated_, kStatus)) irq_->signal_config();
}

Status VirtioNet::activate(virtio::ActivationContext& ctx) {
  if (ctx.queues.size() < 2 || ctx.queues.size() > 3)
    return make_error("virtio-net has two queues and a control queue");
  std::lock_guard lk(backend_mu_);
  mem_ = &ctx.mem;
  queues_ = ctx.queues.data();
  nqueues_ = ctx.queues.size();
  negotiated_ = ctx.features;
  // §5.1.6: the header has num_buffers with VERSION_1 or MRG_RXBUF; legacy without: 10 bytes.
  mergeable_ = has(negotiated_, kMrgRxbuf);
  guest_hdr_len_ = (mergeable_ || has(negotiated_, virtio::kFeatureVersion1))
                       ? net::kVnetHdrLen
                       : net::kVnetHdrLegacyLen;
  host_offloads_ = net::normalized({has(negotiated_, kCsum), has(negotiated_, kHostTso4),
                                    has(negotiated_, kHostTso6), has(negotiated_, kHostEcn),
                                    has(negotiated_, kHostUfo)});
  guest_offloads_ = net::normalized({has(negotiated_, kGuestCsum), has(negotiated_, kGuestTso4),
                                     has(negotiated_, kGuestTso6), has(negotiated_, kGuestEcn),
                                     has(negotiated_, kGuestUfo)});
  const bool big = guest_offloads_.tso4 || guest_offloads_.tso6 || guest_offloads_.ufo;
  rx_need_ = guest_hdr_len_ + (big ? net::kMaxFrame : uint64_t{opts_.mtu} + 14 + 4);
  QVM_TRY(backend_->set_rx_offloads(guest_offloads_));
  tx_blocked_ = false;
  {
    std::lock_guard lk2(mu_);
    irq_ = &ctx.interrupt;
  }
  backend_->set_rx_enabled(queues_[kRxQueue].ready());
  if (vhost_) {
    if (auto s = start_vhost(); !s) {
      ++stats_.vhost_failures;
      log_warn("%s: vhost-net not used, the data path stays in qvm: %s", opts_.name.c_str(),
               s.error().message.c_str());
    }
  }
  return {};
}

void VirtioNet::reset() {
  std::lock_guard lk(backend_mu_);
  stop_vhost();
  backend_->set_rx_enabled(false);
  (void)backend_->set_rx_offloads({});
  spare_.clear();  // the queues are reset with the device: nothing to give back
  spare_bytes_ = 0;
  spare_iov_.clear();
  rx_iovs_.clear();
  rx_iov_base_ = 0;
  if (held_len_) ++stats_.rx_dropped;
  held_len_ = 0;
  mem_ = nullptr;
  queues_ = nullptr;
  nqueues_ = 0;
  negotiated_ = 0;
  filter_ = RxFilter{};
  std::lock_guard lk2(mu_);
  irq_ = nullptr;
  if (mac_ != opts_.mac) ++generation_;
  mac_ = opts_.mac;
}

void VirtioNet::process_queue(uint16_t index) {
  std::lock_guard lk(backend_mu_);
  if (!mem_ || !queues_) return;
  if (index == kCtrlQueue && nqueues_ > kCtrlQueue && has(negotiated_, kCtrlVq)) ctrl_pass();
  if (vhost_on_) return;  // vhost-net: the kernel runs receiveq1 and transmitq1
  if (index == kRxQueue) rx_pass();
  if (index == kTxQueue) tx_pass();
}

void VirtioNet::self_kick(uint16_t q) {
  pending_kicks_.fetch_or(1u << q);
  uint64_t one = 1;
  (void)!::write(kick_fd_.get(), &one, sizeof one);
}

void VirtioNet::on_ready() {
  std::array<epoll_event, 4> evs{};
  const size_t n = poller_.wait(evs);
  uint32_t kicks = 0;
  for (size_t i = 0; i < n; ++i) {
    if (evs[i].data.u64 == kKickTag) {
      uint64_t v = 0;
      (void)!::read(kick_fd_.get(), &v, sizeof v);
      kicks |= pending_kicks_.exchange(0);
    }
    if (evs[i].data.u64 == kCallTag0 + kRxQueue || evs[i].data.u64 == kCallTag0 + kTxQueue) {
      vhost_called(static_cast<uint16_t>(evs[i].data.u64 - kCallTag0));
      continue;
    }
    if (evs[i].data.u64 == kBackendTag) {
      std::lock_guard lk(backend_mu_);
      const net::ServiceResult r = backend_->service();
      update_link();
      if (r.rx_ready) kicks |= 1u << kRxQueue;
      if (r.tx_ready) {
        tx_blocked_ = false;
        kicks |= 1u << kTxQueue;
      }
    }
  }
  if (!kick_) return;
  if (kicks & (1u << kTxQueue)) kick_(kTxQueue);
  if (kicks & (1u << kRxQueue)) kick_(kRxQueue);
}

void VirtioNet::tx_pass() {
  virtio::Queue& q = queues_[kTxQueue];
  uint32_t done = 0;
  bool more = false;
  while (!tx_blocked_) {
    if (done == kTxBatch) {
      more = true;  // bounded: continue from the event loop
      break;
    }
    auto chain = q.next(*mem_);
    if (!chain) break;
    ++done;
    virtio::ChainReader r(*mem_, *chain);
    net::VnetHdr h{};
    const uint64_t frame =
        chain->readable_bytes >= guest_hdr_len_ ? chain->readable_bytes - guest_hdr_len_ : 0;
    // SAFETY: VnetHdr is trivially copyable; the guest's header fills its first bytes.
    auto* hb = reinterpret_cast<uint8_t*>(&h);
    bool ok = frame >= net::kMinFrame && frame <= net::kMaxFrame &&
              r.read_exact(std::span<uint8_t>(hb, guest_hdr_len_)).ok();
    h.num_buffers = 0;
    if (ok && !net::frame_offloads_allowed(h, host_offloads_)) ok = false;
    if (ok && (h.flags & net::kHdrFlagNeedsCsum) &&
        uint64_t{h.csum_start} + h.csum_offset + 2 > frame)
      ok = false;
    iov_.clear();
    iov_.push_back({&h, net::kVnetHdrLen});
    if (ok) {
      auto got = r.iovecs(frame, iov_);
      ok = got.ok() && *got == frame && iov_.size() <= kMaxIov;
    }
    if (!ok) {
      ++stats_.tx_malformed;
      virtio::log_guest_error(
          "%s: transmit chain %u malformed (%llu bytes, gso %u, flags %u): dropped",
          opts_.name.c_str(), chain->head, static_cast<unsigned long long>(chain->readable_bytes),
          h.gso_type, h.flags);
    } else {
      auto sent = backend_->send(iov_);
      if (sent.ok() && *sent == net::SendResult::kBlocked) {
        q.undo_pop();  // retried when the backend drains (on_ready: tx_ready)
        tx_blocked_ = true;
        break;
      }
      if (sent.ok() && *sent == net::SendResult::kSent) {
        ++stats_.tx_frames;
        stats_.tx_bytes += frame;
      } else {
        ++stats_.tx_dropped;
      }
    }
    // §5.1.6.2: transmit buffers are returned with nothing written.
    if (!q.add_used(*mem_, chain->head, 0)) break;
  }
  update_link();
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) {
    ++stats_.interrupts;
    irq_->signal_used(kTxQueue);
  }
  if (more) self_kick(kTxQueue);
}

}  // namespace qvm::vdev
