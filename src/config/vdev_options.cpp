// `vdev TYPE` and the options that apply to the current vdev: the common ones of spec §5 (loc,
// intr, hostvector, name, log) and the device-specific ones its schema declares.
#include "config/parser_impl.hpp"

namespace qvm::config::detail {

void Parser::opt_vdev(const Token& opt, const Token& type) {
  const VdevSchema* schema = in_.schemas ? in_.schemas(type.text) : nullptr;
  if (!schema && in_.plugins) {
    // A loadable vdev (docs/vdev-api.md): `set vdev-path` as set so far is searched first.
    auto it = cfg().vars.find("vdev-path");
    auto loaded = in_.plugins(type.text, it == cfg().vars.end() ? "" : it->second.text);
    if (!loaded) {
      error(type.loc, "vdev " + type.text + ": " + loaded.error().message);
      ctx_ = Ctx::kBadVdev;
      return;
    }
    schema = *loaded;
  }
  if (!schema) {
    std::string known;
    for (const auto& t : in_.vdev_types) known += (known.empty() ? "" : ", ") + t;
    error(type.loc, "unknown vdev type '" + type.text + "'" +
                        (known.empty() ? std::string() : "; known types: " + known));
    ctx_ = Ctx::kBadVdev;
    return;
  }
  ctx_ = Ctx::kVdev;
  VdevConfig v;
  v.type = type.text;
  v.schema = schema;
  v.loc = opt.loc;
  cfg().vdevs.push_back(std::move(v));
  if (cfg().vdevs.size() > 4096) error(opt.loc, "more than 4096 vdevs");
}

bool Parser::vdev_option(const Token& opt, const std::vector<Token>& toks, size_t& i) {
  VdevConfig& v = cfg().vdevs.back();
  const VdevSchema& s = *v.schema;
  const std::string& w = opt.text;
  if (w == "loc") {
    const Token* a = arg(toks, i, opt, "a location");
    if (!a) return true;
    auto loc = parse_guest_loc(a->text);
    if (!loc) {
      error(a->loc, "vdev " + v.type + " loc: " + loc.error().message);
      return true;
    }
    // A bare number means mem: except for devices that only live in I/O space (spec §6.2:
    // "default type io:" for 8259, ser8250, pckeyboard).
    if (a->text.find(':') == std::string::npos && s.can_io && !s.can_mem) {
      loc->space = AddrSpace::kIo;
      // The same range as io:PORT, so every accepted spelling prints back as one that parses.
      if (loc->addr > 0xffff) {
        error(a->loc, "vdev " + v.type + " loc: I/O port " + a->text + " out of range (0-0xffff)");
        return true;
      }
    }
    bool fits = (loc->space == AddrSpace::kMem && s.can_mem) ||
                (loc->space == AddrSpace::kIo && s.can_io) ||
                (loc->space == AddrSpace::kPci && s.can_pci);
    if (!fits) {
      std::string allowed;
      if (s.can_mem) allowed += " mem:";
      if (s.can_io) allowed += " io:";
      if (s.can_pci) allowed += " pci:";
      error(a->loc, "vdev " + v.type + " cannot be placed at '" + a->text +
                        "'; allowed location types:" + (allowed.empty() ? " none" : allowed));
      return true;
    }
    if (loc->space == AddrSpace::kPci && loc->pci_by_id) {
      error(a->loc, "vdev " + v.type + ": a vdev's PCI location is pci:BUS:DEV[.FUNC]");
      return true;
    }
    v.location = *loc;
    v.location_loc = a->loc;
    return true;
  }
  if (w == "intr" || (w == "intrmap" && s.multi_intr)) {
    const Token* a = arg(toks, i, opt, "an interrupt PIC:LINE");
    if (!a) return true;
    auto list = parse_intr_list(a->text);
    if (!list) {
      error(a->loc, "vdev " + v.type + " intr: " + list.error().message);
      return true;
    }
    if (list->size() > 1 && !s.multi_intr) {
      error(a->loc, "vdev " + v.type + " takes one interrupt, found a list '" + a->text + "'");
      return true;
    }
    if (s.intr == IntrPolicy::kNone) {
      error(opt.loc, "vdev " + v.type + " has no interrupt; remove 'intr'");
      return true;
    }
    v.intr = std::move(*list);
    v.intr_loc = a->loc;
    return true;
  }
  if (w == "hostvector") {
    const Token* a = arg(toks, i, opt, "a host vector number");
    if (!a) return true;
    if (s.pic_lines == 0) {
      error(opt.loc, "'hostvector' applies only to interrupt-controller vdevs, not " + v.type);
      return true;
    }
    auto n = parse_number(a->text);
    if (!n || *n > 0xffffffffu) {
      error(a->loc, "expected a host vector number, found '" + a->text + "'");
      return true;
    }
    v.hostvector = static_cast<uint32_t>(*n);
    // spec §5: the first host vector for pass-through interrupts. On Linux the host kernel
    // assigns the vectors of host interrupts; a passed-through one reaches the guest through an
    // eventfd and KVM's GSI routing (irqfd), so qvm has no host vector to choose.
    warning(opt.loc, "vdev " + v.type +
                         " option 'hostvector' has no effect: on Linux/KVM the host kernel "
                         "chooses host interrupt vectors; pass-through interrupts reach the "
                         "guest through irqfd and GSI routing");
    return true;
  }
  if (w == "name") {
    const Token* a = arg(toks, i, opt, "an instance name");
    if (!a) return true;
    if (a->text.empty() || a->text.size() > 64 || a->text.find('/') != std::string::npos) {
      error(a->loc, "expected a vdev name of 1-64 characters without '/', found '" + a->text + "'");
      return true;
    }
    if (s.pic_lines > 0 && a->text.find(':') != std::string::npos)
      warning(a->loc, "a PIC name with ':' cannot be referenced from 'intr'");
    v.name = a->text;
    return true;
  }
  if (w == "log") {
    const Token* f = arg(toks, i, opt, "FILTER[,FILTER...] DESTINATION");
    const Token* d = f ? arg(toks, i, opt, "a destination (stdout, stderr, slog, none)") : nullptr;
    if (f && d) {
      LogRouting r = v.log.value_or(cfg().logging);
      opt_logger(*f, *d, r);
      v.log = r;
    }
    return true;
  }
  const OptionSpec* spec = s.find(w);
  if (!spec) return false;
  OptionValue val;
  val.loc = opt.loc;
  if (spec->kind != OptKind::kFlag) {
    const Token* a = arg(toks, i, opt, spec->arg_name.c_str());
    if (!a) return true;
    if (auto st = check_option_value(*spec, a->text); !st) {
      error(a->loc, "vdev " + v.type + " " + w + ": " + st.error().message);
      return true;
    }
    val.text = a->text;
    val.loc = a->loc;
  }
  if (!spec->no_effect.empty())
    warning(opt.loc, "vdev " + v.type + " option '" + w + "' has no effect: " + spec->no_effect);
  auto& slot = v.options[w];
  if (!spec->repeatable) slot.clear();  // last value wins within a context (spec §2.3)
  if (slot.size() < 64) slot.push_back(std::move(val));
  return true;
}

}  // namespace qvm::config::detail
