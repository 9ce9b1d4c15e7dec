#include "base/privilege.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <optional>
#include <vector>

namespace qvm {

namespace {

std::optional<uint32_t> number(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// getpwnam_r/getpwuid_r with a growing buffer.
template <typename F>
std::optional<passwd> lookup_user(F call, std::vector<char>& buf) {
  passwd pw{};
  passwd* res = nullptr;
  for (size_t size = 1024; size <= (1u << 20); size *= 2) {
    buf.resize(size);
    int rc = call(&pw, buf.data(), buf.size(), &res);
    if (rc == ERANGE) continue;
    if (rc != 0 || !res) return std::nullopt;
    return pw;
  }
  return std::nullopt;
}

std::optional<gid_t> lookup_group(std::string_view name) {
  std::vector<char> buf;
  group gr{};
  group* res = nullptr;
  const std::string n(name);
  for (size_t size = 1024; size <= (1u << 20); size *= 2) {
    buf.resize(size);
    int rc = getgrnam_r(n.c_str(), &gr, buf.data(), buf.size(), &res);
    if (rc == ERANGE) continue;
    if (rc != 0 || !res) return std::nullopt;
    return gr.gr_gid;
  }
  return std::nullopt;
}

}  // namespace

Result<Identity> resolve_identity(std::string_view spec) {
  const size_t colon = spec.find(':');
  const std::string_view u = spec.substr(0, colon);
  const std::optional<std::string_view> g =
      colon == std::string_view::npos ? std::nullopt : std::optional(spec.substr(colon + 1));
  if (u.empty() || (g && g->empty()))
    return make_error("expected NAME, UID, NAME:GROUP or UID:GID, found '" + std::string(spec) +
                      "'");
  Identity id;
  std::vector<char> buf;
  std::optional<passwd> pw;
  if (auto n = number(u)) {
    id.uid = *n;
    pw = lookup_user(
        [&](passwd* p, char* b, size_t l, passwd** r) { return getpwuid_r(*n, p, b, l, r); }, buf);
  } else {
    const std::string name(u);
    pw = lookup_user([&](passwd* p, char* b, size_t l,
                         passwd** r) { return getpwnam_r(name.c_str(), p, b, l, r); },
                     buf);
    if (!pw) return make_error("no user '" + name + "' on this host");
    id.uid = pw->pw_uid;
  }
  if (pw) id.user = pw->pw_name;
  if (g) {
    if (auto n = number(*g)) {
      id.gid = *n;
    } else if (auto gid = lookup_group(*g)) {
      id.gid = *gid;
    } else {
      return make_error("no group '" + std::string(*g) + "' on this host");
    }
  } else if (pw) {
    id.gid = pw->pw_gid;
  } else {
    return make_error("uid " + std::string(u) + " has no passwd entry: give its group (UID:GID)");
  }
  if (id.uid == 0) return make_error("'set user' names root: nothing would be dropped");
  return id;
}

Status drop_privileges(const Identity& id) {
  if (geteuid() != 0) {
    if (geteuid() != id.uid || getegid() != id.gid)
      return make_error("set user: dropping to uid " + std::to_string(id.uid) +
                        " needs root; qvm runs as uid " + std::to_string(geteuid()));
  } else {
    // Supplementary groups first, while still root: the user's own (e.g. kvm), else just gid.
    if (!id.user.empty() ? initgroups(id.user.c_str(), id.gid) != 0 : setgroups(1, &id.gid) != 0)
      return Error::from_errno("set user: setting the supplementary groups", errno);
    if (setresgid(id.gid, id.gid, id.gid) != 0)
      return Error::from_errno("set user: setresgid", errno);
    if (setresuid(id.uid, id.uid, id.uid) != 0)
      return Error::from_errno("set user: setresuid", errno);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return Error::from_errno("set user: PR_SET_NO_NEW_PRIVS", errno);
  uid_t r = 0, e = 0, s = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (getresuid(&r, &e, &s) != 0 || getresgid(&rg, &eg, &sg) != 0 || r != id.uid || e != id.uid ||
      s != id.uid || rg != id.gid || eg != id.gid || sg != id.gid)
    return make_error("set user: the process ids did not all change");
  if (setuid(0) == 0) return make_error("set user: root could be regained after the drop");
  return {};
}

}  // namespace qvm
