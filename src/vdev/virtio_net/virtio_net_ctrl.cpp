// virtio-net control virtqueue (virtio 1.2 §5.1.6.5) and receive filtering (§5.1.6.5.1,
// §5.1.6.5.2). The control queue is queue 2, or 2·max_virtqueue_pairs with VIRTIO_NET_F_MQ. Each
// request is one chain: device-readable `u8 class, u8 command, command-specific-data`, then one
// device-writable `u8 ack` (VIRTIO_NET_OK / VIRTIO_NET_ERR).
//
// Supported: VIRTIO_NET_CTRL_RX (PROMISC, ALLMULTI; with CTRL_RX_EXTRA ALLUNI, NOMULTI, NOUNI,
// NOBCAST), VIRTIO_NET_CTRL_MAC (MAC_TABLE_SET with CTRL_RX, MAC_ADDR_SET with CTRL_MAC_ADDR),
// VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (with MQ),
// VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET (with CTRL_GUEST_OFFLOADS). Anything else, a command whose
// feature was not negotiated, or malformed data is answered VIRTIO_NET_ERR and changes nothing.
// Requests are bounded (kMaxCtrlBytes readable); a chain without a writable byte cannot be
// answered: it is returned with length 0 and logged (rate-limited).
#include <algorithm>
#include <cstring>

#include "base/log.hpp"
#include "net/fd_backend.hpp"
#include "vdev/virtio_net/virtio_net.hpp"
#include "virtio/guest_error.hpp"
#include "virtio/queue/chain.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::vdev {

using virtio::feature_bit;
using namespace net_dev;

namespace {
// §5.1.6.5 classes and commands.
constexpr uint8_t kOk = 0;
constexpr uint8_t kErr = 1;
constexpr uint8_t kClassRx = 0;
constexpr uint8_t kClassMac = 1;
constexpr uint8_t kClassMq = 4;
constexpr uint8_t kClassGuestOffloads = 5;
constexpr uint8_t kMqVqPairsSet = 0;
constexpr uint8_t kMacTableSet = 0;
constexpr uint8_t kMacAddrSet = 1;
constexpr uint8_t kGuestOffloadsSet = 0;
constexpr uint32_t kCtrlBatch = 64;        // requests per pass
constexpr uint64_t kMaxCtrlBytes = 16384;  // class + command + data

bool has(uint64_t f, uint32_t bit) {
  return (f & feature_bit(bit)) != 0;
}

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// One table of struct virtio_net_ctrl_mac (§5.1.6.5.2): le32 entries, then entries × 6 bytes.
// Returns the bytes it took, 0 if malformed.
size_t parse_table(std::span<const uint8_t> d, std::vector<net::Mac>& out, bool& overflow) {
  if (d.size() < 4) return 0;
  const uint64_t n = le32(d.data());
  if (n > (d.size() - 4) / 6) return 0;
  out.clear();
  overflow = n > RxFilter::kMaxEntries;
  for (uint64_t i = 0; i < n && !overflow; ++i) {
    net::Mac m;
    std::memcpy(m.data(), d.data() + 4 + 6 * i, 6);
    out.push_back(m);
  }
  return static_cast<size_t>(4 + 6 * n);
}
}  // namespace

bool RxFilter::accepts(std::span<const uint8_t, 6> dst, const net::Mac& own) const {
  if (promisc) return true;
  static constexpr net::Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const auto in = [&](const std::vector<net::Mac>& t) {
    return std::any_of(t.begin(), t.end(), [&](const net::Mac& m) {
      return std::equal(m.begin(), m.end(), dst.begin());
    });
  };
  if (std::equal(kBroadcast.begin(), kBroadcast.end(), dst.begin())) return !nobcast;
  if (dst[0] & 1) {  // multicast (I/G bit)
    if (nomulti) return false;
    return allmulti || multi_overflow || in(multi);
  }
  if (nouni) return false;
  return alluni || uni_overflow || std::equal(own.begin(), own.end(), dst.begin()) || in(uni);
}

