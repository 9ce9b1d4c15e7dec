// virtio-net (virtio 1.2 §5.1): features, configuration space, activation and reset, queue
// dispatch and the event-loop side. Transmit is in virtio_net_tx.cpp, receive in
// virtio_net_rx.cpp, the control queue in virtio_net_ctrl.cpp, vhost-net in
// virtio_net_vhost.cpp. See the header for the contract.
#include "vdev/virtio_net/virtio_net.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"
#include "net/fd_backend.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

using virtio::feature_bit;
using namespace net_dev;

namespace {
// Poll tags: kind << 16 | index (pair for backends, queue for vhost calls).
enum Kind : uint64_t { kBackend = 1, kKick = 2, kCall = 3, kNotify = 4 };
static_assert(VirtioNet::kNotifyTag == uint64_t{kNotify} << 16);
uint64_t tag(Kind k, size_t index) {
  return (uint64_t{k} << 16) | index;
}

bool has(uint64_t f, uint32_t bit) {
  return (f & feature_bit(bit)) != 0;
}
}  // namespace

Result<std::shared_ptr<VirtioNet>> VirtioNet::create(Options o, std::unique_ptr<net::Backend> be,
                                                     std::unique_ptr<net::VhostNet> vhost) {
  std::vector<std::unique_ptr<net::Backend>> bs;
  bs.push_back(std::move(be));
  std::vector<std::unique_ptr<net::VhostNet>> vs;
  if (vhost) vs.push_back(std::move(vhost));
  return create(std::move(o), std::move(bs), std::move(vs));
}

Result<std::shared_ptr<VirtioNet>> VirtioNet::create(
    Options o, std::vector<std::unique_ptr<net::Backend>> backends,
    std::vector<std::unique_ptr<net::VhostNet>> vhosts) {
  if (backends.empty() || backends.size() > kMaxPairs)
    return make_error("virtio-net needs 1 to 8 backend queues");
  if (!vhosts.empty() && vhosts.size() != backends.size())
    return make_error("virtio-net: one vhost-net per queue pair or none");
  if (o.mtu < 68) return make_error("virtio-net mtu must be at least 68");
  if (o.peerfeats && (*o.peerfeats & ~kPeerfeatsMask))
    return make_error("virtio-net peerfeats has bits outside 0x7fc3");
  net::Poller p = QVM_TRY(net::Poller::create());
  UniqueFd kfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!kfd) return Error::from_errno("eventfd", errno);
  QVM_TRY(p.add(kfd.get(), EPOLLIN, tag(kKick, 0)));
  std::vector<Pair> pairs(backends.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (!backends[i]) return make_error("virtio-net needs a backend");
    Pair& pr = pairs[i];
    pr.backend = std::move(backends[i]);
    QVM_TRY(p.add(pr.backend->poll_fd(), EPOLLIN, tag(kBackend, i)));
    pr.backend->set_rx_enabled(false);
    QVM_TRY(pr.backend->set_rx_offloads({}));
    if (vhosts.empty()) continue;
    pr.vhost = std::move(vhosts[i]);
    for (size_t k = 0; k < 2; ++k) {
      pr.call_fd[k].reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!pr.call_fd[k]) return Error::from_errno("eventfd", errno);
      QVM_TRY(p.add(pr.call_fd[k].get(), EPOLLIN, tag(kCall, 2 * i + k)));
    }
  }
  std::shared_ptr<VirtioNet> d(
      new VirtioNet(std::move(o), std::move(pairs), std::move(p), std::move(kfd)));
  d->compute_features();
  d->link_ = d->pairs_[0].backend->link_up();
  d->mac_ = d->opts_.mac;
  d->queue_sizes_.assign(2 * d->pairs_.size(), kQueueSize);
  // The control queue's slot: 2N (with MQ), or 2 (without; that is receiveq2's slot then, so
  // every slot from 2 on may become the control queue and takes its size).
  d->queue_sizes_.push_back(d->pairs_.size() > 1 ? kQueueSize : kCtrlQueueSize);
  d->set_active_pairs(1);
  return d;
}

VirtioNet::VirtioNet(Options o, std::vector<Pair> pairs, net::Poller p, UniqueFd kick_fd)
    : opts_(std::move(o)),
      poller_(std::move(p)),
      kick_fd_(std::move(kick_fd)),
      pairs_(std::move(pairs)) {}

VirtioNet::~VirtioNet() = default;

