// vdev virtio-console (spec §6.4.2): its schema and typed options (VirtioConsoleOptions).
#include "config/values.hpp"
#include "vdev/api/schema_util.hpp"
#include "vdev/schemas.hpp"

namespace qvm::vdev {
namespace {

Status check_port(std::string_view s) {
  // qvm extension (virtio-console MULTIPORT): NAME[,HOSTDEV[,HOSTDEV]].
  auto parts = config::split(s, ',');
  if (parts.empty() || parts[0].empty() || parts[0].size() > 255 || parts.size() > 3)
    return make_error("expected NAME[,HOSTDEV[,HOSTDEV]] with a name of 1-255 characters, found '" +
                      std::string(s) + "'");
  for (size_t i = 1; i < parts.size(); ++i) QVM_TRY(schema::check_hostdev(parts[i]));
  return {};
}

Result<VirtioConsoleOptions> parse(const config::VdevConfig& v) {
  // Port 0 from `hostdev`; `port NAME[,HOSTDEV[,HOSTDEV]]` adds ports 1.. (MULTIPORT).
  VirtioConsoleOptions o;
  o.ports.push_back({"", v.all("hostdev")});
  for (const auto& p : v.all("port")) {
    QVM_TRY(check_port(p));
    auto parts = config::split(p, ',');
    o.ports.push_back({std::string(parts[0]), {parts.begin() + 1, parts.end()}});
  }
  return o;
}

}  // namespace

config::VdevSchema virtio_console_schema() {
  using namespace schema;
  return {.type = "virtio-console",
          .summary = "virtio console",
          .options = {repeat(hostdev()),
                      repeat(custom("port", check_port,
                                    "qvm extension: one more port (MULTIPORT, at most 15) with its "
                                    "name and host files as for hostdev",
                                    {}, "NAME[,HOSTDEV[,HOSTDEV]]")),
                      legacy(), delayed(), sched()},
          .can_mem = true,
          .can_pci = true,
          .intr = config::IntrPolicy::kNonPci,
          .parse = typed(&parse)};
}

}  // namespace qvm::vdev
