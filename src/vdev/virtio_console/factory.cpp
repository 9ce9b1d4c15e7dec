// vdev virtio-console (spec §6.4.2; virtio 1.2 §5.3): port 0 from `hostdev`, ports 1.. from `port`
// (MULTIPORT), host input read on the event loop.
#include <unistd.h>

#include <cerrno>

#include "base/log.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"
#include "vdev/virtio_console/virtio_console.hpp"

namespace qvm::vdev {
namespace {

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  VirtioDeviceBuild b;
  b.legacy = v.has("legacy");  // spec §5: virtio 0.9.5 instead of 1.x
  // Port 0 from `hostdev`, then each `port` (parsed once: virtio_console/schema.cpp).
  const auto opts = QVM_TRY(typed_options<VirtioConsoleOptions>(v));
  std::vector<std::pair<std::string, std::vector<std::string>>> specs;
  for (const auto& p : opts.ports) specs.emplace_back(p.name, p.hostdevs);
  if (specs.size() > VirtioConsole::kMaxPorts)
    return make_error(strprintf("virtio-console: at most %u ports (port 0 and %u `port`s)",
                                VirtioConsole::kMaxPorts, VirtioConsole::kMaxPorts - 1));
  auto holder = std::make_shared<std::function<void(uint16_t)>>();
  std::vector<std::shared_ptr<CharEndpoints>> eps;
  std::vector<VirtioConsole::Port> ports;
  b.summary = "";
  for (size_t i = 0; i < specs.size(); ++i) {
    auto ep = std::make_shared<CharEndpoints>(QVM_TRY(ctx.open_char(specs[i].second)));
    // Output never blocks the thread that runs the transmit queue (char_output.hpp).
    std::shared_ptr<CharOutput> out =
        QVM_TRY(CharOutput::create(ep->out, ctx.dryrun() ? nullptr : &ctx.loop()));
    ctx.keep(out);
    VirtioConsole::Port port;
    port.name = specs[i].first;
    port.host_connected = ep->in >= 0 || ep->out >= 0;
    port.output = [o = out.get()](std::span<const uint8_t> bytes) { o->write(bytes); };
    ports.push_back(std::move(port));
    const std::string desc = ep->description.empty() ? std::string(" none") : ep->description;
    b.summary +=
        i == 0 ? " hostdev:" + desc : strprintf(", port %zu %s:", i, specs[i].first.c_str()) + desc;
    if (ep->in == STDIN_FILENO) ctx.uses_terminal();
    eps.push_back(std::move(ep));
  }
  auto console = std::make_shared<VirtioConsole>(
      VirtioConsole::Options{},
      [holder](uint16_t q) {
        if (*holder) (*holder)(q);
      },
      std::move(ports));
  b.device = console;
  b.attach = [&ctx, eps, holder, console](std::function<void(uint16_t)> notify) -> Status {
    *holder = std::move(notify);
    for (size_t i = 0; i < eps.size(); ++i) {
      ctx.keep(eps[i]);
      if (eps[i]->in < 0 || ctx.dryrun()) continue;
      int in = eps[i]->in;
      const auto port = static_cast<uint32_t>(i);
      // Input the device refuses (no room) is dropped with a rate-limited warning: each port
      // buffers 4 KiB while the guest has no receive buffers posted (or, ports >= 1, has not
      // opened the port).
      auto added = ctx.loop().add_fd(in, [&ctx, in, console, port] {
        uint8_t buf[256];
        ssize_t n = ::read(in, buf, sizeof buf);
        if (n <= 0) {
          if (n == 0 || (errno != EINTR && errno != EAGAIN)) (void)ctx.loop().remove_fd(in);
          return;
        }
        size_t took = console->receive(std::span<const uint8_t>(buf, static_cast<size_t>(n)), port);
        if (took < static_cast<size_t>(n)) {
          static RateLimit rl;
          uint64_t supp = 0;
          if (rl.allow(std::chrono::steady_clock::now(), &supp))
            log_warn("virtio-console: guest is not reading port %u; %zd input bytes dropped", port,
                     n - static_cast<ssize_t>(took));
        }
      });
      if (!added)
        log_debug("virtio-console input is not pollable: %s", added.error().message.c_str());
    }
    return {};
  };
  return ctx.add_virtio(v, std::move(b));
}

}  // namespace

constinit const VdevFactory kVirtioConsoleFactory{"virtio-console", create};

}  // namespace qvm::vdev
