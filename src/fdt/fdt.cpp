#include "fdt/fdt.hpp"

extern "C" {
#include <libfdt.h>
}

#include "base/log.hpp"

namespace qvm::fdt {

namespace {

constexpr uint32_t kIntcPhandle = 1;

// Accumulates the first libfdt error so the building code reads straight through.
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& buf) : buf_(buf) {
    check(fdt_create(buf_.data(), static_cast<int>(buf_.size())));
    check(fdt_finish_reservemap(buf_.data()));
  }
  void begin(const std::string& name) { check(fdt_begin_node(buf_.data(), name.c_str())); }
  void end() { check(fdt_end_node(buf_.data())); }
  void prop(const char* name, const std::string& s) {
    check(fdt_property(buf_.data(), name, s.c_str(), static_cast<int>(s.size() + 1)));
  }
  void prop_empty(const char* name) { check(fdt_property(buf_.data(), name, nullptr, 0)); }
  void prop_u32(const char* name, uint32_t v) { check(fdt_property_u32(buf_.data(), name, v)); }
  void prop_u64(const char* name, uint64_t v) { check(fdt_property_u64(buf_.data(), name, v)); }
  void prop_cells(const char* name, const std::vector<uint32_t>& cells) {
    std::vector<fdt32_t> be;
    for (uint32_t c : cells) be.push_back(cpu_to_fdt32(c));
    check(
        fdt_property(buf_.data(), name, be.data(), static_cast<int>(be.size() * sizeof(fdt32_t))));
  }
  void prop_reg(const FdtRange& r) {
    prop_cells("reg", {static_cast<uint32_t>(r.base >> 32), static_cast<uint32_t>(r.base),
                       static_cast<uint32_t>(r.size >> 32), static_cast<uint32_t>(r.size)});
  }
  int finish() {
    check(fdt_finish(buf_.data()));
    return err_;
  }

 private:
  void check(int rc) {
    if (rc < 0 && err_ == 0) err_ = rc;
  }
  std::vector<uint8_t>& buf_;
  int err_ = 0;
};

std::string unit(const std::string& name, uint64_t addr) {
  return strprintf("%s@%llx", name.c_str(), static_cast<unsigned long long>(addr));
}

void write_tree(Writer& w, const FdtMachine& m) {
  w.begin("");
  w.prop_u32("#address-cells", 2);
  w.prop_u32("#size-cells", 2);
  w.prop("model", m.model);
  w.prop("compatible", m.compatible);
  w.prop_u32("interrupt-parent", kIntcPhandle);

  w.begin("chosen");
  w.prop("bootargs", m.bootargs);
  if (m.stdout_path) w.prop("stdout-path", *m.stdout_path);
  if (m.initrd) {
    w.prop_u64("linux,initrd-start", m.initrd->base);
    w.prop_u64("linux,initrd-end", m.initrd->base + m.initrd->size);
  }
  w.end();

  for (const auto& r : m.memory) {
    w.begin(unit("memory", r.base));
    w.prop("device_type", "memory");
    w.prop_reg(r);
    w.end();
  }

  w.begin("cpus");
  w.prop_u32("#address-cells", 1);
  w.prop_u32("#size-cells", 0);
  for (uint32_t i = 0; i < m.num_cpus; i++) {
    w.begin(unit("cpu", i));
    w.prop("device_type", "cpu");
    if (!m.cpu_compatible.empty()) w.prop("compatible", m.cpu_compatible);
    w.prop_u32("reg", i);
    w.end();
  }
  w.end();

  w.begin(unit(m.intc.node_name, m.intc.reg.base));
  w.prop("compatible", m.intc.compatible);
  w.prop_reg(m.intc.reg);
  w.prop_empty("interrupt-controller");
  w.prop_u32("#address-cells", 0);  // no interrupt-map users; dtc's interrupt_provider check
  w.prop_u32("#interrupt-cells", m.intc.interrupt_cells);
  w.prop_u32("phandle", kIntcPhandle);
  w.end();

  for (const auto& d : m.devices) {
    w.begin(unit(d.node_name, d.reg.base));
    w.prop("compatible", d.compatible);
    w.prop_reg(d.reg);
    if (!d.interrupts.empty()) w.prop_cells("interrupts", d.interrupts);
    if (d.clock_frequency) w.prop_u32("clock-frequency", *d.clock_frequency);
    w.end();
  }
  w.end();
}

}  // namespace

Result<std::vector<uint8_t>> build_fdt(const FdtMachine& m) {
  if (m.intc.node_name.empty() || m.intc.compatible.empty() || m.intc.interrupt_cells == 0)
    return make_error("FDT: interrupt controller needs a name, compatible and #interrupt-cells");
  for (const auto& d : m.devices) {
    if (d.node_name.empty() || d.compatible.empty())
      return make_error("FDT: device node without a name or compatible");
    if (d.interrupts.size() % m.intc.interrupt_cells != 0)
      return make_error(strprintf("FDT: %s: interrupts is not a multiple of #interrupt-cells",
                                  d.node_name.c_str()));
  }
  // Grow the buffer until the tree fits (libfdt reports -FDT_ERR_NOSPACE).
  for (size_t size = 16 * 1024; size <= 16 * 1024 * 1024; size *= 2) {
    std::vector<uint8_t> buf(size);
    Writer w(buf);
    write_tree(w, m);
    int rc = w.finish();
    if (rc == -FDT_ERR_NOSPACE) continue;
    if (rc < 0) return make_error(std::string("FDT: libfdt: ") + fdt_strerror(rc));
    // Header field totalsize: big-endian u32 at offset 4 (Devicetree Specification §5.2).
    buf.resize((size_t{buf[4]} << 24) | (size_t{buf[5]} << 16) | (size_t{buf[6]} << 8) | buf[7]);
    return buf;
  }
  return make_error("FDT: device tree larger than 16 MiB");
}

}  // namespace qvm::fdt
