// Handlers for each configuration option (spec §3, §5). Each consumes its own arguments.
#include <algorithm>

#include "config/parser_impl.hpp"
#include "config/variables.hpp"

namespace qvm::config::detail {
namespace {

std::optional<BlobType> blob_type(std::string_view w) {
  if (w == "none" || w == "auto") return BlobType::kAuto;
  if (w == "initrd") return BlobType::kInitrd;
  if (w == "data") return BlobType::kData;
  if (w == "acpi") return BlobType::kAcpi;
  if (w == "fdt") return BlobType::kFdt;
  if (w == "module") return BlobType::kModule;
  return std::nullopt;
}

std::optional<UnsupportedAction> unsupported_action(std::string_view w) {
  if (w == "abort") return UnsupportedAction::kAbort;
  if (w == "fail") return UnsupportedAction::kFail;
  if (w == "ignore") return UnsupportedAction::kIgnore;
  return std::nullopt;
}

// "[start,]length"
struct StartLen {
  std::optional<uint64_t> start;
  uint64_t length = 0;
};
Result<StartLen> parse_start_len(std::string_view s) {
  StartLen r;
  auto parts = split(s, ',');
  if (parts.size() > 2)
    return make_error("expected [START,]LENGTH, found '" + std::string(s) + "'");
  if (parts.size() == 2) r.start = QVM_TRY(parse_number(parts[0]));
  r.length = QVM_TRY(parse_number(parts.back()));
  return r;
}

}  // namespace

bool Parser::global_option(const Token& opt, const std::vector<Token>& toks, size_t& i) {
  const std::string& w = opt.text;
  if (auto bt = blob_type(w)) {
    pending_blob_ = *bt;
    pending_blob_loc_ = opt.loc;
    return true;
  }
  if (w == "system") {
    const Token* a = arg(toks, i, opt, "a VM name");
    if (!a) return true;
    if (cfg().system) error(opt.loc, "'system' given twice (first: '" + *cfg().system + "')");
    if (a->text.empty() || a->text.find('/') != std::string::npos || a->text.size() > 64)
      error(a->loc, "expected a VM name of 1-64 characters without '/', found '" + a->text + "'");
    cfg().system = a->text;
    return true;
  }
  if (w == "cpu") {
    ctx_ = Ctx::kCpu;
    cfg().cpus.push_back(CpuConfig{opt.loc, {}, {}, {}, {}});
    if (cfg().cpus.size() > 1024) error(opt.loc, "more than 1024 'cpu' entries");
    return true;
  }
  if (w == "ram" || w == "rom") {
    if (const Token* a = arg(toks, i, opt, "[START,]LENGTH"))
      opt_memory(opt, *a, w == "ram" ? MemConfig::Kind::kRam : MemConfig::Kind::kRom);
    return true;
  }
  if (w == "reserve") {
    const Token* k = arg(toks, i, opt, "'loc' or 'intr'");
    if (!k) return true;
    const Token* a = arg(toks, i, opt, k->text == "intr" ? "an interrupt number" : "a location");
    if (a) opt_reserve(opt, *k, *a);
    return true;
  }
  if (w == "load") {
    if (const Token* a = arg(toks, i, opt, "[ADDRESS,]FILE")) opt_load(opt, *a);
    pending_blob_.reset();
    return true;
  }
  if (w == "cmdline") {
    if (const Token* a = arg(toks, i, opt, "a quoted kernel command line")) cfg().cmdline = a->text;
    return true;
  }
  if (w == "pass") {
    if (pending_blob_ && *pending_blob_ != BlobType::kAuto && *pending_blob_ != BlobType::kData)
      error(pending_blob_loc_, "blob type '" + std::string(blob_type_name(*pending_blob_)) +
                                   "' cannot be used with 'pass' (known issue J2893679 in QNX)");
    pending_blob_.reset();
    ctx_ = Ctx::kPass;
    cfg().passes.push_back(PassConfig{opt.loc, {}, {}});
    return true;
  }
  if (w == "vdev") {
    if (const Token* a = arg(toks, i, opt, "a vdev type")) opt_vdev(opt, *a);
    return true;
  }
  if (w == "set") {
    opt_set(opt, toks, i);
    return true;
  }
  if (w == "logger") {
    const Token* f = arg(toks, i, opt, "FILTER[,FILTER...] DESTINATION");
    const Token* d = f ? arg(toks, i, opt, "a destination (stdout, stderr, slog, none)") : nullptr;
    if (f && d) {
      opt_logger(*f, *d, cfg().logging);
      cfg().logging_set = true;
    }
    return true;
  }
  if (w == "unsupported") {
    const Token* what = arg(toks, i, opt, "instruction, reference or register");
    const Token* act = what ? arg(toks, i, opt, "abort, fail or ignore") : nullptr;
    if (!what || !act) return true;
    auto a = unsupported_action(act->text);
    if (!a) error(act->loc, "expected abort, fail or ignore, found '" + act->text + "'");
    if (what->text == "instruction") {
      if (a) cfg().unsupported.instruction = *a;
      if (a == UnsupportedAction::kIgnore)
        warning(act->loc,
                "unsupported instruction ignore acts as 'fail' on Linux/KVM: the guest gets #UD, "
                "since qvm cannot step over an instruction KVM's emulator could not decode");
    } else if (what->text == "reference") {
      if (a) cfg().unsupported.reference = *a;
    } else if (what->text == "register") {
      if (a) cfg().unsupported.reg = *a;
    } else {
      error(what->loc, "expected instruction, reference or register, found '" + what->text + "'");
    }
    return true;
  }
  if (w == "dump") {
    if (const Token* a = arg(toks, i, opt, "a directory or \"|command\"")) {
      // spec §3.13: where SIGUSR2 and watchdog `dump` actions write guest dumps (dump/).
      if (a->text.empty() || a->text == "|") error(a->loc, "expected a directory or \"|command\"");
      cfg().dump = a->text;
    }
    return true;
  }
  if (w == "safety") {
    if (const Token* a = arg(toks, i, opt, "none, warn or required")) {
      // Spec §3.12: which vdev variants may run. qvm has one variant of each vdev and none is
      // safety-certified: `required` would mislead, `warn` has nothing to warn about.
      if (a->text == "none") {
        cfg().safety = SafetyMode::kNone;
      } else if (a->text == "warn") {
        cfg().safety = SafetyMode::kWarn;
        warning(a->loc,
                "safety warn has no effect: qvm has one variant of each vdev, none of "
                "them safety-certified");
      } else if (a->text == "required") {
        cfg().safety = SafetyMode::kRequired;
        error(a->loc,
              "safety required: qvm is not a safety-certified product and has no "
              "safety variants of its vdevs");
      } else {
        error(a->loc, "expected none, warn or required, found '" + a->text + "'");
      }
    }
    return true;
  }
  if (w == "dryrun") {
    cfg().dryrun = true;
    return true;
  }
  return false;
}

void Parser::opt_memory(const Token& opt, const Token& a, MemConfig::Kind kind) {
  auto sl = parse_start_len(a.text);
  if (!sl) {
    error(a.loc, sl.error().message);
    return;
  }
  MemConfig m;
  m.kind = kind;
  m.loc = opt.loc;
  m.size = sl->length;
  m.explicit_start = sl->start.has_value();
  m.start = sl->start.value_or(0);
  if (m.size == 0) error(a.loc, "'" + opt.text + "' length must not be zero");
  if ((m.start | m.size) & 0xfff)
    error(a.loc,
          "'" + opt.text + "' start and length must be multiples of 4 KiB, found '" + a.text + "'");
  if (m.start + m.size < m.start || m.start + m.size > (1ull << 52))
    error(a.loc, "'" + opt.text + "' region ends beyond the 4 PiB guest-physical limit");
  cfg().memory.push_back(m);
  memory_declared_ = true;
}

void Parser::opt_reserve(const Token& opt, const Token& kind, const Token& a) {
  ReserveConfig r;
  r.where = opt.loc;
  if (kind.text == "intr") {
    auto n = parse_number(a.text);
    if (!n || *n > 0xffff) {
      error(a.loc, "expected an interrupt number (0-65535), found '" + a.text + "'");
      return;
    }
    r.kind = ReserveConfig::Kind::kIntr;
    r.intr = static_cast<uint32_t>(*n);
  } else if (kind.text == "loc") {
    auto parts = split(a.text, ',');
    auto loc = parse_guest_loc(parts[0]);
    if (!loc || parts.size() > 2) {
      error(a.loc,
            loc ? "expected LOCATION[,LENGTH], found '" + a.text + "'" : loc.error().message);
      return;
    }
    r.loc = *loc;
    if (parts.size() == 2) {
      auto len = parse_number(parts[1]);
      if (!len || *len == 0) {
        error(a.loc, "expected a non-zero length after the location, found '" + a.text + "'");
        return;
      }
      r.length = *len;
    } else if (loc->space == AddrSpace::kMem) {
      error(a.loc, "a memory reservation needs a length: reserve loc ADDR,LENGTH");
      return;
    } else {
      r.length = 1;
    }
  } else {
    error(kind.loc, "expected 'loc' or 'intr' after 'reserve', found '" + kind.text + "'");
    return;
  }
  cfg().reserves.push_back(r);
}

void Parser::opt_load(const Token& opt, const Token& a) {
  LoadConfig l;
  l.type = pending_blob_.value_or(BlobType::kAuto);
  l.loc = opt.loc;
  std::string_view text = a.text;
  if (auto comma = text.find(','); comma != std::string_view::npos) {
    if (auto addr = parse_number(text.substr(0, comma))) {
      l.addr = *addr;
      text.remove_prefix(comma + 1);
    }
  }
  l.path = std::string(text);
  if (l.type == BlobType::kModule) {
    // `module load "FILE [ARGS]"`: the whole text is the module's string (GRUB's convention),
    // the file is its first word. Modules are placed by the loader: no address.
    if (l.addr) error(a.loc, "'module load' takes no address: the loader places modules");
    l.module_string = l.path;
    l.path = l.path.substr(0, l.path.find_first_of(" \t"));
  }
  if (l.path.empty()) error(a.loc, "expected a file name to load");
  if (l.type == BlobType::kData && !l.addr)
    error(a.loc, "'data load' needs an address: data load ADDRESS,FILE");
  if (!memory_declared_)
    error(opt.loc, "'load' before any 'ram' or 'rom': guest memory must be declared first");
  cfg().loads.push_back(std::move(l));
}

void Parser::opt_set(const Token& opt, const std::vector<Token>& toks, size_t& i) {
  const Token* name = arg(toks, i, opt, "a variable name (or '?' to list them)");
  if (!name) return;
  if (name->text == "?") {
    cfg().list_variables = true;
    return;
  }
  const VariableSpec* spec = find_variable(name->text);
  const Token* value = arg(toks, i, opt, "a value");
  if (!spec) {
    error(name->loc, "unknown variable '" + name->text + "' (run 'qvm set ?' for the list)");
    return;
  }
  if (!value) return;
  if (auto st = check_variable_value(*spec, value->text); !st) {
    error(value->loc, "set " + name->text + ": " + st.error().message);
    return;
  }
  if (spec->arch == "arm")
    warning(name->loc, "variable '" + name->text + "' applies to ARM guests; ignored on x86-64");
  else if (!spec->no_effect.empty())
    warning(name->loc, "set " + name->text + " has no effect: " + std::string(spec->no_effect));
  VarValue v{value->text, value->loc};
  switch (spec->context) {
    case VarContext::kGlobal:
    case VarContext::kGuest:
      cfg().vars[name->text] = v;
      break;
    case VarContext::kCpu:
      if (ctx_ != Ctx::kCpu) {
        error(name->loc, "variable '" + name->text + "' applies to a vCPU: put it after 'cpu'");
        return;
      }
      cfg().cpus.back().vars[name->text] = v;
      break;
    case VarContext::kVdev:
      if (ctx_ != Ctx::kVdev) {
        error(name->loc,
              "variable '" + name->text + "' applies to a vdev: put it after 'vdev TYPE'");
        return;
      }
      cfg().vdevs.back().vars[name->text] = v;
      break;
  }
}

void Parser::opt_logger(const Token& filters, const Token& dest, LogRouting& routing) {
  auto d = parse_log_dest(dest.text);
  if (!d) {
    error(dest.loc,
          "expected a log destination (stdout, stderr, slog, none), found '" + dest.text + "'");
    return;
  }
  for (auto f : split(filters.text, ',')) {
    auto c = parse_log_class(f);
    if (!c) {
      error(filters.loc, "unknown log class '" + std::string(f) +
                             "'; expected fatal, internal, error, warn, info, debug or verbose");
      continue;
    }
    routing[*c] = *d;
  }
}

bool Parser::cpu_option(const Token& opt, const std::vector<Token>& toks, size_t& i) {
  CpuConfig& cpu = cfg().cpus.back();
  const std::string& w = opt.text;
  if (w == "runmask") {
    const Token* a = arg(toks, i, opt, "host CPU numbers N[,N...]");
    if (!a) return true;
    auto list = parse_number_list(a->text);
    if (!list) {
      error(a->loc, "runmask: " + list.error().message);
      return true;
    }
    cpu.runmask.clear();
    for (auto n : *list) {
      if (n >= 1024) {
        error(a->loc, "runmask: host CPU " + std::to_string(n) + " out of range (0-1023)");
        return true;
      }
      cpu.runmask.push_back(static_cast<uint32_t>(n));
    }
    return true;
  }
  if (w == "sched") {
    const Token* a = arg(toks, i, opt, "PRIORITY[r|f|o]");
    if (!a) return true;
    if (a->text.find(',') != std::string::npos) {
      error(a->loc,
            "sporadic scheduling (sched HI,LO,MAX_REPL,PERIOD,BUDGET) is not supported on "
            "Linux; use 'sched PRIORITY[r|f|o]'");
      return true;
    }
    std::string_view t = a->text;
    SchedConfig s;
    if (!t.empty() && (t.back() == 'r' || t.back() == 'f' || t.back() == 'o')) {
      s.policy = t.back() == 'r'   ? SchedPolicy::kRoundRobin
                 : t.back() == 'f' ? SchedPolicy::kFifo
                                   : SchedPolicy::kOther;
      t.remove_suffix(1);
    }
    auto prio = parse_number(t);
    uint64_t max = s.policy == SchedPolicy::kOther ? 0 : 99;
    if (!prio || *prio > max) {
      error(a->loc, "expected PRIORITY[r|f|o] with priority 1-99 for r/f (0 for o), found '" +
                        a->text + "'");
      return true;
    }
    if (s.policy != SchedPolicy::kOther && *prio == 0) {
      error(a->loc, "real-time priority must be 1-99 on Linux; use '0o' for SCHED_OTHER");
      return true;
    }
    s.priority = static_cast<uint32_t>(*prio);
    cpu.sched = s;
    return true;
  }
  if (w == "partition" || w == "cluster") {
    const Token* a = arg(toks, i, opt, "a name");
    if (!a) return true;
    warning(opt.loc, "cpu " + w + " '" + a->text +
                         "' is not supported on Linux (no adaptive partitions/clusters); ignored");
    cpu.partition = a->text;
    return true;
  }
  return false;
}

bool Parser::pass_option(const Token& opt, const std::vector<Token>& toks, size_t& i) {
  PassConfig& p = cfg().passes.back();
  if (opt.text == "loc") {
    const Token* a = arg(toks, i, opt, "LOCATION[,LENGTH][,ATTRS][=HOST_LOCATION]");
    if (!a) return true;
    PassLoc pl;
    pl.loc = a->loc;
    std::string_view t = a->text;
    if (auto eq = t.find('='); eq != std::string_view::npos) {
      auto host = parse_guest_loc(t.substr(eq + 1));
      if (!host) {
        error(a->loc, "pass loc host location: " + host.error().message);
        return true;
      }
      pl.host = *host;
      t = t.substr(0, eq);
    }
    auto parts = split(t, ',');
    auto g = parse_guest_loc(parts[0]);
    if (!g) {
      error(a->loc, "pass loc: " + g.error().message);
      return true;
    }
    pl.guest = *g;
    for (size_t k = 1; k < parts.size(); ++k) {
      if (auto n = parse_number(parts[k]); n && k == 1) {
        pl.length = *n;
        continue;
      }
      if (parts[k].empty() ||
          parts[k].find_first_not_of("+-rwxcemdnst") != std::string_view::npos) {
        error(a->loc,
              "pass loc: expected a length or attribute letters from '+-rwxcemdnst', found '" +
                  std::string(parts[k]) + "'");
        return true;
      }
      pl.attrs += std::string(parts[k]);
    }
    if (pl.guest.space == AddrSpace::kMem && !pl.length)
      error(a->loc, "pass loc of memory needs a length: pass loc ADDR,LENGTH[,ATTRS]");
    p.location = pl;
    return true;
  }
  if (opt.text == "intr") {
    const Token* a = arg(toks, i, opt, "GUEST_INTR[,t|u][=HOST_VECTOR]");
    if (!a) return true;
    PassIntr pi;
    pi.loc = a->loc;
    std::string_view t = a->text;
    if (auto eq = t.find('='); eq != std::string_view::npos) {
      auto v = parse_number(t.substr(eq + 1));
      if (!v || *v > 0xffffffffu) {
        error(a->loc,
              "pass intr: expected a host vector number after '=', found '" + a->text + "'");
        return true;
      }
      pi.host_vector = static_cast<uint32_t>(*v);
      t = t.substr(0, eq);
    }
    auto parts = split(t, ',');
    if (parts.size() > 2 || (parts.size() == 2 && parts[1] != "t" && parts[1] != "u")) {
      error(a->loc, "pass intr: expected GUEST_INTR[,t|u][=HOST_VECTOR], found '" + a->text + "'");
      return true;
    }
    auto g = parse_intr(parts[0]);
    if (!g) {
      error(a->loc, "pass intr: " + g.error().message);
      return true;
    }
    pi.guest = *g;
    if (parts.size() == 2) pi.mode = parts[1][0];
    p.intr = pi;
    return true;
  }
  return false;
}

}  // namespace qvm::config::detail
