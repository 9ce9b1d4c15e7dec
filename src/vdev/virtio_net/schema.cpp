// vdev virtio-net (spec §6.4.3): its schema and typed options (the option fields of NetSetup).
#include "config/values.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"
#include "vdev/virtio_net/virtio_net_setup.hpp"

namespace qvm::vdev {
namespace {

Status check_mac(std::string_view s) {
  auto parts = config::split(s, ':');
  bool ok = parts.size() == 6;
  for (auto p : parts) {
    ok = ok && p.size() == 2 &&
         p.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
  }
  if (!ok)
    return make_error("expected a MAC address xx:xx:xx:xx:xx:xx, found '" + std::string(s) + "'");
  auto first = config::parse_number("0x" + std::string(parts[0]));
  if (first && (*first & 1))
    return make_error("MAC address " + std::string(s) + " is a multicast address");
  return {};
}

Status check_octal_mode(std::string_view s) {
  if (s.empty() || s.size() > 4 || s.find_first_not_of("01234567") != std::string_view::npos)
    return make_error("expected an octal file mode such as 0600, found '" + std::string(s) + "'");
  return {};
}

Status check_on_off_auto(std::string_view s) {
  if (s == "on" || s == "off" || s == "auto") return {};
  return make_error("expected on, off or auto, found '" + std::string(s) + "'");
}

Status check_ioeventfd(std::string_view s) {
  if (s == "on" || s == "off" || s == "tx" || s == "auto") return {};
  return make_error("expected on, off, tx or auto, found '" + std::string(s) + "'");
}

// The option fields of NetSetup; the factory adds what comes from the VM (system, vdev name).
Result<NetSetup> parse(const config::VdevConfig& v) {
  NetSetup ns;
  if (v.has("mac")) {
    ns.mac = v.text("mac");
    QVM_TRY(check_mac(*ns.mac));
  }
  if (v.has("peer")) ns.peer = v.text("peer");
  if (v.has("tapdev")) ns.tapdev = v.text("tapdev");
  if (v.has("peerfeats")) ns.peerfeats = v.number("peerfeats");
  ns.bind_mode = v.text("bind-mode").value_or("0600");
  ns.mtu = static_cast<uint16_t>(v.number("mtu").value_or(1500));
  ns.queues = static_cast<uint16_t>(v.number("queues").value_or(1));
  ns.vhost = v.text("vhost").value_or("auto");
  ns.ioeventfd = v.text("ioeventfd").value_or("auto");
  QVM_TRY(check_octal_mode(ns.bind_mode));
  QVM_TRY(check_on_off_auto(ns.vhost));
  QVM_TRY(check_ioeventfd(ns.ioeventfd));
  return ns;
}

}  // namespace

config::VdevSchema virtio_net_schema() {
  using namespace schema;
  using config::OptKind;
  return {
      .type = "virtio-net",
      .summary = "virtio network device",
      .options =
          {custom("mac", check_mac, "MAC address (default: derived from system and vdev name)", {},
                  "xx:xx:xx:xx:xx:xx"),
           opt("peer", OptKind::kString,
               "tap:IFNAME, or another qvm's endpoint /run/qvm/SYSTEM/NAME", {}, "PATH"),
           number("peerfeats", "feature bits offered to the peer", 0, 0x7fc3, "0"),
           opt("tapdev", OptKind::kString, "host TAP interface (deprecated: use peer tap:IFNAME)",
               {}, "IFNAME"),
           custom("bind-mode", check_octal_mode, "permissions of the endpoint qvm creates", "0600",
                  "MODE"),
           number("mtu", "MTU offered to the guest", 68, 65535, "1500"),
           number("queues", "queue pairs", 1, 8, "1"),
           custom("vhost", check_on_off_auto, "kernel data path (/dev/vhost-net) for a TAP peer",
                  "auto", "on|off|auto"),
           custom("ioeventfd", check_ioeventfd,
                  "queue notifications via the event loop (on), the vCPU thread (off: fails with "
                  "Linux guests under sustained transmit, under investigation), or transmit via "
                  "the event loop and receive on the vCPU (tx); auto: tx",
                  "auto", "on|off|tx|auto"),
           legacy()},
      .can_mem = true,
      .can_pci = true,
      .intr = config::IntrPolicy::kNonPci,
      .parse = typed(&parse)};
}

}  // namespace qvm::vdev
