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
}  // namespace

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
  if (s.queues > 1)
    log_warn("%s: queues %u requested; this version serves one queue pair", o.name.c_str(),
             static_cast<unsigned>(s.queues));
  if (s.peer && s.tapdev) return make_error("virtio-net takes `peer` or `tapdev`, not both");

  std::unique_ptr<net::Backend> be;
  std::string tap;
  if (s.tapdev) {
    log_warn("%s: `tapdev %s` is deprecated; use `peer tap:%s`", o.name.c_str(), s.tapdev->c_str(),
             s.tapdev->c_str());
    tap = *s.tapdev;
  } else if (s.peer && s.peer->rfind("tap:", 0) == 0) {
    tap = s.peer->substr(4);
  }
  if (!tap.empty() || (s.peer && *s.peer == "tap:")) {
    be = QVM_TRY(net::TapBackend::open(tap));
  } else if (s.peer) {
    const std::string rt = s.runtime_dir.empty() ? net::runtime_dir() : s.runtime_dir;
    if (s.vdev_name.empty())
      return make_error("virtio-net with `peer " + *s.peer +
                        "` needs `name`: its own endpoint is " + rt + "/" + s.system + "/<name>");
    net::PeerLinkOptions po;
    po.peer_path = QVM_TRY(net::resolve_peer_path(*s.peer, rt));
    po.own_path = QVM_TRY(net::own_endpoint_path(s.system, s.vdev_name, rt));
    po.mode = QVM_TRY(parse_mode(s.bind_mode));
    be = QVM_TRY(net::PeerLink::create(po));
    if (!o.peerfeats) o.peerfeats = 0;  // offloads over a link only when both sides ask for them
  } else {
    be = QVM_TRY(net::NullBackend::create());
  }
  return VirtioNet::create(std::move(o), std::move(be));
}

}  // namespace qvm::vdev
