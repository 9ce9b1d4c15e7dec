// virtio vdevs (spec §6.4) on the virtio-mmio transport (virtio 1.2 §4.2): a vdev with `loc` and
// `intr` is memory-mapped (spec §5). Hot paths stay in the kernel: each queue's QueueNotify
// register is a KVM ioeventfd (datamatch = queue index) that wakes the event loop, and the
// interrupt is a KVM irqfd (edge; the DSDT describes it as such), so neither a notification nor an
// interrupt costs an exit to user space.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.hpp"
#include "base/qnx_ids.hpp"
#include "config/values.hpp"
#include "machine/machine_impl.hpp"
#include "vdev/virtio_blk/virtio_blk.hpp"
#include "vdev/virtio_console/virtio_console.hpp"
#include "vdev/virtio_entropy/virtio_entropy.hpp"
#include "vdev/virtio_net/virtio_net_setup.hpp"
#include "virtio/transport/mmio.hpp"

namespace qvm::machine {

Result<MachineImpl::VirtioBuild> MachineImpl::make_virtio_device(const config::VdevConfig& v) {
  VirtioBuild b;
  if (v.type == "virtio-entropy") {
    vdev::VirtioEntropy::Options o;
    o.rate_bytes_per_sec = v.number("rate").value_or(0);
    auto dev = std::make_shared<vdev::VirtioEntropy>(clock_, o);
    b.device = dev;
    // A rate-limited device resumes when its token bucket refills.
    if (o.rate_bytes_per_sec) b.retry_after = [raw = dev.get()] { return raw->retry_after(); };
    return b;
  }
  if (v.type == "virtio-blk") {
    vdev::VirtioBlk::Options o;
    std::string hostdev = v.text("hostdev").value_or("");
    if (!hostdev.empty() && hostdev[0] == '<') {
      o.read_only = true;
      hostdev = hostdev.substr(1);
    }
    o.path = hostdev;
    std::string dio = v.text("dio").value_or("disable");
    auto dio_bool = config::parse_bool(dio);
    o.direct = dio == "enable" || (dio_bool.ok() && *dio_bool);
    o.threads =
        static_cast<uint32_t>(v.number("threads").value_or(vdev::VirtioBlk::kDefaultThreads));
    o.queues = static_cast<uint16_t>(v.number("queues").value_or(1));
    o.serial = v.text("serial").value_or("");
    o.poll_us = static_cast<uint32_t>(v.number("poll").value_or(vdev::VirtioBlk::kDefaultPollUs));
    const std::string aio = v.text("aio").value_or("");
    if (aio == "inline") o.aio = vdev::VirtioBlk::Aio::kInline;
    if (aio == "threads") o.aio = vdev::VirtioBlk::Aio::kThreads;
    if (aio == "io_uring") o.aio = vdev::VirtioBlk::Aio::kUring;
    auto blk = vdev::VirtioBlk::open(o);
    if (!blk) return make_error(blk.error().message);
    b.device = *blk;
    b.summary = " hostdev " + v.text("hostdev").value_or("") + " aio " +
                vdev::VirtioBlk::aio_name((*blk)->aio());
    if ((*blk)->completion_fd() >= 0) {
      // io_uring completions are reaped on the event loop (the thread that submits them too).
      vdev::VirtioBlk* raw = blk->get();
      b.attach = [this, raw](std::function<void(uint16_t)> notify) -> Status {
        if (opts_.dryrun) return {};
        loop_->add_poller([raw, notify] { return raw->poll(notify); },
                          std::chrono::microseconds(raw->poll_us()));
        return loop_->add_fd(raw->completion_fd(), [raw] { raw->on_completion(); });
      };
    }
    return b;
  }
  if (v.type == "virtio-console") {
    // Port 0 from `hostdev`; `port NAME[,HOSTDEV[,HOSTDEV]]` adds ports 1.. (MULTIPORT).
    std::vector<std::pair<std::string, std::vector<std::string>>> specs{{"", v.all("hostdev")}};
    for (const auto& p : v.all("port")) {
      auto parts = config::split(p, ',');
      std::vector<std::string> hd(parts.begin() + 1, parts.end());
      specs.emplace_back(std::string(parts[0]), std::move(hd));
    }
    if (specs.size() > vdev::VirtioConsole::kMaxPorts)
      return make_error(strprintf("virtio-console: at most %u ports (port 0 and %u `port`s)",
                                  vdev::VirtioConsole::kMaxPorts,
                                  vdev::VirtioConsole::kMaxPorts - 1));
    auto holder = std::make_shared<std::function<void(uint16_t)>>();
    std::vector<std::shared_ptr<vdev::CharEndpoints>> eps;
    std::vector<vdev::VirtioConsole::Port> ports;
    b.summary = "";
    for (size_t i = 0; i < specs.size(); ++i) {
      auto ep = std::make_shared<vdev::CharEndpoints>(
          QVM_TRY(vdev::open_char_endpoints(specs[i].second)));
      int out = ep->out;
      vdev::VirtioConsole::Port port;
      port.name = specs[i].first;
      port.host_connected = ep->in >= 0 || ep->out >= 0;
      port.output = [out](std::span<const uint8_t> bytes) {
        size_t done = 0;
        while (out >= 0 && done < bytes.size()) {
          ssize_t n = ::write(out, bytes.data() + done, bytes.size() - done);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          done += static_cast<size_t>(n);
        }
      };
      ports.push_back(std::move(port));
      const std::string desc = ep->description.empty() ? std::string(" none") : ep->description;
      b.summary += i == 0 ? " hostdev:" + desc
                          : strprintf(", port %zu %s:", i, specs[i].first.c_str()) + desc;
      if (ep->in == STDIN_FILENO) uses_stdin_ = true;
      eps.push_back(std::move(ep));
    }
    auto console = std::make_shared<vdev::VirtioConsole>(
        vdev::VirtioConsole::Options{},
        [holder](uint16_t q) {
          if (*holder) (*holder)(q);
        },
        std::move(ports));
    b.device = console;
    b.attach = [this, eps, holder, console](std::function<void(uint16_t)> notify) -> Status {
      *holder = std::move(notify);
      for (size_t i = 0; i < eps.size(); ++i) {
        keep_.push_back(eps[i]);
        if (eps[i]->in < 0 || opts_.dryrun) continue;
        int in = eps[i]->in;
        const auto port = static_cast<uint32_t>(i);
        // Input the device refuses (no room) is dropped with a rate-limited warning: each port
        // buffers 4 KiB while the guest has no receive buffers posted (or, ports >= 1, has not
        // opened the port).
        auto added = loop_->add_fd(in, [this, in, console, port] {
          uint8_t buf[256];
          ssize_t n = ::read(in, buf, sizeof buf);
          if (n <= 0) {
            if (n == 0 || (errno != EINTR && errno != EAGAIN)) (void)loop_->remove_fd(in);
            return;
          }
          size_t took =
              console->receive(std::span<const uint8_t>(buf, static_cast<size_t>(n)), port);
          if (took < static_cast<size_t>(n)) {
            static RateLimit rl;
            uint64_t supp = 0;
            if (rl.allow(std::chrono::steady_clock::now(), &supp))
              log_warn("virtio-console: guest is not reading port %u; %zd input bytes dropped",
                       port, n - static_cast<ssize_t>(took));
          }
        });
        if (!added)
          log_debug("virtio-console input is not pollable: %s", added.error().message.c_str());
      }
      return {};
    };
    return b;
  }
  if (v.type == "virtio-net") {
    vdev::NetSetup ns;
    ns.system = cfg_.system_name();
    ns.vdev_name = v.name.value_or("");
    ns.unique_id = v.loc.str();
    if (v.has("mac")) ns.mac = v.text("mac");
    if (v.has("peer")) ns.peer = v.text("peer");
    if (v.has("tapdev")) ns.tapdev = v.text("tapdev");
    if (v.has("peerfeats")) ns.peerfeats = v.number("peerfeats");
    ns.bind_mode = v.text("bind-mode").value_or("0600");
    ns.mtu = static_cast<uint16_t>(v.number("mtu").value_or(1500));
    ns.queues = static_cast<uint16_t>(v.number("queues").value_or(1));
    ns.vhost = v.text("vhost").value_or("auto");
    ns.ioeventfd = v.text("ioeventfd").value_or("auto");
    vdev::VhostPlan plan;
    if (opts_.dryrun) plan = QVM_TRY(vdev::vhost_plan(ns));
    std::string intended = ns.peer.value_or(ns.tapdev ? "tap:" + *ns.tapdev : "none");
    if (opts_.dryrun) {
      // dryrun creates nothing on the host (no TAP, no socket): a device without a backend.
      ns.peer.reset();
      ns.tapdev.reset();
      if (ns.queues > 1) intended += ", queues " + std::to_string(ns.queues);
      ns.queues = 1;
    }
    auto net = vdev::open_virtio_net(ns);
    if (!net) return make_error(net.error().message);
    std::shared_ptr<vdev::VirtioNet> dev = *net;
    b.device = dev;
    b.summary =
        " " + dev->describe() +
        (opts_.dryrun ? " (dryrun: peer " + intended + " not opened, " + plan.text + ")" : "");
    vdev::VirtioNet* raw = dev.get();
    b.notify_fd = [raw](uint16_t q, int fd) { return raw->set_notify_fd(q, fd); };
    b.ioeventfd = dev->wants_ioeventfd() || plan.kernel;
    b.queue_ioeventfd = [raw](uint16_t q) { return raw->queue_ioeventfd(q); };
    b.attach = [this, raw](std::function<void(uint16_t)> notify) -> Status {
      raw->set_kick(std::move(notify));
      return loop_->add_fd(raw->poll_fd(), [raw] { raw->on_ready(); });
    };
    return b;
  }
  return Error{"not implemented yet in this version of qvm", ENOSYS};
}

Status MachineImpl::add_virtio(const config::VdevConfig& v) {
  if (v.on_pci()) return add_virtio_pci(v);
  if (v.location->space != config::AddrSpace::kMem)
    return make_error("virtio-mmio needs a memory location");
  uint64_t base = v.location->addr;
  if (base & 0xfff) return make_error("a virtio-mmio device must be 4 KiB aligned");
  if (base + virtio::MmioTransport::kRegionSize > (1ull << 32))
    return make_error("a virtio-mmio device must lie below 4 GiB (ACPI Memory32Fixed)");
  for (const auto& r : mem_.regions())
    if (base < r.end() && r.gpa < base + virtio::MmioTransport::kRegionSize)
      return make_error("its registers overlap guest memory");
  uint32_t gsi = QVM_TRY(device_gsi(v, std::nullopt));

  VirtioBuild built = QVM_TRY(make_virtio_device(v));
  auto dev = built.device;
  UniqueFd irqfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!irqfd) return Error::from_errno("eventfd", errno);
  if (vm_) QVM_TRY(vm_->add_irqfd(irqfd.get(), gsi));
  int ifd = irqfd.get();
  bool live = vm_.has_value();
  auto transport = std::make_shared<virtio::MmioTransport>(
      mem_, dev,
      [ifd, live] {
        if (!live) return;
        uint64_t one = 1;
        ssize_t n = ::write(ifd, &one, sizeof one);  // the kernel injects the edge (irqfd)
        (void)n;
      },
      virtio::MmioOptions{v.has("legacy"), kQnxPciVendor});
  QVM_TRY(mmio_.insert(base, virtio::MmioTransport::kRegionSize, transport, v.type));
  virtio::MmioTransport* tp = transport.get();
  if (built.attach) QVM_TRY(built.attach([tp](uint16_t q) { tp->handle_notify(q); }));
  keep_.push_back(std::make_shared<UniqueFd>(std::move(irqfd)));
  keep_.push_back(transport);

  QVM_TRY(wire_virtio(
      built, transport->num_queues(),
      [tp, base](uint16_t q) {
        auto m = tp->notify_match(q);
        return NotifyAt{base + m.offset, 4, false, m.value};
      },
      [tp](uint16_t q) { tp->handle_notify(q); }));
  const std::string nt = built.notify_text(transport->num_queues());
  virtio_mmio_.push_back({base, static_cast<uint32_t>(virtio::MmioTransport::kRegionSize), gsi});
  live_status_.emplace_back(device_lines_.size(),
                            [t = transport.get()] { return t->status_report(); });
  device_lines_.push_back(
      strprintf("%-11s mem 0x%llx-0x%llx  gsi %u  virtio-mmio%s (%s, irqfd)%s", v.type.c_str(),
                static_cast<unsigned long long>(base),
                static_cast<unsigned long long>(base + virtio::MmioTransport::kRegionSize - 1), gsi,
                v.has("legacy") ? " v1 (legacy)" : " v2", nt.empty() ? "ioeventfd" : nt.c_str(),
                built.summary.c_str()));
  return {};
}

}  // namespace qvm::machine
