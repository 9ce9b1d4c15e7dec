#include "vdev/catalog.hpp"

#include "config/values.hpp"

namespace qvm::vdev {
namespace {

using config::IntrPolicy;
using config::OptionSpec;
using config::OptKind;
using config::VdevSchema;

Status check_hostdev(std::string_view s) {
  std::string_view p = s;
  if (!p.empty() && (p[0] == '<' || p[0] == '>')) p.remove_prefix(1);
  if (p.empty()) return make_error("expected [<|>]PATH (or - for qvm's stdin/stdout)");
  return {};
}

// virtio-blk: a disk image is opened for reading and writing, or read-only with `<`. The
// character-device form `>PATH` (output only) names no disk (spec §6.4.1).
Status check_disk(std::string_view s) {
  if (!s.empty() && s[0] == '>')
    return make_error("expected [<]PATH (a disk image; '<' opens it read-only), found '" +
                      std::string(s) + "': '>' is for output-only character devices");
  return check_hostdev(s);
}

Status check_delayed(std::string_view s) {
  if (s == "forever") return {};
  auto n = config::parse_number(s);
  if (!n) return make_error("expected SECONDS or 'forever', found '" + std::string(s) + "'");
  return {};
}

Status check_sched(std::string_view s) {
  std::string_view t = s;
  if (!t.empty() && (t.back() == 'r' || t.back() == 'f' || t.back() == 'o')) t.remove_suffix(1);
  auto n = config::parse_number(t);
  if (!n || *n > 99)
    return make_error("expected PRIORITY[r|f|o] (0-99), found '" + std::string(s) + "'");
  return {};
}

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

Status check_dio(std::string_view s) {
  if (s == "enable" || s == "disable") return {};
  auto b = config::parse_bool(s);
  if (!b) return make_error("expected enable or disable, found '" + std::string(s) + "'");
  return {};
}

Status check_aio(std::string_view s) {
  if (s == "inline" || s == "threads" || s == "io_uring") return {};
  return make_error("expected inline, threads or io_uring, found '" + std::string(s) + "'");
}

Status check_port(std::string_view s) {
  // qvm extension (virtio-console MULTIPORT): NAME[,HOSTDEV[,HOSTDEV]].
  auto parts = config::split(s, ',');
  if (parts.empty() || parts[0].empty() || parts[0].size() > 255 || parts.size() > 3)
    return make_error("expected NAME[,HOSTDEV[,HOSTDEV]] with a name of 1-255 characters, found '" +
                      std::string(s) + "'");
  for (size_t i = 1; i < parts.size(); ++i) QVM_TRY(check_hostdev(parts[i]));
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

Status check_create(std::string_view s) {
  auto parts = config::split(s, ',');
  if (parts.size() != 2 || parts[0].empty() || parts[0].size() > 31)
    return make_error("expected NAME,SIZE with a name of 1-31 characters, found '" +
                      std::string(s) + "'");
  auto size = config::parse_number(parts[1]);
  if (!size || *size == 0 || *size > (1ull << 32))
    return make_error("expected a shared-memory size of 1 byte to 4 GiB, found '" +
                      std::string(parts[1]) + "'");
  return {};
}

Status check_reg(std::string_view s) {
  auto l = config::parse_number_list(s);
  if (!l || l->size() != 2 || (*l)[0] > 0x7f || (*l)[1] > 0xff)
    return make_error("expected INDEX,VALUE (CMOS index 0-0x7f, value 0-0xff), found '" +
                      std::string(s) + "'");
  return {};
}

Status check_action(std::string_view s) {
  for (auto part : config::split(s, ',')) {
    if (part != "dump" && part != "terminate" && part != "reset")
      return make_error("expected [dump,]terminate or [dump,]reset, found '" + std::string(s) +
                        "'");
  }
  return {};
}

OptionSpec opt(std::string name, OptKind kind, std::string help,
               std::optional<std::string> def = {}, std::string arg_name = "VALUE") {
  OptionSpec o;
  o.name = std::move(name);
  o.kind = kind;
  o.help = std::move(help);
  o.default_text = std::move(def);
  o.arg_name = std::move(arg_name);
  return o;
}

OptionSpec custom(std::string name, Status (*fn)(std::string_view), std::string help,
                  std::optional<std::string> def = {}, std::string arg_name = "VALUE") {
  OptionSpec o =
      opt(std::move(name), OptKind::kCustom, std::move(help), std::move(def), std::move(arg_name));
  o.validate = fn;
  return o;
}

OptionSpec number(std::string name, std::string help, uint64_t min, uint64_t max,
                  std::optional<std::string> def = {}) {
  OptionSpec o = opt(std::move(name), OptKind::kNumber, std::move(help), std::move(def), "N");
  o.min = min;
  o.max = max;
  return o;
}

OptionSpec repeat(OptionSpec o) {
  o.repeatable = true;
  return o;
}

OptionSpec required(OptionSpec o) {
  o.required = true;
  return o;
}

std::vector<VdevSchema> make_schemas() {
  std::vector<VdevSchema> v;
  auto add = [&](VdevSchema s) { v.push_back(std::move(s)); };
  const auto hostdev =
      custom("hostdev", check_hostdev,
             "host file or device for I/O: - (qvm's stdio), PATH, <PATH input only, "
             ">PATH output only",
             {}, "[<|>]PATH");
  const auto delayed =
      custom("delayed", check_delayed, "how long to wait for the host device to appear", {},
             "SECONDS|forever");
  const auto sched = custom("sched", check_sched, "host priority of the device's I/O thread", {},
                            "PRIORITY[r|f|o]");
  const auto legacy = opt("legacy", OptKind::kFlag, "offer virtio 0.9.5 (legacy) instead of 1.x");

  add({"ioapic",
       "I/O APIC (in-kernel KVM model)",
       {},
       true,
       false,
       false,
       "0xfec00000",
       IntrPolicy::kUpstream,
       24,
       false,
       true});
  add({"8259",
       "legacy 8259A PIC (in-kernel KVM model; master at 0x20, slave at 0xa0)",
       {},
       false,
       true,
       false,
       std::nullopt,
       IntrPolicy::kNone,
       8,
       false,
       true});
  add({"timer8254",
       "8254 programmable interval timer (in-kernel KVM model)",
       {},
       false,
       true,
       false,
       "io:0x40",
       IntrPolicy::kOptional,
       0,
       false,
       true});
  add({"mc146818",
       "MC146818 real-time clock and CMOS",
       {repeat(custom("reg", check_reg, "preset a CMOS register", {}, "INDEX,VALUE"))},
       false,
       true,
       false,
       "io:0x70",
       IntrPolicy::kOptional,
       0,
       false,
       true});
  add({"pckeyboard",
       "i8042 keyboard controller (reset line for guest reboot)",
       {},
       false,
       true,
       false,
       "io:0x60",
       IntrPolicy::kOptional,
       0,
       false,
       true});
  add({"hpet",
       "high-precision event timer",
       {number("frequency", "counter frequency in Hz", 1000, 1000000000, "14318180"),
        opt("legacy-free", OptKind::kFlag, "do not offer legacy replacement routing")},
       true,
       false,
       false,
       "0xfed00000",
       IntrPolicy::kOptional,
       0,
       true,
       true});
  add({"ser8250",
       "16550A UART",
       {repeat(hostdev),
        number("batch", "batch output over this many microseconds", 0, 1000000, "0"), delayed,
        sched},
       false,
       true,
       false,
       "io:0x3f8",
       IntrPolicy::kRequired,
       0,
       false,
       false});
  add({"testdev",
       "qvm test device: a guest write of N to the port ends qvm with exit code 32+N",
       {},
       false,
       true,
       false,
       "io:0xf4",
       IntrPolicy::kNone,
       0,
       false,
       false});
  add({"wdt-ib700",
       "IB700-compatible watchdog timer",
       {custom("action", check_action, "what to do on expiry", "terminate",
               "[dump,]terminate|reset")},
       false,
       true,
       false,
       "io:0x441",
       IntrPolicy::kNone,
       0,
       false,
       true});
  add({"virtio-blk",
       "virtio block device",
       {required(custom("hostdev", check_disk, "backing file or block device (<PATH: read-only)",
                        {}, "[<]PATH")),
        custom("dio", check_dio, "O_DIRECT I/O to the host file", "disable", "enable|disable"),
        number("threads", "worker threads servicing requests", 1, 32, "1"),
        custom("aio", check_aio,
               "qvm extension: request engine inline, threads or io_uring (default: threads if "
               "threads > 1, else io_uring with dio, inline without)",
               {}, "ENGINE"),
        number("queues", "request queues", 1, 16, "1"),
        number("poll",
               "qvm extension, io_uring: event-loop busy-poll window after the last request "
               "started or finished, in microseconds (0: off)",
               0, 1000, "50"),
        opt("serial", OptKind::kString, "serial number reported to the guest (max 20 bytes)", {},
            "TEXT"),
        legacy, delayed},
       true,
       false,
       true,
       std::nullopt,
       IntrPolicy::kNonPci,
       0,
       false,
       false});
  add({"virtio-console",
       "virtio console",
       {repeat(hostdev),
        repeat(custom("port", check_port,
                      "qvm extension: one more port (MULTIPORT, at most 15) with its name and "
                      "host files as for hostdev",
                      {}, "NAME[,HOSTDEV[,HOSTDEV]]")),
        legacy, delayed, sched},
       true,
       false,
       true,
       std::nullopt,
       IntrPolicy::kNonPci,
       0,
       false,
       false});
  add({"virtio-entropy",
       "virtio entropy source (Linux: virtio-rng), fed from getrandom()",
       {number("rate", "bytes per second the guest may take (0: unlimited)", 0, UINT32_MAX, "0"),
        legacy, delayed},
       true,
       false,
       true,
       std::nullopt,
       IntrPolicy::kNonPci,
       0,
       false,
       false});
  add({"virtio-net",
       "virtio network device",
       {custom("mac", check_mac, "MAC address (default: derived from system and vdev name)", {},
               "xx:xx:xx:xx:xx:xx"),
        opt("peer", OptKind::kString, "tap:IFNAME, or another qvm's endpoint /run/qvm/SYSTEM/NAME",
            {}, "PATH"),
        number("peerfeats", "feature bits offered to the peer", 0, 0x7fc3, "0"),
        opt("tapdev", OptKind::kString, "host TAP interface (deprecated: use peer tap:IFNAME)", {},
            "IFNAME"),
        custom("bind-mode", check_octal_mode, "permissions of the endpoint qvm creates", "0600",
               "MODE"),
        number("mtu", "MTU offered to the guest", 68, 65535, "1500"),
        number("queues", "queue pairs", 1, 8, "1"),
        custom("vhost", check_on_off_auto, "kernel data path (/dev/vhost-net) for a TAP peer",
               "auto", "on|off|auto"),
        custom("ioeventfd", check_ioeventfd,
               "queue notifications via the event loop (on), the vCPU thread (off: fails with "
               "Linux guests under sustained transmit, under investigation), or transmit via the "
               "event loop and receive on the vCPU (tx); auto: tx",
               "auto", "on|off|tx|auto"),
        legacy},
       true,
       false,
       true,
       std::nullopt,
       IntrPolicy::kNonPci,
       0,
       false,
       false});
  add({"shmem",
       "QNX inter-VM shared memory (PCI 1C05:0001 or memory-mapped factory page)",
       {repeat(opt("allow", OptKind::kString, "region names this guest may use (shell pattern)", {},
                   "PATTERN")),
        repeat(opt("deny", OptKind::kString, "region names this guest may not use", {}, "PATTERN")),
        repeat(custom("create", check_create, "pre-create a named region", {}, "NAME,SIZE"))},
       true,
       false,
       true,
       std::nullopt,
       IntrPolicy::kNonPci,
       0,
       false,
       false});
  return v;
}

const std::vector<VdevSchema>& schemas() {
  static const std::vector<VdevSchema> s = make_schemas();
  return s;
}

}  // namespace

std::optional<uint32_t> pic_gsi_base(const config::VdevConfig& pic) {
  // The one IOAPIC has GSIs 0-23; the 8259 pair shares GSIs 0-15 with it (master at 0x20: 0-7,
  // slave at 0xa0: 8-15), as KVM's in-kernel irqchip routes them.
  if (pic.type == "ioapic") return 0u;
  if (pic.type == "8259") return pic.location && pic.location->addr == 0xa0 ? 8u : 0u;
  return std::nullopt;
}

std::span<const config::VdevSchema> builtin_schemas() {
  return schemas();
}

const config::VdevSchema* find_schema(std::string_view type) {
  for (const auto& s : schemas())
    if (s.type == type) return &s;
  return nullptr;
}

std::vector<std::string> builtin_type_names() {
  std::vector<std::string> n;
  for (const auto& s : schemas()) n.push_back(s.type);
  return n;
}

}  // namespace qvm::vdev
