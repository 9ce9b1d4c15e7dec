// qvm: one process runs one virtual machine, configured like the QNX Hypervisor's qvm.
#include <signal.h>

#include <csignal>
#include <string>
#include <vector>

#include "app/cli.hpp"

int main(int argc, char** argv) {
  // The signals qvm acts on (spec §8.1) are blocked from the first instruction: one that arrives
  // while the configuration is read or the VM built waits, pending, until the run loop takes it
  // through its signalfd, instead of ending qvm by its default action (SIGHUP, SIGUSR1...).
  // SIGPIPE is ignored: a write to a closed pipe fails that write (EPIPE) instead.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  return qvm::app::run_cli(args);
}
