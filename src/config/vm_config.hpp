// The typed, validated result of parsing: what the machine layer builds a VM from.
// Every element keeps the location it came from so later stages can report errors there too.
#pragma once

#include <any>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "config/schema.hpp"
#include "config/source.hpp"
#include "config/values.hpp"

namespace qvm::config {

// A `set` value as written, with where it was written.
struct VarValue {
  std::string text;
  SrcLoc loc;
};
using VarMap = std::map<std::string, VarValue, std::less<>>;

enum class SchedPolicy { kRoundRobin, kFifo, kOther };

struct SchedConfig {
  uint32_t priority = 0;
  SchedPolicy policy = SchedPolicy::kRoundRobin;
};

struct CpuConfig {
  SrcLoc loc;
  std::vector<uint32_t> runmask;         // empty: any host CPU
  std::optional<SchedConfig> sched;      // empty: qvm's own priority and policy
  std::optional<std::string> partition;  // accepted, not supported on Linux
  VarMap vars;
};

struct MemConfig {
  enum class Kind { kRam, kRom } kind = Kind::kRam;
  uint64_t start = 0;  // resolved: without an explicit start, after the highest RAM/ROM so far
  uint64_t size = 0;
  bool explicit_start = false;
  SrcLoc loc;
  uint64_t end() const { return start + size; }
};

struct ReserveConfig {
  enum class Kind { kLoc, kIntr } kind = Kind::kLoc;
  GuestLoc loc;
  uint64_t length = 0;
  uint32_t intr = 0;
  SrcLoc where;
};

// `[blob_type] load [address,]path`; `initrd` is qvm's blob type for a Linux initial ramdisk,
// `module` for a multiboot boot module (`module load "FILE [ARGS]"`, docs/config-language.md).
enum class BlobType { kAuto, kInitrd, kData, kAcpi, kFdt, kModule };
std::string_view blob_type_name(BlobType t);

struct LoadConfig {
  BlobType type = BlobType::kAuto;
  std::optional<uint64_t> addr;
  std::string path;
  std::string module_string;  // kModule: "FILE [ARGS]" as written
  SrcLoc loc;
};

// `pass loc spec[,length][,attrs][=host]` and `pass intr guest[,t|u][=vector]` (spec §3.7).
struct PassLoc {
  GuestLoc guest;
  std::optional<uint64_t> length;
  std::string attrs;  // subset of "+-rwxcemdnst"
  std::optional<GuestLoc> host;
  SrcLoc loc;
};
struct PassIntr {
  IntrRef guest;
  char mode = 0;  // 0 (default), 't' (service thread), 'u' (unmask immediately)
  std::optional<uint32_t> host_vector;
  SrcLoc loc;
};
struct PassConfig {
  SrcLoc loc;
  std::optional<PassLoc> location;
  std::optional<PassIntr> intr;
};

// One value given for a vdev option.
struct OptionValue {
  std::string text;  // empty for flags
  SrcLoc loc;
};

struct VdevConfig {
  std::string type;
  const VdevSchema* schema = nullptr;
  SrcLoc loc;
  std::optional<GuestLoc> location;  // `loc`
  SrcLoc location_loc;
  std::vector<IntrRef> intr;  // `intr` (a list only for multi-interrupt vdevs)
  SrcLoc intr_loc;
  std::optional<uint32_t> hostvector;
  std::optional<std::string> name;
  std::optional<LogRouting> log;  // `log filters dest` overrides for this vdev
  std::map<std::string, std::vector<OptionValue>, std::less<>> options;
  VarMap vars;
  std::any typed;  // the schema's parse() of this entry (VdevSchema::parse), set by the parser

  // Typed access to device-specific options; the default from the schema applies when unset.
  bool has(std::string_view option) const;
  std::optional<std::string> text(std::string_view option) const;
  std::optional<uint64_t> number(std::string_view option) const;
  std::optional<bool> boolean(std::string_view option) const;
  std::vector<std::string> all(std::string_view option) const;
  // Whether the device sits on PCI (no `loc`, or `loc pci:...`) as the spec's rule says.
  bool on_pci() const;
};

enum class UnsupportedAction { kAbort, kFail, kIgnore };
struct UnsupportedPolicy {
  UnsupportedAction instruction = UnsupportedAction::kFail;
  UnsupportedAction reference = UnsupportedAction::kIgnore;
  UnsupportedAction reg = UnsupportedAction::kFail;
};
std::string_view unsupported_action_name(UnsupportedAction a);

enum class SafetyMode { kNone, kWarn, kRequired };

struct VmConfig {
  std::optional<std::string> system;
  std::vector<CpuConfig> cpus;  // empty: one vCPU with defaults
  std::vector<MemConfig> memory;
  std::vector<ReserveConfig> reserves;
  std::vector<LoadConfig> loads;
  std::optional<std::string> cmdline;
  std::vector<PassConfig> passes;
  std::vector<VdevConfig> vdevs;
  VarMap vars;  // global and guest variables
  LogRouting logging = LogRouting::defaults();
  bool logging_set = false;
  UnsupportedPolicy unsupported;
  std::optional<std::string> dump;
  SafetyMode safety = SafetyMode::kNone;
  bool dryrun = false;
  bool list_variables = false;  // `set ?`

  std::string system_name() const { return system.value_or("qvm-guest"); }
  size_t cpu_count() const { return cpus.empty() ? 1 : cpus.size(); }
  // The value of a guest/global variable, or its default.
  std::optional<std::string> var(std::string_view name) const;
  const VdevConfig* find_vdev_by_name(std::string_view name) const;
};

}  // namespace qvm::config
