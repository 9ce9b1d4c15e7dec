// TAP backend. See tap.hpp.
#include "net/tap.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace qvm::net {

unsigned tun_offload_flags(const Offloads& o) {
  unsigned f = 0;
  if (o.csum) f |= TUN_F_CSUM;
  if (o.tso4) f |= TUN_F_TSO4;
  if (o.tso6) f |= TUN_F_TSO6;
  if (o.ecn) f |= TUN_F_TSO_ECN;
  if (o.ufo) f |= TUN_F_UFO;
  return f;
}

namespace {

Status check_ifname(const std::string& n) {
  if (n.empty() || n.size() >= IFNAMSIZ)
    return make_error("TAP interface name '" + n + "' must be 1 to 15 characters");
  for (char c : n)
    if (c == '/' || c == '%' || c == ':' || c <= ' ' || c == 0x7f)
      return make_error("TAP interface name '" + n + "' has a character not allowed in names");
  return {};
}

Error tunsetiff_error(const std::string& n, int err, bool existed) {
  std::string what =
      (existed ? "attaching to TAP interface '" : "creating TAP interface '") + n + "' (TUNSETIFF)";
  // No advice to setcap the binary: a capability on qvm would let every user create interfaces
  // (docs/security.md, "Least privilege").
  if (err == EPERM && existed)
    return Error{what + ": permission denied: the interface belongs to another user (recreate it " +
                     "for yours: ip tuntap add dev " + n + " mode tap vnet_hdr user $USER)",
                 err};
  if (err == EPERM)
    return Error{what + ": permission denied: creating an interface needs CAP_NET_ADMIN. Create " +
                     "it for your user first (ip tuntap add dev " + n +
                     " mode tap vnet_hdr user $USER), or run qvm as root with 'set user NAME' " +
                     "to drop to an ordinary user once the interface exists",
                 err};
  if (err == EBUSY) return Error{what + ": the interface is in use by another process", err};
  if (err == EINVAL)
    return Error{what + ": an interface of that name exists but is not a single-queue TAP " +
                     "device with a vnet header (e.g. a tun, multi_queue or non-TAP device)",
                 err};
  return Error::from_errno(what, err);
}

// Brings the interface up (SIOCSIFFLAGS), as `ip link set dev N up` does.
Status bring_up(const std::string& n) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return Error::from_errno("socket", errno);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, n.c_str(), n.size());
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0)
    return Error::from_errno("SIOCGIFFLAGS " + n, errno);
  if (ifr.ifr_flags & IFF_UP) return {};
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0)
    return Error::from_errno("bringing up " + n + " (SIOCSIFFLAGS)", errno);
  return {};
}

}  // namespace

Result<std::unique_ptr<TapBackend>> TapBackend::open(const std::string& ifname) {
  auto v = QVM_TRY(open_queues(ifname, 1));
  return std::move(v[0]);
}

Result<std::vector<std::unique_ptr<TapBackend>>> TapBackend::open_queues(const std::string& ifname,
                                                                         unsigned n) {
  QVM_TRY(check_ifname(ifname));
  if (n < 1 || n > 8) return make_error("TAP queues must be 1 to 8");
  const bool existed = ::if_nametoindex(ifname.c_str()) != 0;
  const bool multi = n > 1;
  std::vector<UniqueFd> fds;
  for (unsigned i = 0; i < n; ++i) {
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
      int e = errno;
      if (e == ENOENT)
        return Error{"/dev/net/tun is missing: load the tun module (modprobe tun)", e};
      return Error::from_errno("opening /dev/net/tun", e);
    }
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
    ifr.ifr_flags =
        static_cast<short>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0));
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
      const int e = errno;
      if (multi && e == EINVAL)
        return Error{"attaching to TAP interface '" + ifname + "' with " + std::to_string(n) +
                         " queues (TUNSETIFF): it exists but is not a multi-queue TAP with a "
                         "vnet header (ip tuntap add dev " +
                         ifname + " mode tap vnet_hdr multi_queue), or use queues 1",
                     e};
      return tunsetiff_error(ifname, e, existed || i > 0);
    }
    int hdr = static_cast<int>(kVnetHdrLen);
    if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) != 0)
      return Error::from_errno("TUNSETVNETHDRSZ on " + ifname, errno);
    fds.push_back(std::move(fd));
  }
  const int fd0 = fds[0].get();
  if (!existed && ::ioctl(fd0, TUNSETPERSIST, 0) != 0)
    return Error::from_errno("TUNSETPERSIST 0 on " + ifname, errno);
  // An interface qvm creates belongs to the user qvm runs as (issue 6: "with the right owner"), so
  // the same user can reattach to it; one that existed keeps the owner its creator gave it.
  if (!existed && ::ioctl(fd0, TUNSETOWNER, static_cast<unsigned long>(::geteuid())) != 0)
    return Error::from_errno("TUNSETOWNER on " + ifname, errno);
  if (auto up = bring_up(ifname); !up) {
    if (!existed) return up.error();
    log_warn("tap:%s: %s (bring it up with: ip link set dev %s up)", ifname.c_str(),
             up.error().message.c_str(), ifname.c_str());
  }
  // What the kernel lets us enable: all, then without UFO (removed for a while, kernels 4.14+
  // accept it again), then checksums only.
  Offloads probe[] = {{true, true, true, true, true},
                      {true, true, true, true, false},
                      {true, false, false, false, false},
                      {}};
  Offloads supported;
  for (const auto& o : probe) {
    if (::ioctl(fd0, TUNSETOFFLOAD, static_cast<unsigned long>(tun_offload_flags(o))) == 0) {
      supported = o;
      break;
    }
  }
  std::vector<std::unique_ptr<TapBackend>> out;
  for (auto& fd : fds) {
    if (::ioctl(fd.get(), TUNSETOFFLOAD, 0ul) != 0)
      return Error::from_errno("TUNSETOFFLOAD 0 on " + ifname, errno);
    Poller p = QVM_TRY(Poller::create());
    std::unique_ptr<TapBackend> b(
        new TapBackend(std::move(fd), std::move(p), supported, ifname, !existed, multi));
    QVM_TRY(b->init());
    out.push_back(std::move(b));
  }
  return out;
}

Status TapBackend::set_queue_attached(bool on) {
  if (!multi_ || on == attached_) return {};
  ifreq ifr{};
  ifr.ifr_flags = static_cast<short>(on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE);
  if (::ioctl(fd_.get(), TUNSETQUEUE, &ifr) != 0)
    return Error::from_errno(
        std::string("TUNSETQUEUE ") + (on ? "attach" : "detach") + " on " + ifname_, errno);
  attached_ = on;
  return {};
}

Status TapBackend::apply_rx_offloads(const Offloads& o) {
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(tun_offload_flags(o))) != 0)
    return Error::from_errno("TUNSETOFFLOAD on " + ifname_, errno);
  return {};
}

}  // namespace qvm::net
