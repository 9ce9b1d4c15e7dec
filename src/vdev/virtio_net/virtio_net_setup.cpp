// See virtio_net_setup.hpp.
#include "vdev/virtio_net/virtio_net_setup.hpp"

#include "base/log.hpp"
#include "net/null_backend.hpp"
#include "net/peer_link.hpp"
#include "net/tap.hpp"

namespace qvm::vdev {

namespace {
Result<mode_t> parse_mode(const std::string& s) {
  if (s.empty() || s.size() > 4) return make_error("bind-mode '" + s + "': want an octal mode");
  mode_t m = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return make_error("bind-mode '" + s + "': want an octal mode");
    m = static_cast<mode_t>(m * 8 + static_cast<mode_t>(c - '0'));
  }
  return static_cast<mode_t>(m & 0777);
}

enum class VhostMode { kOff, kOn, kAuto };
Result<VhostMode> parse_vhost(const std::string& v) {
  if (v == "on") return VhostMode::kOn;
  if (v == "off") return VhostMode::kOff;
  if (v == "auto" || v.empty()) return VhostMode::kAuto;
  return make_error("vhost '" + v + "': want on, off or auto");
}

bool is_tap(const NetSetup& s) {
  return s.tapdev.has_value() || (s.peer && s.peer->rfind("tap:", 0) == 0);
}

// vhost-net for an open TAP, or nullptr under `auto` when it is unavailable (logged once).
Result<std::unique_ptr<net::VhostNet>> open_vhost(const NetSetup& s, const std::string& name,
                                                  int tap_fd) {
  const VhostMode m = QVM_TRY(parse_vhost(s.vhost));
  if (m == VhostMode::kOff) return std::unique_ptr<net::VhostNet>();
  auto io = s.open_vhost ? s.open_vhost() : net::open_vhost_net();
  Result<std::unique_ptr<net::VhostNet>> v =
      io ? net::VhostNet::create(std::move(*io), tap_fd)
         : Result<std::unique_ptr<net::VhostNet>>(io.error());
  if (v) return v;
  if (m == VhostMode::kOn)
    return Error{name + ": `vhost on` but vhost-net is unavailable: " + v.error().message +
                     " (load the vhost_net module, or use `vhost auto`/`vhost off`)",
                 v.error().sys_errno};
  log_info("%s: vhost-net unavailable (%s): user-space data path", name.c_str(),
           v.error().message.c_str());
  return std::unique_ptr<net::VhostNet>();
}
}  // namespace

Result<VhostPlan> vhost_plan(const NetSetup& s) {
  const VhostMode m = QVM_TRY(parse_vhost(s.vhost));
  if (m == VhostMode::kOff || s.ioeventfd == "off")
    return VhostPlan{"vhost-net off: user-space data path", false};
  if (!is_tap(s)) {
    if (m == VhostMode::kOn) return make_error("virtio-net: `vhost on` needs `peer tap:IFNAME`");
    return VhostPlan{"vhost-net auto: not a TAP, user-space data path", false};
  }
  const bool there = net::vhost_net_available();
  const std::string head = m == VhostMode::kOn ? "vhost-net on: " : "vhost-net auto: ";
  if (!there && m == VhostMode::kOn)
    return make_error(std::string("virtio-net: `vhost on` but ") + net::kVhostNetPath +
                      " cannot be opened (load the vhost_net module, or use `vhost auto`)");
  return VhostPlan{head + net::kVhostNetPath +
                       (there ? " present, kernel data path" : " absent, user-space data path"),
                   there};
}

