// vdev virtio-blk (spec §6.4.1): its schema and typed options (VirtioBlk::Options).
#include "config/values.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"
#include "vdev/virtio_blk/virtio_blk.hpp"

namespace qvm::vdev {
namespace {

// A disk image is opened for reading and writing, or read-only with `<`. The character-device
// form `>PATH` (output only) names no disk (spec §6.4.1).
Status check_disk(std::string_view s) {
  if (!s.empty() && s[0] == '>')
    return make_error("expected [<]PATH (a disk image; '<' opens it read-only), found '" +
                      std::string(s) + "': '>' is for output-only character devices");
  return schema::check_hostdev(s);
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

Status check_lock(std::string_view s) {
  if (s == "on" || s == "warn" || s == "off") return {};
  return make_error("expected on, warn or off, found '" + std::string(s) + "'");
}

Result<VirtioBlk::Options> parse(const config::VdevConfig& v) {
  VirtioBlk::Options o;
  std::string hostdev = v.text("hostdev").value_or("");
  QVM_TRY(check_disk(hostdev));
  if (hostdev[0] == '<') {
    o.read_only = true;
    hostdev = hostdev.substr(1);
  }
  o.path = hostdev;
  const std::string dio = v.text("dio").value_or("disable");
  auto dio_bool = config::parse_bool(dio);
  o.direct = dio == "enable" || (dio_bool.ok() && *dio_bool);
  o.threads = static_cast<uint32_t>(v.number("threads").value_or(VirtioBlk::kDefaultThreads));
  o.queues = static_cast<uint16_t>(v.number("queues").value_or(1));
  o.serial = v.text("serial").value_or("");
  o.poll_us = static_cast<uint32_t>(v.number("poll").value_or(VirtioBlk::kDefaultPollUs));
  const std::string aio = v.text("aio").value_or("");
  if (aio == "inline") o.aio = VirtioBlk::Aio::kInline;
  if (aio == "threads") o.aio = VirtioBlk::Aio::kThreads;
  if (aio == "io_uring") o.aio = VirtioBlk::Aio::kUring;
  const std::string lock = v.text("lock").value_or("on");
  QVM_TRY(check_lock(lock));
  o.lock = lock == "off"    ? VirtioBlk::Lock::kOff
           : lock == "warn" ? VirtioBlk::Lock::kWarn
                            : VirtioBlk::Lock::kOn;
  return o;
}

}  // namespace

config::VdevSchema virtio_blk_schema() {
  using namespace schema;
  using config::OptKind;
  return {
      .type = "virtio-blk",
      .summary = "virtio block device",
      .options =
          {required(custom("hostdev", check_disk, "backing file or block device (<PATH: read-only)",
                           {}, "[<]PATH")),
           custom("dio", check_dio, "O_DIRECT I/O to the host file", "disable", "enable|disable"),
           number("threads", "worker threads servicing requests", 1, VirtioBlk::kMaxThreads, "1"),
           custom("aio", check_aio,
                  "qvm extension: request engine inline, threads or io_uring (default: threads "
                  "if threads > 1, else io_uring with dio, inline without)",
                  {}, "ENGINE"),
           number("queues", "request queues", 1, VirtioBlk::kMaxQueues, "1"),
           number("poll",
                  "qvm extension, io_uring: event-loop busy-poll window after the last request "
                  "started or finished, in microseconds (0: off)",
                  0, 1000, std::to_string(VirtioBlk::kDefaultPollUs)),
           opt("serial", OptKind::kString, "serial number reported to the guest (max 20 bytes)", {},
               "TEXT"),
           custom("lock", check_lock,
                  "qvm extension: lock the image (exclusive read-write, shared read-only) and "
                  "refuse one another process holds (on), only warn (warn), or do not lock (off)",
                  "on", "on|warn|off"),
           legacy(), delayed()},
      .can_mem = true,
      .can_pci = true,
      .intr = config::IntrPolicy::kNonPci,
      .parse = typed(&parse)};
}

}  // namespace qvm::vdev
