// vdev ser8250 (spec §6.2.7): a 16550A on the port bus, its `hostdev` ends on the host, the
// interrupt on its `intr` (required: ISA COM ports have no fixed line here).
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "base/log.hpp"
#include "vdev/api/factories.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/common/register_device.hpp"
#include "vdev/schemas.hpp"
#include "vdev/uart/uart16550.hpp"

namespace qvm::vdev {
namespace {

constexpr uint64_t kPorts = 8;
constexpr uint32_t kClockHz = 1843200;  // the PC UART crystal (FDT clock-frequency)

struct Ser8250 {
  std::mutex mu;
  Interrupt irq;
  CharEndpoints ends;
  std::shared_ptr<CharOutput> out;
  std::unique_ptr<Uart16550> model;
  std::shared_ptr<ByteRegisterDevice<Uart16550>> adapter;
};

Status create(const config::VdevConfig& v, VdevContext& ctx) {
  auto d = std::make_shared<Ser8250>();
  d->irq = QVM_TRY(ctx.interrupt(v, std::nullopt));
  const auto opts = QVM_TRY(typed_options<Ser8250Options>(v));  // uart/schema.cpp
  d->ends = QVM_TRY(ctx.open_char(opts.hostdevs));
  // Transmitted bytes never block the vCPU that wrote THR (char_output.hpp).
  d->out = QVM_TRY(CharOutput::create(d->ends.out, ctx.dryrun() ? nullptr : &ctx.loop()));
  CharOutput* out = d->out.get();
  d->model = std::make_unique<Uart16550>(*d->irq.line, [out](uint8_t c) { out->write({&c, 1}); });
  d->adapter = std::make_shared<ByteRegisterDevice<Uart16550>>(*d->model, d->mu);
  const uint64_t port = ctx.port(v);
  QVM_TRY(ctx.add_pio(port, kPorts, d->adapter, "ser8250"));
  if (d->ends.in >= 0 && !ctx.dryrun()) {
    if (d->ends.in == STDIN_FILENO) ctx.uses_terminal();
    Ser8250* raw = d.get();
    const int in = d->ends.in;
    event::EventLoop& loop = ctx.loop();
    auto added = loop.add_fd(in, [&loop, raw, in] {
      uint8_t buf[256];
      ssize_t n = ::read(in, buf, sizeof buf);
      if (n <= 0) {
        if (n == 0 || (errno != EINTR && errno != EAGAIN)) (void)loop.remove_fd(in);  // EOF
        return;
      }
      std::lock_guard lk(raw->mu);
      raw->model->receive(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    });
    if (!added) log_debug("serial input %d is not pollable: %s", in, added.error().message.c_str());
  }
  const uint32_t gsi = d->irq.gsi;
  ctx.keep(d);
  AcpiIsaDevice acpi{"PNP0501", static_cast<uint16_t>(port), kPorts, std::nullopt};
  if (gsi < 16) acpi.irq = static_cast<uint8_t>(gsi);
  ctx.add_acpi_device(acpi);
  fdt::FdtDevice node;
  node.node_name = "serial";
  node.compatible = "ns16550a";
  node.reg = {port, kPorts};
  node.interrupts = {gsi, 3};  // edge, rising
  node.clock_frequency = kClockHz;
  ctx.add_fdt_device(node, true);
  ctx.describe(strprintf("ser8250     io 0x%llx-0x%llx  gsi %u  hostdev:%s",
                         static_cast<unsigned long long>(port),
                         static_cast<unsigned long long>(port + kPorts - 1), gsi,
                         d->ends.description.empty() ? " none" : d->ends.description.c_str()),
               [out] {
                 return std::vector<std::string>{
                     strprintf("output: %zu bytes waiting for the host, %llu dropped",
                               out->buffered(), static_cast<unsigned long long>(out->dropped()))};
               });
  return {};
}

}  // namespace

constinit const VdevFactory kSer8250Factory{"ser8250", create};

}  // namespace qvm::vdev