Result<std::shared_ptr<VirtioNet>> open_virtio_net(const NetSetup& s) {
  VirtioNet::Options o;
  o.mtu = s.mtu;
  o.peerfeats = s.peerfeats;
  o.name = "virtio-net" + (s.vdev_name.empty() ? std::string() : " " + s.vdev_name);
  if (s.mac) {
    o.mac = QVM_TRY(net::parse_mac(*s.mac));
    if (o.mac[0] & 1) return make_error("virtio-net mac " + *s.mac + " is a multicast address");
  } else {
    o.mac = net::generate_mac(s.system, s.vdev_name.empty() ? s.unique_id : s.vdev_name);
  }
  if (s.queues < 1 || s.queues > net_dev::kMaxPairs)
    return make_error("virtio-net queues must be 1 to 8");
  if (s.peer && s.tapdev) return make_error("virtio-net takes `peer` or `tapdev`, not both");
  if (s.ioeventfd != "on" && s.ioeventfd != "off" && s.ioeventfd != "tx" && s.ioeventfd != "auto")
    return make_error("ioeventfd '" + s.ioeventfd + "': want on, off, tx or auto");
  // `auto` = tx: transmit notifications through KVM ioeventfds to the event loop thread, receive
  // notifications (buffers posted after the device ran dry) on the notifying vCPU thread, which
  // fills them at once (docs/networking.md "Who runs the queues"). `off` (every queue on the vCPU
  // thread) is an explicit opt-in: with Linux guests under sustained transmit it ends in a triple
  // fault in the virtual test host more often than the others (docs/networking.md).
  o.ioeventfd = s.ioeventfd != "off";
  o.rx_inline = s.ioeventfd == "tx" || s.ioeventfd == "auto";
  if (s.ioeventfd == "off" && QVM_TRY(parse_vhost(s.vhost)) == VhostMode::kOn)
    return make_error(o.name +
                      ": `vhost on` needs ioeventfds (vhost-net's kick): drop `ioeventfd off`");
  if (QVM_TRY(parse_vhost(s.vhost)) == VhostMode::kOn && !is_tap(s))
    return make_error(o.name + ": `vhost on` needs `peer tap:IFNAME` (vhost-net runs TAP queues)");

  std::vector<std::unique_ptr<net::Backend>> bes;
  std::vector<std::unique_ptr<net::VhostNet>> vhosts;
  std::string tap;
  if (s.tapdev) {
    log_warn("%s: `tapdev %s` is deprecated; use `peer tap:%s`", o.name.c_str(), s.tapdev->c_str(),
             s.tapdev->c_str());
    tap = *s.tapdev;
  } else if (s.peer && s.peer->rfind("tap:", 0) == 0) {
    tap = s.peer->substr(4);
  }
  if (!tap.empty() || (s.peer && *s.peer == "tap:")) {
    // MQ (virtio 1.2 §5.1.6.5.5): one TAP queue (IFF_MULTI_QUEUE) and one vhost-net per pair.
    auto ts = QVM_TRY(net::TapBackend::open_queues(tap, s.queues));
    for (auto& t : ts) {
      if (s.ioeventfd != "off" && (vhosts.size() == bes.size())) {
        auto v = QVM_TRY(open_vhost(s, o.name, t->data_fd()));
        if (v) vhosts.push_back(std::move(v));
      }
      bes.push_back(std::move(t));
    }
    if (vhosts.size() != bes.size()) vhosts.clear();  // all pairs or none
  } else if (s.peer) {
    const std::string rt = s.runtime_dir.empty() ? net::runtime_dir() : s.runtime_dir;
    if (s.vdev_name.empty())
      return make_error("virtio-net with `peer " + *s.peer +
                        "` needs `name`: its own endpoint is " + rt + "/" + s.system + "/<name>");
    net::PeerLinkOptions po;
    po.peer_path = QVM_TRY(net::resolve_peer_path(*s.peer, rt));
    po.own_path = QVM_TRY(net::own_endpoint_path(s.system, s.vdev_name, rt));
    po.mode = QVM_TRY(parse_mode(s.bind_mode));
    bes.push_back(QVM_TRY(net::PeerLink::create(po)));
    if (!o.peerfeats) o.peerfeats = 0;  // offloads over a link only when both sides ask for them
  } else {
    bes.push_back(QVM_TRY(net::NullBackend::create()));
  }
  if (s.queues > 1 && bes.size() == 1)
    log_warn("%s: queues %u needs a TAP (one queue per pair); this link serves one pair",
             o.name.c_str(), static_cast<unsigned>(s.queues));
  return VirtioNet::create(std::move(o), std::move(bes), std::move(vhosts));
}

}  // namespace qvm::vdev
