// Checks that need the whole configuration: memory placement, names, interrupt references,
// required options (spec §2.3, §3.3, §5).
#include <algorithm>
#include <set>

#include "config/parser_impl.hpp"

namespace qvm::config::detail {

void Parser::validate() {
  place_memory();
  check_vdevs();
  if (cfg().memory.empty() && !cfg().list_variables) {
    SrcLoc at = first_loc_.valid()
                    ? first_loc_
                    : SrcLoc{std::make_shared<const std::string>("<command line>"), 0, 0};
    error(at, "no guest memory: add a 'ram' entry (e.g. 'ram 0,0xa0000 ram 1m,127m')");
  }
  for (const auto& p : cfg().passes) {
    if (!p.location && !p.intr) error(p.loc, "'pass' needs 'loc' and/or 'intr'");
  }
}

void Parser::place_memory() {
  uint64_t highest = 0;
  auto& mem = cfg().memory;
  for (size_t k = 0; k < mem.size(); ++k) {
    MemConfig& m = mem[k];
    // spec §3.3: without a start the block goes right after the highest RAM/ROM so far.
    if (!m.explicit_start) m.start = highest;
    if (m.end() < m.start) continue;  // reported by opt_memory
    for (size_t j = 0; j < k; ++j) {
      const MemConfig& o = mem[j];
      if (m.start < o.end() && o.start < m.end()) {
        error(m.loc, "guest memory [" + hex(m.start) + "-" + hex(m.end() - 1) +
                         "] overlaps the region declared at " + o.loc.str() + " [" + hex(o.start) +
                         "-" + hex(o.end() - 1) + "]");
        break;
      }
    }
    highest = std::max(highest, m.end());
  }
}

void Parser::check_vdevs() {
  std::set<std::string, std::less<>> names;
  for (const auto& v : cfg().vdevs) {
    if (v.name && !names.insert(*v.name).second)
      error(v.loc, "vdev name '" + *v.name + "' is used twice");
  }
  // spec §4 `set legacy-free on`: a PC without the ISA-era devices (no 8259 pair, no PIT, no
  // i8042; ACPI says so: FADT IAPC_BOOT_ARCH, MADT PCAT_COMPAT). A configuration that adds one
  // contradicts itself.
  if (auto lf = cfg().var("legacy-free"); lf && parse_bool(*lf).ok() && *parse_bool(*lf)) {
    for (const auto& v : cfg().vdevs)
      if (v.type == "8259" || v.type == "timer8254" || v.type == "pckeyboard")
        error(v.loc,
              "vdev " + v.type +
                  " on a legacy-free PC ('set legacy-free on'): remove the vdev or the setting");
  }
  auto check_ref = [&](const IntrRef& r, const SrcLoc& at, bool apic_ok, const std::string& who) {
    if (r.apic) {
      if (!apic_ok) error(at, who + ": 'apic' is only valid as an interrupt controller's upstream");
      return;
    }
    const VdevConfig* pic = cfg().find_vdev_by_name(r.pic);
    if (!pic) {
      std::string known;
      for (const auto& v : cfg().vdevs)
        if (v.schema && v.schema->pic_lines > 0 && v.name)
          known += (known.empty() ? "" : ", ") + *v.name;
      error(at, who + ": no interrupt controller named '" + r.pic + "'" +
                    (known.empty() ? " (give one a 'name', e.g. vdev ioapic ... name myioapic)"
                                   : " (defined: " + known + ")"));
      return;
    }
    if (!pic->schema || pic->schema->pic_lines == 0) {
      error(at, who + ": '" + r.pic + "' is a " + pic->type + ", not an interrupt controller");
      return;
    }
    if (r.line >= pic->schema->pic_lines)
      error(at, who + ": line " + std::to_string(r.line) + " out of range for " + pic->type + " '" +
                    r.pic + "' (0-" + std::to_string(pic->schema->pic_lines - 1) + ")");
  };
  for (const auto& v : cfg().vdevs) {
    if (!v.schema) continue;
    const VdevSchema& s = *v.schema;
    std::string who = "vdev " + v.type;
    for (const auto& r : v.intr) check_ref(r, v.intr_loc, s.intr == IntrPolicy::kUpstream, who);
    bool pci = v.on_pci();
    if (v.intr.empty()) {
      if (s.intr == IntrPolicy::kRequired || (s.intr == IntrPolicy::kNonPci && !pci))
        error(v.loc, who + " needs 'intr PIC:LINE' (e.g. intr myioapic:4)");
    }
    if (!v.location && !s.default_loc && !s.can_pci) error(v.loc, who + " needs 'loc LOCATION'");
    for (const auto& spec : s.options)
      if (spec.required && !v.has(spec.name))
        error(v.loc, who + " needs '" + spec.name + " " + spec.arg_name + "' (" + spec.help + ")");
    for (const auto& [name, vals] : v.options) {
      const OptionSpec* spec = s.find(name);
      if (spec && !spec->repeatable && vals.size() > 1)
        error(vals.back().loc, who + ": option '" + name + "' given more than once");
    }
  }
  // The devices' typed options, parsed once here with each device's own defaults and limits
  // (VdevSchema::parse); the factories build from them.
  if (out_.diags.has_errors()) return;
  for (auto& v : cfg().vdevs) {
    if (!v.schema || !v.schema->parse) continue;
    auto typed = v.schema->parse(v);
    if (!typed)
      error(v.loc, "vdev " + v.type + ": " + typed.error().message);
    else
      v.typed = std::move(*typed);
  }
  for (const auto& p : cfg().passes)
    if (p.intr) check_ref(p.intr->guest, p.intr->loc, false, "pass intr");
}

}  // namespace qvm::config::detail
