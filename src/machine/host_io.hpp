// qvm's terminal: stdin put in raw mode while a device reads it, restored on every exit path.
#pragma once

#include <termios.h>

namespace qvm::machine {

// Puts stdin in raw mode (keeping ISIG so Ctrl+C reaches qvm as SIGINT) and restores it when
// destroyed, and at exit.
class RawTerminal {
 public:
  static void enable();   // idempotent; does nothing if stdin is not a terminal
  static void restore();  // idempotent, async-signal-safe
};

}  // namespace qvm::machine
