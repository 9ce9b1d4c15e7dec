// Host ends of character devices (`hostdev` of ser8250 and virtio-console, spec §6.2.7/§6.4):
// qvm's stdio, files and a pseudo-terminal.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm::vdev {

// A command started for a `hostdev "|command"` (spec §6.2.7, QNX 8.0). When the device goes
// away its end of the stream is already closed (the command sees EOF); the command gets 2 s to
// end, then SIGKILL, and is reaped: no zombie, no orphan holding a terminal.
class ChildProcess {
 public:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

// The input and output fds of one character device. -1 = none.
struct CharEndpoints {
  int in = -1;
  int out = -1;
  // Declared before `owned`: destroyed after it, so a command's stream is closed before it is
  // waited for.
  std::vector<std::unique_ptr<ChildProcess>> children;
  std::vector<UniqueFd> owned;  // fds opened for this device
  std::string description;
};

// `|command` (after the `|`) as argv: words split at blanks, '...' and "..." keep blanks in one
// word; no shell (write `sh -c '...'` for one). Empty or an unclosed quote: an error.
Result<std::vector<std::string>> split_command(std::string_view command);

// Parses and opens `hostdev` values: `-` (stdio), `<PATH` input, `>PATH` output, `PATH` both,
// `pty` (a new pseudo-terminal whose name is logged), `|command` / `>|command` / `<|command`: the
// command (split_command) started with the device's stream as its stdin and stdout / stdin /
// stdout (a socket pair / pipes), its other fds at qvm's stderr or closed, signals at defaults.
// `dryrun`: nothing is created (spec §4: dryrun only checks): an output that does not exist yet is
// checked to be creatable (its directory exists and is writable), an existing one is opened without
// O_CREAT, no pty is made.
Result<CharEndpoints> open_char_endpoints(const std::vector<std::string>& hostdevs,
                                          bool dryrun = false);

}  // namespace qvm::vdev
