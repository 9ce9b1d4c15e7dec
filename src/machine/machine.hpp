// The machine layer: turns a validated VmConfig into a running VM (spec §7.1 boot flow):
// guest memory, KVM VM and vCPUs, interrupt controllers, platform vdevs on the buses, loaded
// images, ACPI tables and FDT; then runs one thread per vCPU plus the main event loop until the
// guest or a signal ends it, and returns the exit code of spec §8.3.
#pragma once

#include <memory>
#include <string>

#include "base/result.hpp"
#include "config/vm_config.hpp"

namespace qvm::machine {

struct BuildOptions {
  bool dryrun = false;  // build everything but do not open /dev/kvm or run
};

// A fatal error with the exit code it maps to (64 before start, 65 configuration).
struct BuildError {
  int exit_code;
  std::string message;
};

class Machine {
 public:
  static std::unique_ptr<Machine> build(const config::VmConfig& cfg, const BuildOptions& opts,
                                        BuildError* err);
  virtual ~Machine() = default;
  // Memory map, devices with their addresses and interrupts, boot entry: printed by dryrun.
  virtual std::string describe() const = 0;
  // Runs the VM until it stops; returns qvm's exit code.
  virtual int run() = 0;
};

}  // namespace qvm::machine
