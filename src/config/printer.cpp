#include "config/printer.hpp"

#include "config/variables.hpp"

namespace qvm::config {
namespace {

class Out {
 public:
  void line(int indent, const std::string& text, const std::string& comment = {}) {
    std::string l(static_cast<size_t>(indent) * 4, ' ');
    l += text;
    if (!comment.empty()) {
      if (l.size() < 40) l.resize(40, ' ');
      l += "  # " + comment;
    }
    s_ += l + "\n";
  }
  std::string take() { return std::move(s_); }

 private:
  std::string s_;
};

std::string routing_lines_dest(const LogRouting& r, LogDest d) {
  std::string classes;
  for (int c = 0; c < kLogClassCount; ++c) {
    if (r.dest[static_cast<size_t>(c)] == d)
      classes +=
          (classes.empty() ? "" : ",") + std::string(log_class_name(static_cast<LogClass>(c)));
  }
  return classes;
}

void print_routing(Out& o, int indent, const char* keyword, const LogRouting& r, bool is_default) {
  for (LogDest d : {LogDest::kStdout, LogDest::kStderr, LogDest::kSyslog, LogDest::kNone}) {
    std::string classes = routing_lines_dest(r, d);
    if (!classes.empty())
      o.line(indent, std::string(keyword) + " " + classes + " " + std::string(log_dest_name(d)),
             is_default ? "default" : "");
  }
}

std::string sched_text(const SchedConfig& s) {
  char p = s.policy == SchedPolicy::kRoundRobin ? 'r' : s.policy == SchedPolicy::kFifo ? 'f' : 'o';
  return std::to_string(s.priority) + p;
}

}  // namespace

std::string quote(std::string_view s, bool force) {
  bool plain = !s.empty() && !force;
  for (char c : s)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '#' || c == '\\' ||
        c == '$' || c == '\f' || c == '\v')
      plain = false;
  if (plain && s[0] != '@') return std::string(s);
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    if (c == '$') q += '$';
    q += c;
  }
  return q + "\"";
}