void VirtioNet::compute_features() {
  const net::Offloads s = pairs_[0].backend->supported_offloads();
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
  if (pairs_.size() > 1) features_ |= feature_bit(kMq);
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
  c.max_virtqueue_pairs = static_cast<uint16_t>(pairs_.size());
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

uint16_t VirtioNet::active_pairs() const {
  std::lock_guard lk(backend_mu_);
  return active_pairs_;
}

bool VirtioNet::link_up() const {
  std::lock_guard lk(mu_);
  return link_;
}

std::string VirtioNet::describe() const {
  std::lock_guard lk(backend_mu_);
  std::string s = "mac " + net::format_mac(opts_.mac) + " " + pairs_[0].backend->describe();
  if (pairs_.size() > 1) s += " queues " + std::to_string(pairs_.size());
  if (pairs_[0].vhost) s += " vhost-net";
  return s;
}

VirtioNet::Stats VirtioNet::stats() const {
  std::lock_guard lk(backend_mu_);
  Stats s = stats_;
  for (const Pair& p : pairs_) {
    const net::BackendStats b = p.backend->stats();
    s.backend.tx_frames += b.tx_frames;
    s.backend.tx_bytes += b.tx_bytes;
    s.backend.tx_dropped += b.tx_dropped;
    s.backend.rx_frames += b.rx_frames;
    s.backend.rx_bytes += b.rx_bytes;
    s.backend.rx_dropped += b.rx_dropped;
    s.backend.link_changes += b.link_changes;
    s.backend.connects += b.connects;
    s.backend.rx_soft_offload += b.rx_soft_offload;
  }
  return s;
}

std::string VirtioNet::status_text() const {
  using ull = unsigned long long;
  const Stats s = stats();
  std::string out = strprintf(
      "link %s, rx %llu frames (%llu bounced, %llu dropped), tx %llu frames (%llu dropped, %llu "
      "malformed), %llu interrupts",
      link_up() ? "up" : "down", static_cast<ull>(s.rx_frames), static_cast<ull>(s.rx_bounced),
      static_cast<ull>(s.rx_dropped), static_cast<ull>(s.tx_frames), static_cast<ull>(s.tx_dropped),
      static_cast<ull>(s.tx_malformed), static_cast<ull>(s.interrupts));
  if (s.backend.rx_dropped)
    out += strprintf(", backend dropped %llu", static_cast<ull>(s.backend.rx_dropped));
  if (s.backend.rx_soft_offload)
    out += strprintf(", %llu completed in software (peer offloads)",
                     static_cast<ull>(s.backend.rx_soft_offload));
  std::lock_guard lk(backend_mu_);
  for (size_t i = 0; i < pairs_.size(); ++i) {
    const Pair& p = pairs_[i];
    if (p.vhost_on) {
      out += strprintf("; pair %zu: vhost-net", i + 1);
      continue;
    }
    out += strprintf("; pair %zu: rx %s, %zu buffers held (%llu B)%s%s", i + 1,
                     p.backend->rx_enabled() ? "reading" : "paused", p.spare.size(),
                     static_cast<ull>(p.spare_bytes), p.held_len ? ", a frame waiting" : "",
                     p.tx_blocked ? ", tx blocked" : "");
  }
  return out;
}

uint16_t VirtioNet::ctrl_index() const {
  return has(negotiated_, kMq) ? static_cast<uint16_t>(2 * pairs_.size()) : kCtrlQueue;
}

size_t VirtioNet::usable_pairs() const {
  return has(negotiated_, kMq) ? pairs_.size() : 1;
}

void VirtioNet::update_link() {
  const bool up = pairs_[0].backend->link_up();  // the queues of one TAP share its link
  std::lock_guard lk(mu_);
  if (up == link_) return;
  link_ = up;
  ++generation_;
  // §5.1.4.2: a status change is announced with a configuration change notification.
  if (irq_ && has(negotiated_, kStatus)) irq_->signal_config();
}

void VirtioNet::set_active_pairs(uint16_t n) {
  active_pairs_ = n;
  for (size_t i = 0; i < pairs_.size(); ++i) {
    Pair& p = pairs_[i];
    const bool on = i < n;
    if (auto s = p.backend->set_queue_attached(on); !s)
      log_warn("%s: queue pair %zu: %s", opts_.name.c_str(), i + 1, s.error().message.c_str());
    if (!on)
      p.backend->set_rx_enabled(false);
    else if (queues_ && !p.vhost_on && rxq(i) < nqueues_)
      p.backend->set_rx_enabled(queues_[rxq(i)].ready());
  }
}

Status VirtioNet::activate(virtio::ActivationContext& ctx) {
  if (ctx.queues.size() < 2 || ctx.queues.size() > queue_sizes_.size())
    return make_error("virtio-net: unexpected number of queues");
  std::lock_guard lk(backend_mu_);
  mem_ = &ctx.mem;
  queues_ = ctx.queues.data();
  nqueues_ = ctx.queues.size();
  negotiated_ = ctx.features;
  if (has(negotiated_, kMq) && nqueues_ < queue_sizes_.size())
    return make_error("virtio-net: MQ without all queues");
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
  for (size_t i = 0; i < pairs_.size(); ++i) {
    QVM_TRY(pairs_[i].backend->set_rx_offloads(guest_offloads_));
    pairs_[i].tx_blocked = false;
    // Both paths pop until the ring is empty or resume by themselves (tx: a blocked backend or
    // the batch limit; rx: a frame arriving while buffers are held), so the driver need not
    // notify meanwhile (§2.7.7; what EVENT_IDX does through avail_event).
    for (size_t qi : {rxq(i), txq(i)})
      if (qi < nqueues_) queues_[qi].set_notify_suppression(true);
  }
  {
    std::lock_guard lk2(mu_);
    irq_ = &ctx.interrupt;
  }
  // §5.1.6.5.5: only the first pair until the driver asks for more.
  set_active_pairs(1);
  for (size_t i = 0; i < usable_pairs() && pairs_[i].vhost; ++i) {
    if (auto s = start_vhost(pairs_[i], i); !s) {
      ++stats_.vhost_failures;
      log_warn("%s: vhost-net not used for queue pair %zu, the data path stays in qvm: %s",
               opts_.name.c_str(), i + 1, s.error().message.c_str());
    }
  }
  return {};
}

void VirtioNet::reset() {
  std::lock_guard lk(backend_mu_);
  stop_vhost();
  for (Pair& p : pairs_) {
    p.backend->set_rx_enabled(false);
    (void)p.backend->set_rx_offloads({});
    p.spare.clear();  // the queues are reset with the device: nothing to give back
    p.spare_bytes = 0;
    p.spare_iov.clear();
    p.rx_iovs.clear();
    p.rx_iov_base = 0;
    if (p.held_len) ++stats_.rx_dropped;
    p.held_len = 0;
    p.tx_blocked = false;
  }
  mem_ = nullptr;
  queues_ = nullptr;
  nqueues_ = 0;
  negotiated_ = 0;
  filter_ = RxFilter{};
  set_active_pairs(1);
  std::lock_guard lk2(mu_);
  irq_ = nullptr;
  if (mac_ != opts_.mac) ++generation_;
  mac_ = opts_.mac;
}

void VirtioNet::process_queue(uint16_t index) {
  std::lock_guard lk(backend_mu_);
  if (!mem_ || !queues_ || index >= nqueues_) return;
  if (has(negotiated_, kCtrlVq) && index == ctrl_index()) {
    ctrl_pass();
    return;
  }
  const size_t p = index / 2;
  if (p >= usable_pairs() || pairs_[p].vhost_on) return;  // vhost-net: the kernel runs it
  if (index == txq(p)) tx_pass(p);
  // §5.1.6.5.5: receive only on active pairs.
  if (index == rxq(p) && p < active_pairs_) rx_pass(p);
}

void VirtioNet::self_kick(uint16_t q) {
  pending_kicks_.fetch_or(1u << q);
  uint64_t one = 1;
  (void)!::write(kick_fd_.get(), &one, sizeof one);
}

void VirtioNet::on_ready() {
  std::array<epoll_event, 8> evs{};
  const size_t n = poller_.wait(evs);
  uint32_t kicks = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto kind = static_cast<Kind>(evs[i].data.u64 >> 16);
    const size_t index = evs[i].data.u64 & 0xffff;
    if (kind == kKick) {
      uint64_t v = 0;
      (void)!::read(kick_fd_.get(), &v, sizeof v);
      kicks |= pending_kicks_.exchange(0);
    } else if (kind == kCall) {
      vhost_called(static_cast<uint16_t>(index));
    } else if (kind == kNotify && index / 2 < pairs_.size()) {
      // A queue ioeventfd the device polls (vhost-net attached, not running this pair now).
      uint64_t v = 0;
      (void)!::read(pairs_[index / 2].notify_fd[index % 2], &v, sizeof v);
      kicks |= 1u << index;
    } else if (kind == kBackend && index < pairs_.size()) {
      std::lock_guard lk(backend_mu_);
      Pair& p = pairs_[index];
      const net::ServiceResult r = p.backend->service();
      update_link();
      if (r.rx_ready) kicks |= 1u << rxq(index);
      if (r.tx_ready) {
        p.tx_blocked = false;
        kicks |= 1u << txq(index);
      }
    }
  }
  if (!kick_) return;
  for (uint16_t q = 0; q < 32 && kicks; ++q) {
    if (!(kicks & (1u << q))) continue;
    kicks &= ~(1u << q);
    kick_(q);
  }
}

}  // namespace qvm::vdev
