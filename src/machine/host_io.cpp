#include "machine/host_io.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "base/log.hpp"

namespace qvm::machine {
namespace {

struct termios g_saved;
std::atomic<bool> g_raw{false};

}  // namespace

void RawTerminal::enable() {
  if (g_raw.load() || !::isatty(STDIN_FILENO)) return;
  if (::tcgetattr(STDIN_FILENO, &g_saved) != 0) return;
  struct termios raw = g_saved;
  cfmakeraw(&raw);
  raw.c_lflag |= ISIG;  // Ctrl+C / Ctrl+\ still signal qvm (power button / power cut)
  raw.c_oflag |= OPOST | ONLCR;
  if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
    g_raw = true;
    std::atexit(RawTerminal::restore);
  }
}

void RawTerminal::restore() {
  if (g_raw.exchange(false)) ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
}

}  // namespace qvm::machine
