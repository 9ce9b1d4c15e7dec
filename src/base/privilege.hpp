// Dropping root after set-up (`set user NAME[:GROUP]`, docs/security.md "Least privilege"): qvm
// started as root opens what needs privilege (/dev/kvm, TAP interfaces, images, sockets), then
// runs the VM as an ordinary user, with PR_SET_NO_NEW_PRIVS so that nothing it starts later
// (hostdev and dump commands) can regain privilege.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/result.hpp"

namespace qvm {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user;  // the passwd name, empty for a numeric uid without an entry
};

// "NAME", "UID", "NAME:GROUP", "UID:GID" (numbers or names; the group defaults to the user's
// primary group, which a numeric uid without a passwd entry must then give).
Result<Identity> resolve_identity(std::string_view spec);

// Sets the real, effective and saved uid and gid to `id` (supplementary groups: the user's from
// /etc/group, or only `gid`), then PR_SET_NO_NEW_PRIVS, and checks that root cannot be regained.
// Needs root, unless `id` is the identity qvm already runs as (then only NO_NEW_PRIVS). Applies
// to every thread of the process (glibc's setxid).
Status drop_privileges(const Identity& id);

}  // namespace qvm
