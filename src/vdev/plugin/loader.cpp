// Finding and loading vdev-TYPE.so (docs/vdev-api.md "Loading"; spec §9.1). The object's ELF
// constructors run inside dlopen() and call vdev_register_factory(); the registrations are
// collected for that one load (thread-local: no lock is held across dlopen) and checked after it
// returns, so a bad object is unloaded again and reported with its path.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

#include "vdev/catalog.hpp"
#include "vdev/plugin/internal.hpp"
#include "vdev/plugin/plugin.hpp"

#ifndef QVM_VDEV_INSTALL_DIR
#define QVM_VDEV_INSTALL_DIR "/usr/local/lib/qvm/vdev"
#endif

namespace qvm::vdev::plugin {

namespace {

constexpr size_t kMaxOptions = 64;
constexpr size_t kMaxNameLen = 64;
constexpr unsigned kAllSizes = (1u << 1) | (1u << 2) | (1u << 4) | (1u << 8);

// One dlopen() in progress on this thread.
struct LoadSession {
  std::vector<vdev_factory*> registered;
  std::vector<std::string> problems;
};
thread_local LoadSession* tl_session = nullptr;

std::mutex& registry_mu() {
  static std::mutex mu;
  return mu;
}
// Stable addresses: the parser keeps pointers to the schemas.
std::deque<Loaded>& registry() {
  static std::deque<Loaded> r;
  return r;
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLen) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return s[0] != '.';
}

std::string flag_names(unsigned f) {
  std::string s;
  auto add = [&](unsigned bit, const char* n) {
    if (f & bit) s += (s.empty() ? "" : "|") + std::string(n);
  };
  add(VFF_VDEV_MEM, "mem");
  add(VFF_VDEV_X86_IO, "io");
  add(VFF_VDEV_PCI, "pci");
  return s.empty() ? "none" : s;
}

// What qvm accepts of a factory; the schema the parser checks its `vdev` entries against.
Result<config::VdevSchema> make_schema(const vdev_factory& f, const std::string& path) {
  const std::string who = path + ": factory '" + f.name + "'";
  if (!f.control) return make_error(who + " has no control callback");
  if (f.pic)
    return make_error(who + " is an interrupt controller (pic): qvm's are KVM's, in the kernel");
  if (f.pulse)
    return make_error(who +
                      " has a pulse callback: QNX pulses do not exist on Linux (use a timer or a "
                      "file descriptor)");
  if (f.factory_flags & VFF_MANUAL_REGION)
    return make_error(who + ": VFF_MANUAL_REGION is not supported (qvm places every region)");
  const unsigned known = VFF_RESERVED | VFF_INTR_NO | VFF_INTR_REQ | VFF_INTR_NONPCI | VFF_LOC_NO |
                         VFF_VDEV_MEM | VFF_VDEV_X86_IO | VFF_VDEV_PCI | VFF_MUTEX |
                         VFF_MUTEX_RECURSIVE | VFF_RC | VFF_MANUAL_REGION;
  if (f.factory_flags & ~known)
    return make_error(who + strprintf(": unknown factory flags 0x%x", f.factory_flags & ~known));
  const bool mem = f.factory_flags & VFF_VDEV_MEM, io = f.factory_flags & VFF_VDEV_X86_IO;
  const bool pci = f.factory_flags & VFF_VDEV_PCI;
  if (!(f.factory_flags & VFF_LOC_NO) && !mem && !io && !pci)
    return make_error(who + " has no place (" + flag_names(f.factory_flags) +
                      "): give it VFF_VDEV_MEM, VFF_VDEV_X86_IO, VFF_VDEV_PCI or VFF_LOC_NO");
  if ((f.acc_sizes & ~kAllSizes) != 0)
    return make_error(
        who + strprintf(": acc_sizes 0x%x allows sizes other than 1, 2, 4, 8", f.acc_sizes));
  if (f.extra_space > (64u << 20)) return make_error(who + ": extra_space over 64 MiB");
  config::VdevSchema s;
  s.type = f.name;
  s.summary = "loadable vdev (" + path + ")";
  s.can_mem = mem && !(f.factory_flags & VFF_LOC_NO);
  s.can_io = io && !(f.factory_flags & VFF_LOC_NO);
  s.can_pci = pci && !(f.factory_flags & VFF_LOC_NO);
  // The vdev may choose its own location (v_block in OPTIONS_START); create() checks there is one.
  // A PCI-capable vdev without `loc` is a PCI function (spec §5).
  if (!s.can_pci)
    s.default_loc = (f.factory_flags & VFF_LOC_NO) ? "none" : "chosen by the vdev, if any";
  if (f.factory_flags & VFF_INTR_NO)
    s.intr = config::IntrPolicy::kNone;
  else if (f.factory_flags & VFF_INTR_REQ)
    s.intr = config::IntrPolicy::kRequired;
  else if (f.factory_flags & VFF_INTR_NONPCI)
    s.intr = s.can_pci ? config::IntrPolicy::kNonPci : config::IntrPolicy::kRequired;
  else
    s.intr = config::IntrPolicy::kOptional;
  if (f.option_list) {
    for (size_t i = 0; f.option_list[i]; ++i) {
      if (i >= kMaxOptions)
        return make_error(who + strprintf(": more than %zu options", kMaxOptions));
      std::string n = f.option_list[i];
      if (!valid_name(n)) return make_error(who + ": bad option name '" + n + "'");
      for (const char* common : {"loc", "intr", "name", "hostvector", "log", "set"})
        if (n == common) return make_error(who + ": option '" + n + "' is a common vdev option");
      if (s.find(n)) return make_error(who + ": option '" + n + "' listed twice");
      config::OptionSpec o;
      o.name = n;
      o.kind = config::OptKind::kString;
      o.help = "handled by the vdev";
      o.repeatable = true;  // each occurrence is passed to the vdev, in order
      s.options.push_back(std::move(o));
    }
  }
  return s;
}

// An object qvm may load: a regular file not writable by other users, owned by us or root
// (docs/security.md: a vdev runs with qvm's privileges).
Status check_object(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return make_error(path + " is not a regular file");
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return make_error(path + " belongs to another user (uid " + std::to_string(st.st_uid) + ")");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) return make_error(path + " is writable by group or others");
  return {};
}