std::string print_config(const VmConfig& cfg) {
  Out o;
  o.line(0, "# effective configuration; '# default' marks values qvm chose");
  if (cfg.system) {
    o.line(0, "system " + quote(*cfg.system));
  } else {
    o.line(0, "# system qvm-guest", "default name");
  }
  for (const auto& m : cfg.memory) {
    o.line(0,
           std::string(m.kind == MemConfig::Kind::kRam ? "ram " : "rom ") + hex(m.start) + "," +
               hex(m.size),
           m.explicit_start ? "" : "start placed after the highest RAM/ROM");
  }
  for (const auto& r : cfg.reserves) {
    if (r.kind == ReserveConfig::Kind::kIntr) {
      o.line(0, "reserve intr " + std::to_string(r.intr));
    } else {
      o.line(0, "reserve loc " + r.loc.str() +
                    (r.loc.space == AddrSpace::kPci ? "" : "," + hex(r.length)));
    }
  }
  if (cfg.cpus.empty()) o.line(0, "cpu", "default: one vCPU");
  for (size_t k = 0; k < cfg.cpus.size(); ++k) {
    const CpuConfig& c = cfg.cpus[k];
    o.line(0, "cpu", "vCPU " + std::to_string(k));
    if (!c.runmask.empty()) {
      std::string m;
      for (auto n : c.runmask) m += (m.empty() ? "" : ",") + std::to_string(n);
      o.line(1, "runmask " + m);
    } else {
      o.line(1, "# runmask", "default: any host CPU");
    }
    if (c.sched) {
      o.line(1, "sched " + sched_text(*c.sched));
    } else {
      o.line(1, "# sched", "default: qvm's own priority and policy");
    }
    if (c.partition) o.line(1, "# partition " + quote(*c.partition), "ignored on Linux");
    for (const auto& [n, v] : c.vars) o.line(1, "set " + n + " " + quote(v.text));
  }
  for (const auto& l : cfg.loads) {
    std::string prefix = l.type == BlobType::kAuto ? "" : std::string(blob_type_name(l.type)) + " ";
    o.line(0, prefix + "load " + (l.addr ? hex(*l.addr) + "," : std::string()) +
                  quote(l.type == BlobType::kModule ? l.module_string : l.path));
  }
  if (cfg.cmdline) o.line(0, "cmdline " + quote(*cfg.cmdline, true));
  for (const auto& v : variable_specs()) {
    if (v.context != VarContext::kGlobal && v.context != VarContext::kGuest) continue;
    auto it = cfg.vars.find(v.name);
    if (it != cfg.vars.end()) {
      o.line(0, "set " + std::string(v.name) + " " + quote(it->second.text));
    } else if (!v.default_text.empty() && v.arch != "arm") {
      o.line(0, "set " + std::string(v.name) + " " + std::string(v.default_text), "default");
    }
  }
  print_routing(o, 0, "logger", cfg.logging, !cfg.logging_set);
  const auto& u = cfg.unsupported;
  UnsupportedPolicy d;
  o.line(0, "unsupported instruction " + std::string(unsupported_action_name(u.instruction)),
         u.instruction == d.instruction ? "default" : "");
  o.line(0, "unsupported reference " + std::string(unsupported_action_name(u.reference)),
         u.reference == d.reference ? "default" : "");
  o.line(0, "unsupported register " + std::string(unsupported_action_name(u.reg)),
         u.reg == d.reg ? "default" : "");
  if (cfg.dump) o.line(0, "dump " + quote(*cfg.dump));
  const char* safety = cfg.safety == SafetyMode::kNone   ? "none"
                       : cfg.safety == SafetyMode::kWarn ? "warn"
                                                         : "required";
  o.line(0, std::string("safety ") + safety, cfg.safety == SafetyMode::kNone ? "default" : "");
  for (const auto& p : cfg.passes) {
    o.line(0, "pass");
    if (p.location) {
      const PassLoc& l = *p.location;
      std::string t = l.guest.str();
      if (l.length) t += "," + hex(*l.length);
      if (!l.attrs.empty()) t += "," + l.attrs;
      if (l.host) t += "=" + l.host->str();
      o.line(1, "loc " + t);
    }
    if (p.intr) {
      std::string t = p.intr->guest.str();
      if (p.intr->mode) t += std::string(",") + p.intr->mode;
      if (p.intr->host_vector) t += "=" + std::to_string(*p.intr->host_vector);
      o.line(1, "intr " + t);
    }
  }
  for (const auto& v : cfg.vdevs) {
    o.line(0, "vdev " + v.type, v.on_pci() ? "on PCI" : "");
    if (v.location) {
      o.line(1, "loc " + v.location->str());
    } else if (v.schema && v.schema->default_loc && !v.on_pci()) {
      auto def = parse_guest_loc(*v.schema->default_loc);
      o.line(1, "loc " + (def ? def->str() : *v.schema->default_loc), "default");
    }
    if (!v.intr.empty()) {
      std::string t;
      for (const auto& r : v.intr) t += (t.empty() ? "" : ",") + r.str();
      o.line(1, "intr " + t);
    }
    if (v.hostvector) o.line(1, "hostvector " + std::to_string(*v.hostvector));
    if (v.name) o.line(1, "name " + quote(*v.name));
    if (v.log) print_routing(o, 1, "log", *v.log, false);
    if (v.schema) {
      for (const auto& spec : v.schema->options) {
        auto it = v.options.find(spec.name);
        if (it != v.options.end()) {
          for (const auto& val : it->second)
            o.line(1, spec.kind == OptKind::kFlag ? spec.name : spec.name + " " + quote(val.text));
        } else if (spec.default_text && spec.kind != OptKind::kFlag) {
          o.line(1, spec.name + " " + quote(*spec.default_text), "default");
        }
      }
    }
    for (const auto& [n, val] : v.vars) o.line(1, "set " + n + " " + quote(val.text));
  }
  if (cfg.dryrun) o.line(0, "dryrun");
  return o.take();
}

}  // namespace qvm::config
