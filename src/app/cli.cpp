#include "app/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "base/log.hpp"
#include "base/privilege.hpp"
#include "config/parser.hpp"
#include "config/printer.hpp"
#include "config/variables.hpp"
#include "machine/machine.hpp"
#include "vdev/catalog.hpp"
#include "vdev/plugin/plugin.hpp"

namespace qvm::app {
namespace {

void out(const std::string& s) {
  std::fputs(s.c_str(), stdout);
}
void err(const std::string& s) {
  std::fputs(s.c_str(), stderr);
}

bool exists(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0;
}

std::string vdev_help(const config::VdevSchema& s) {
  std::string h = "vdev " + s.type + ": " + s.summary + "\n";
  std::string where;
  if (s.can_mem) where += " mem:";
  if (s.can_io) where += " io:";
  if (s.can_pci) where += " pci: (default when no loc is given)";
  h += "  loc LOCATION        where:" + where;
  if (s.default_loc) h += " (default " + *s.default_loc + ")";
  h += "\n";
  if (s.intr == config::IntrPolicy::kUpstream) {
    h += "  intr apic           upstream interrupt controller\n";
  } else if (s.intr != config::IntrPolicy::kNone) {
    h += std::string("  intr PIC:LINE       interrupt") +
         (s.intr == config::IntrPolicy::kRequired ? " (required)"
          : s.intr == config::IntrPolicy::kNonPci ? " (required unless on PCI)"
                                                  : " (optional)") +
         "\n";
  }
  if (s.pic_lines > 0) h += "  hostvector N        first host vector of this controller\n";
  h += "  name NAME           instance name\n  log FILTERS DEST    per-vdev logging\n";
  for (const auto& o : s.options) {
    std::string l = "  " + o.name + (o.kind == config::OptKind::kFlag ? "" : " " + o.arg_name);
    // A long option and argument gets its help on the next line, aligned.
    l += l.size() < 22 ? std::string(22 - l.size(), ' ') : "\n" + std::string(22, ' ');
    l += o.help;
    if (o.default_text) l += " (default " + *o.default_text + ")";
    if (o.required) l += " (required)";
    if (o.repeatable) l += " (may repeat)";
    h += l + "\n";
  }
  return h;
}

}  // namespace

std::string kvm_backend() {
  if (exists("/sys/module/kvm_pvm")) return "pvm";
  if (exists("/sys/module/kvm_intel")) return "vmx";
  if (exists("/sys/module/kvm_amd")) return "svm";
  return exists("/dev/kvm") ? "kvm" : "none";
}

std::string version_text() {
  return std::string("qvm ") + QVM_VERSION + " (x86-64, Linux/KVM; KVM backend: " + kvm_backend() +
         ")\n";
}

std::string usage() {
  std::string u =
      "Usage: qvm [@FILE | OPTION ARGS...]...\n"
      "       qvm --help [VDEV-TYPE] | --version | set ?\n\n"
      "Runs one virtual machine configured by entries from .qvmconf files (@FILE) and the command\n"
      "line, in the QNX Hypervisor qvm configuration language (see docs/config-language.md).\n\n"
      "Options (entries):\n"
      "  system NAME                   name the VM (must be the first entry)\n"
      "  cpu [runmask N,..] [sched PRIO[r|f|o]]   add a vCPU\n"
      "  ram [START,]LENGTH            guest RAM      rom [START,]LENGTH   guest ROM\n"
      "  reserve loc LOC[,LEN] | reserve intr N   keep from automatic allocation\n"
      "  [initrd|module|data|acpi|fdt] load [ADDR,]FILE  load a kernel, ramdisk, multiboot module, "
      "data, ACPI table, FDT\n"
      "  cmdline \"TEXT\"                kernel command line\n"
      "  pass loc LOC[,LEN][,ATTRS][=HOST] intr GUEST[,t|u][=VECTOR]   pass host resources\n"
      "  vdev TYPE [OPTIONS]           add a virtual device (qvm --help TYPE lists its options)\n"
      "  set VARIABLE VALUE            set a variable (qvm set ? lists them)\n"
      "  logger CLASSES DEST           route log classes to stdout, stderr, slog or none\n"
      "  unsupported WHAT ACTION       instruction|reference|register abort|fail|ignore\n"
      "  dump DIR | dump \"|COMMAND\"    where guest dumps go (SIGUSR2)\n"
      "  safety none|warn|required     safety-variant policy\n"
      "  dryrun                        validate and print the configuration, then exit\n\n"
      "Substitution: ${NAME}, ${NAME:-default} from the environment; $$ is a literal $.\n\n"
      "vdev types:";
  for (const auto& n : vdev::builtin_type_names()) u += " " + n;
  u += "\n\nExit codes: 0 guest shut down or rebooted, 3 SIGQUIT, 4 watchdog, 5 unsupported\n"
       "operation, 6 vdev error, 7 other error, 32-63 guest/testdev defined, 64 fatal error\n"
       "before the guest started, 65 configuration error, 96 fatal error after start.\n";
  return u;
}

int run_cli(const std::vector<std::string>& args) {
  if (args.empty()) {
    err(usage());
    return kExitConfigError;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    if (args.size() > 1) {
      const config::VdevSchema* s = vdev::find_schema(args[1]);
      if (!s) {
        // A loadable vdev, from $QVM_VDEV_PATH or the install directory (docs/vdev-api.md).
        auto loaded = vdev::plugin::find_or_load(args[1], "");
        if (!loaded) {
          err("qvm: vdev " + args[1] + ": " + loaded.error().message + "\n");
          return kExitConfigError;
        }
        s = *loaded;
      }
      if (!s) {
        err("qvm: unknown vdev type '" + args[1] + "'\n");
        return kExitConfigError;
      }
      out(vdev_help(*s));
      return 0;
    }
    out(usage());
    return 0;
  }
  if (args[0] == "--version" || args[0] == "-V") {
    out(version_text());
    return 0;
  }

  config::FileSourceLoader loader;
  config::ParseInput in;
  in.args = args;
  in.env = config::process_environment();
  in.loader = &loader;
  in.schemas = [](std::string_view t) { return vdev::find_schema(t); };
  in.plugins = [](std::string_view t, std::string_view path) {
    return vdev::plugin::find_or_load(t, path);
  };
  in.vdev_types = vdev::builtin_type_names();
  config::ParseOutput parsed = config::parse_config(in);
  for (const auto& d : parsed.diags.all()) err("qvm: " + d.str() + "\n");
  if (!parsed.ok()) {
    err(strprintf("qvm: fatal configuration error (%zu error%s); nothing was started\n",
                  parsed.diags.error_count(), parsed.diags.error_count() == 1 ? "" : "s"));
    return kExitConfigError;
  }
  const config::VmConfig& cfg = parsed.config;
  if (cfg.list_variables) {
    out(config::variables_help());
    return 0;
  }
  Logger::global().set_routing(cfg.logging);
  // `set user` (docs/security.md, "Least privilege"): resolved before anything is built, so that
  // dryrun exits as the run would; the drop itself comes once the VM is built.
  std::optional<Identity> drop_to;
  if (auto it = cfg.vars.find("user"); it != cfg.vars.end()) {
    const std::string where = it->second.loc.str() + ": set user";
    auto id = resolve_identity(it->second.text);
    if (!id) {
      err("qvm: " + where + ": " + id.error().message + "\n");
      return kExitConfigError;
    }
    // Devices that create files in qvm's runtime directory while the VM runs (a peer link's
    // reconnect, a guest's shared-memory attach) would find it root's after the drop.
    for (const auto& v : cfg.vdevs) {
      const auto peer = v.type == "virtio-net" ? v.text("peer") : std::nullopt;
      if (v.type == "shmem" || (peer && peer->rfind("tap:", 0) != 0)) {
        err("qvm: " + where + ": not with vdev " + v.type + " at " + v.loc.str() +
            " (yet): it uses qvm's runtime directory while the VM runs, which stays root's\n");
        return kExitConfigError;
      }
    }
    if (geteuid() != 0 && (geteuid() != id->uid || getegid() != id->gid)) {
      err(strprintf(
          "qvm: %s: dropping to uid %u needs root; qvm runs as uid %u; nothing was "
          "started\n",
          where.c_str(), static_cast<unsigned>(id->uid), static_cast<unsigned>(geteuid())));
      return kExitFatalBeforeStart;
    }
    drop_to = *id;
  }
  machine::BuildOptions opts;
  opts.dryrun = cfg.dryrun;
  for (uint64_t restarts = 0;; ++restarts) {
    machine::BuildError berr{0, {}};
    auto m = machine::Machine::build(cfg, opts, &berr);
    if (!m) {
      log_fatal("%s", berr.message.c_str());
      if (restarts > 0) return kExitFatalAfterStart;  // the VM ran before: not "nothing started"
      err(strprintf("qvm: %s; nothing was started\n", berr.exit_code == kExitConfigError
                                                          ? "fatal configuration error"
                                                          : "fatal error"));
      return berr.exit_code;
    }
    if (cfg.dryrun) {
      out(config::print_config(cfg));
      out(m->describe());
      out("Exiting: dryrun completed\n");
      return 0;
    }
    if (drop_to) {
      // Everything that needs root is open: /dev/kvm and the vCPUs, TAP interfaces, images,
      // sockets. The VM runs (and restarts in place) as the user from here on.
      if (auto s = drop_privileges(*drop_to); !s) {
        log_fatal("%s", s.error().message.c_str());
        return restarts > 0 ? kExitFatalAfterStart : kExitFatalBeforeStart;
      }
      log_info("running as uid %u gid %u (set user), no new privileges",
               static_cast<unsigned>(drop_to->uid), static_cast<unsigned>(drop_to->gid));
    }
    const int rc = m->run();
    if (rc != kRestartInPlace) return rc;
    // The old VM is torn down completely (every fd, mapping, lock and socket released) before
    // the new one is built, as a board's reset starts from power-on state.
    m.reset();
    log_info("restarting the VM in place (restart %llu)",
             static_cast<unsigned long long>(restarts + 1));
  }
}

}  // namespace qvm::app
