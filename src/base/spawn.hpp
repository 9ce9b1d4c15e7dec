// Starting a helper command for qvm (a `hostdev "|command"`, a `dump "|command"`): the child gets
// `in` as its stdin (-1: /dev/null) and `out` as its stdout (-1: qvm's), none of qvm's other fds
// (closefrom 3), and the signals qvm blocks or ignores (its event loop takes them through a
// signalfd; SIGPIPE is ignored) back at their defaults, so the command reacts to Ctrl-C and to a
// closed pipe as it would from a shell.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.hpp"

namespace qvm {

struct SpawnSpec {
  std::string file;               // searched in PATH unless it contains a '/'
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // empty: qvm's environment
  int in = -1;
  int out = -1;
};

Result<pid_t> spawn_command(const SpawnSpec& s);

}  // namespace qvm