std::vector<std::string> search_dirs(std::string_view vdev_path) {
  std::vector<std::string> dirs;
  auto split = [&](std::string_view list) {
    size_t i = 0;
    while (i <= list.size()) {
      size_t j = list.find(':', i);
      if (j == std::string_view::npos) j = list.size();
      if (j > i) dirs.emplace_back(list.substr(i, j - i));
      i = j + 1;
    }
  };
  split(vdev_path);
  if (const char* env = std::getenv("QVM_VDEV_PATH")) split(env);
  dirs.emplace_back(install_dir());
  return dirs;
}

}  // namespace

std::string_view install_dir() {
  return QVM_VDEV_INSTALL_DIR;
}

const Loaded* find_loaded(std::string_view type) {
  std::lock_guard lk(registry_mu());
  for (const Loaded& l : registry())
    if (l.type == type) return &l;
  return nullptr;
}

int register_factory(vdev_factory* f, unsigned abi) {
  LoadSession* s = tl_session;
  if (!s) return EPERM;  // only from the constructor of an object qvm is loading
  if (abi != QVM_VDEV_ABI) {
    s->problems.push_back(
        strprintf("registers a factory with ABI %u; this qvm has ABI %u", abi, QVM_VDEV_ABI));
    return ENOTSUP;
  }
  if (!f || !f->name || !valid_name(f->name)) {
    s->problems.push_back("registers a factory without a valid name");
    return EINVAL;
  }
  const std::string n = f->name;
  if (find_schema(n)) {
    s->problems.push_back("registers '" + n + "', which is a built-in vdev type");
    return EEXIST;
  }
  if (find_loaded(n)) {
    s->problems.push_back("registers '" + n + "', which another object registered");
    return EEXIST;
  }
  for (vdev_factory* r : s->registered)
    if (n == r->name) {
      s->problems.push_back("registers '" + n + "' twice");
      return EEXIST;
    }
  s->registered.push_back(f);
  return 0;
}

Result<const config::VdevSchema*> find_or_load(std::string_view type, std::string_view vdev_path) {
  if (const Loaded* l = find_loaded(type)) return &l->schema;
  if (!valid_name(type)) return nullptr;  // never a path: no '/' reaches the file name
  const std::string file = "vdev-" + std::string(type) + ".so";
  for (const std::string& dir : search_dirs(vdev_path)) {
    std::string path = dir + "/" + file;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    QVM_TRY(check_object(path, st));
    LoadSession session;
    tl_session = &session;
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    tl_session = nullptr;
    if (!h) return make_error(std::string("cannot load it: ") + ::dlerror());
    auto fail = [&](const std::string& why) -> Result<const config::VdevSchema*> {
      ::dlclose(h);
      return make_error(path + " " + why);
    };
    if (!session.problems.empty()) return fail(session.problems.front());
    bool found = false;
    std::string names;
    for (vdev_factory* f : session.registered) {
      names += (names.empty() ? "" : ", ") + std::string(f->name);
      if (type == f->name) found = true;
    }
    if (!found)
      return fail("registers no factory named '" + std::string(type) + "'" +
                  (names.empty() ? std::string(" (none at all: is vdev_register_factory called "
                                               "from an ELF constructor?)")
                                 : " (it registers: " + names + ")"));
    std::vector<Loaded> made;
    for (vdev_factory* f : session.registered) {
      auto schema = make_schema(*f, path);
      if (!schema) {
        ::dlclose(h);
        return schema.error();
      }
      made.push_back(Loaded{f->name, path, f, std::move(*schema)});
    }
    // The object stays loaded for the life of the process (its factories are in use).
    std::lock_guard lk(registry_mu());
    const Loaded* wanted = nullptr;
    for (Loaded& l : made) {
      registry().push_back(std::move(l));
      if (registry().back().type == type) wanted = &registry().back();
    }
    log_debug("vdev %.*s: loaded %s", static_cast<int>(type.size()), type.data(), path.c_str());
    return &wanted->schema;
  }
  return nullptr;
}

}  // namespace qvm::vdev::plugin
