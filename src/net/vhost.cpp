// vhost-net set-up and tear-down. See vhost.hpp.
#include "net/vhost.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
// linux/virtio_ring.h (included by vhost.h) has C-only legacy helpers; leave them out.
#define VIRTIO_RING_NO_LEGACY
#include <linux/vhost.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "net/vnet_hdr.hpp"

namespace qvm::net {

namespace {

// The ioctls of linux/vhost.h on one /dev/vhost-net instance.
class KernelVhost final : public VhostIoctls {
 public:
  explicit KernelVhost(UniqueFd fd) : fd_(std::move(fd)) {}

  Status set_owner() override { return call("VHOST_SET_OWNER", VHOST_SET_OWNER, nullptr); }
  Result<uint64_t> get_features() override {
    uint64_t f = 0;
    QVM_TRY(call("VHOST_GET_FEATURES", VHOST_GET_FEATURES, &f));
    return f;
  }
  Status set_features(uint64_t features) override {
    return call("VHOST_SET_FEATURES", VHOST_SET_FEATURES, &features);
  }
  Status set_mem_table(std::span<const VhostMemRegion> regions) override {
    // struct vhost_memory ends in a flexible array: build it in a buffer of u64s (alignment).
    const size_t bytes = sizeof(vhost_memory) + regions.size() * sizeof(vhost_memory_region);
    std::vector<uint64_t> buf((bytes + 7) / 8, 0);
    // SAFETY: buf is zeroed, 8-byte aligned and large enough for the header and the regions.
    auto* m = reinterpret_cast<vhost_memory*>(buf.data());
    m->nregions = static_cast<uint32_t>(regions.size());
    for (size_t i = 0; i < regions.size(); ++i) {
      m->regions[i].guest_phys_addr = regions[i].gpa;
      m->regions[i].memory_size = regions[i].size;
      m->regions[i].userspace_addr = regions[i].uaddr;
    }
    return call("VHOST_SET_MEM_TABLE", VHOST_SET_MEM_TABLE, m);
  }
  Status set_vring_num(uint32_t index, uint32_t num) override {
    vhost_vring_state s{index, num};
    return call("VHOST_SET_VRING_NUM", VHOST_SET_VRING_NUM, &s);
  }
  Status set_vring_base(uint32_t index, uint32_t base) override {
    vhost_vring_state s{index, base};
    return call("VHOST_SET_VRING_BASE", VHOST_SET_VRING_BASE, &s);
  }
  Result<uint32_t> get_vring_base(uint32_t index) override {
    vhost_vring_state s{index, 0};
    QVM_TRY(call("VHOST_GET_VRING_BASE", VHOST_GET_VRING_BASE, &s));
    return s.num;
  }
  Status set_vring_addr(const VhostVringAddr& a) override {
    vhost_vring_addr v{};
    v.index = a.index;
    v.desc_user_addr = a.desc;
    v.avail_user_addr = a.avail;
    v.used_user_addr = a.used;
    return call("VHOST_SET_VRING_ADDR", VHOST_SET_VRING_ADDR, &v);
  }
  Status set_vring_kick(uint32_t index, int fd) override {
    vhost_vring_file f{index, fd};
    return call("VHOST_SET_VRING_KICK", VHOST_SET_VRING_KICK, &f);
  }
  Status set_vring_call(uint32_t index, int fd) override {
    vhost_vring_file f{index, fd};
    return call("VHOST_SET_VRING_CALL", VHOST_SET_VRING_CALL, &f);
  }
  Status set_backend(uint32_t index, int fd) override {
    vhost_vring_file f{index, fd};
    return call("VHOST_NET_SET_BACKEND", VHOST_NET_SET_BACKEND, &f);
  }
  Status set_tap_vnet_hdr_len(int tap_fd, int len) override {
    if (::ioctl(tap_fd, TUNSETVNETHDRSZ, &len) != 0)
      return Error::from_errno("TUNSETVNETHDRSZ", errno);
    return {};
  }