uint8_t VirtioNet::ctrl_command(uint8_t cls, uint8_t cmd, std::span<const uint8_t> d) {
  if (cls == kClassRx && has(negotiated_, kCtrlRx)) {
    // §5.1.6.5.1: one byte, 0 = off, anything else = on.
    if (d.size() != 1 || cmd > 5 || (cmd > 1 && !has(negotiated_, kCtrlRxExtra))) return kErr;
    bool* flags[] = {&filter_.promisc, &filter_.allmulti, &filter_.alluni,
                     &filter_.nomulti, &filter_.nouni,    &filter_.nobcast};
    *flags[cmd] = d[0] != 0;
    return kOk;
  }
  if (cls == kClassMac && cmd == kMacTableSet && has(negotiated_, kCtrlRx)) {
    RxFilter f = filter_;
    const size_t a = parse_table(d, f.uni, f.uni_overflow);
    if (a == 0) return kErr;
    const size_t b = parse_table(d.subspan(a), f.multi, f.multi_overflow);
    if (b == 0 || a + b != d.size()) return kErr;
    filter_ = std::move(f);
    return kOk;
  }
  if (cls == kClassMac && cmd == kMacAddrSet && has(negotiated_, kCtrlMacAddr)) {
    if (d.size() != 6 || (d[0] & 1)) return kErr;  // a multicast address cannot be ours
    std::lock_guard lk(mu_);
    std::memcpy(mac_.data(), d.data(), 6);
    ++generation_;  // §2.5.1: the configuration space (mac) changed
    return kOk;
  }
  if (cls == kClassMq && cmd == kMqVqPairsSet && has(negotiated_, kMq)) {
    // §5.1.6.5.5: le16 virtqueue_pairs, 1 ..= max_virtqueue_pairs.
    if (d.size() != 2) return kErr;
    const uint16_t n = static_cast<uint16_t>(d[0] | (d[1] << 8));
    if (n < 1 || n > pairs_.size()) return kErr;
    set_active_pairs(n);
    return kOk;
  }
  if (cls == kClassGuestOffloads && cmd == kGuestOffloadsSet &&
      has(negotiated_, kCtrlGuestOffloads)) {
    // §5.1.6.5.6: le64 of GUEST_* bits; only negotiated ones may be enabled.
    if (d.size() != 8) return kErr;
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) v |= uint64_t{d[i]} << (8 * i);
    const uint64_t guest_bits = feature_bit(kGuestCsum) | feature_bit(kGuestTso4) |
                                feature_bit(kGuestTso6) | feature_bit(kGuestEcn) |
                                feature_bit(kGuestUfo);
    if (v & ~(negotiated_ & guest_bits)) return kErr;
    net::Offloads o = net::normalized({has(v, kGuestCsum), has(v, kGuestTso4), has(v, kGuestTso6),
                                       has(v, kGuestEcn), has(v, kGuestUfo)});
    for (Pair& p : pairs_)
      if (!p.backend->set_rx_offloads(o)) return kErr;
    guest_offloads_ = o;
    // Buffers for the largest frame stay sized by the negotiated set (a driver re-enabling
    // TSO later gets frames as large as it posted buffers for).
    return kOk;
  }
  return kErr;
}

void VirtioNet::ctrl_pass() {
  const uint16_t qi = ctrl_index();
  if (qi >= nqueues_) return;
  virtio::Queue& q = queues_[qi];
  if (!q.ready()) return;
  bool any = false;
  for (uint32_t i = 0; i < kCtrlBatch; ++i) {
    auto chain = q.next(*mem_);
    if (!chain) break;
    any = true;
    uint32_t written = 0;
    if (chain->writable_bytes == 0) {
      ++stats_.ctrl_errors;
      virtio::log_guest_error("%s: control request %u has no ack byte: dropped", opts_.name.c_str(),
                              chain->head);
    } else {
      uint8_t ack = kErr;
      if (chain->readable_bytes >= 2 && chain->readable_bytes <= kMaxCtrlBytes) {
        ctrl_buf_.resize(static_cast<size_t>(chain->readable_bytes));
        virtio::ChainReader r(*mem_, *chain);
        if (r.read_exact(ctrl_buf_).ok())
          ack = ctrl_command(ctrl_buf_[0], ctrl_buf_[1], std::span(ctrl_buf_).subspan(2));
      }
      ++stats_.ctrl_commands;
      if (ack != kOk) {
        ++stats_.ctrl_errors;
        virtio::log_guest_error("%s: control request %u (%llu bytes) refused", opts_.name.c_str(),
                                chain->head,
                                static_cast<unsigned long long>(chain->readable_bytes));
      }
      virtio::ChainWriter w(*mem_, *chain);
      if (w.write_exact(std::span<const uint8_t>(&ack, 1)).ok()) written = 1;
    }
    if (!q.add_used(*mem_, chain->head, written)) break;
  }
  if (!any) return;
  std::lock_guard lk(mu_);
  if (q.needs_notification(*mem_) && irq_) {
    ++stats_.interrupts;
    irq_->signal_used(qi);
  }
}

bool VirtioNet::rx_filtered(std::span<const iovec> frame_iov) {
  if (filter_.accepts_all()) return false;
  uint8_t dst[6] = {};
  size_t got = 0;
  for (const iovec& v : frame_iov) {
    const size_t k = std::min(v.iov_len, sizeof dst - got);
    std::memcpy(dst + got, v.iov_base, k);
    got += k;
    if (got == sizeof dst) break;
  }
  net::Mac own;
  {
    std::lock_guard lk(mu_);
    own = mac_;
  }
  if (got == sizeof dst && filter_.accepts(std::span<const uint8_t, 6>(dst, 6), own)) return false;
  ++stats_.rx_filtered;
  return true;
}

}  // namespace qvm::vdev
