// Host ends of character devices (ser8250 `hostdev`): qvm's stdio (with the terminal put in raw
// mode and restored on every exit path), files, and a pseudo-terminal.
#pragma once

#include <termios.h>

#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm::machine {

// The input and output fds of one character device. -1 = none.
struct CharEndpoints {
  int in = -1;
  int out = -1;
  std::vector<UniqueFd> owned;  // fds opened for this device
  std::string description;
};

// Parses and opens `hostdev` values: `-` (stdio), `<PATH` input, `>PATH` output, `PATH` both,
// `pty` (a new pseudo-terminal whose name is logged).
Result<CharEndpoints> open_char_endpoints(const std::vector<std::string>& hostdevs);

// Puts stdin in raw mode (keeping ISIG so Ctrl+C reaches qvm as SIGINT) and restores it when
// destroyed, and at exit.
class RawTerminal {
 public:
  static void enable();   // idempotent; does nothing if stdin is not a terminal
  static void restore();  // idempotent, async-signal-safe
};

}  // namespace qvm::machine
