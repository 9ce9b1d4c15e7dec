// qvm: one process runs one virtual machine, configured like the QNX Hypervisor's qvm.
#include <string>
#include <vector>

#include "app/cli.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return qvm::app::run_cli(args);
}