 private:
  Status call(const char* what, unsigned long req, void* arg) {
    if (::ioctl(fd_.get(), req, arg) != 0) return Error::from_errno(what, errno);
    return {};
  }
  UniqueFd fd_;
};

}  // namespace

Result<std::unique_ptr<VhostIoctls>> open_vhost_net(const char* path) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  if (!fd) return Error::from_errno(std::string("opening ") + path, errno);
  return std::unique_ptr<VhostIoctls>(new KernelVhost(std::move(fd)));
}

bool vhost_net_available(const char* path) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  return static_cast<bool>(fd);
}

Result<std::unique_ptr<VhostNet>> VhostNet::create(std::unique_ptr<VhostIoctls> io, int tap_fd) {
  if (!io) return make_error("vhost-net: no device");
  QVM_TRY(io->set_owner());
  const uint64_t f = QVM_TRY(io->get_features());
  return std::unique_ptr<VhostNet>(new VhostNet(std::move(io), tap_fd, f));
}

VhostNet::~VhostNet() {
  (void)stop();
}

Status VhostNet::start_queue(const Queue& q) {
  configured_.push_back(q.index);
  QVM_TRY(io_->set_vring_num(q.index, q.num));
  QVM_TRY(io_->set_vring_base(q.index, q.base));
  QVM_TRY(io_->set_vring_addr({q.index, q.desc, q.avail, q.used}));
  QVM_TRY(io_->set_vring_kick(q.index, q.kick_fd));
  QVM_TRY(io_->set_vring_call(q.index, q.call_fd));
  return {};
}

Status VhostNet::start(const StartParams& p) {
  if (running_ || !configured_.empty()) return make_error("vhost-net: already started");
  const uint64_t want = p.guest_features & kRingFeatures;
  if (want & ~kernel_features_)
    return make_error(strprintf("vhost-net: the kernel lacks negotiated features 0x%llx",
                                static_cast<unsigned long long>(want & ~kernel_features_)));
  if (p.vnet_hdr_len != kVnetHdrLen && p.vnet_hdr_len != kVnetHdrLegacyLen)
    return make_error("vhost-net: bad vnet header length");
  auto body = [&]() -> Status {
    QVM_TRY(io_->set_features(want));
    QVM_TRY(io_->set_mem_table(p.mem));
    for (const Queue& q : p.queues) QVM_TRY(start_queue(q));
    // vhost-net adds no header of its own (VHOST_NET_F_VIRTIO_NET_HDR not acked): the TAP's
    // header is the guest's, so its length must match (linux/vhost.h, drivers/net/tun.c).
    if (p.vnet_hdr_len != kVnetHdrLen) {
      hdr_changed_ = true;
      QVM_TRY(io_->set_tap_vnet_hdr_len(tap_fd_, static_cast<int>(p.vnet_hdr_len)));
    }
    for (const Queue& q : p.queues) QVM_TRY(io_->set_backend(q.index, tap_fd_));
    return {};
  };
  if (auto s = body(); !s) {
    (void)stop();
    return s;
  }
  running_ = true;
  return {};
}

std::vector<uint16_t> VhostNet::stop() {
  std::vector<uint16_t> bases;
  for (uint32_t idx : configured_) {
    if (auto s = io_->set_backend(idx, -1); !s)
      log_warn("vhost-net: queue %u: %s", idx, s.error().message.c_str());
    auto b = io_->get_vring_base(idx);
    if (!b) log_warn("vhost-net: queue %u: %s", idx, b.error().message.c_str());
    bases.push_back(static_cast<uint16_t>(b.ok() ? *b : 0));
  }
  configured_.clear();
  running_ = false;
  if (hdr_changed_) {
    hdr_changed_ = false;
    if (auto s = io_->set_tap_vnet_hdr_len(tap_fd_, static_cast<int>(kVnetHdrLen)); !s)
      log_warn("vhost-net: %s", s.error().message.c_str());
  }
  return bases;
}

}  // namespace qvm::net
