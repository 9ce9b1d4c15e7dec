// Where a guest dump goes (spec §3.13 `dump directory` | `dump "|command"`):
//
//   directory  a new file <prefix>-YYYYMMDD-hhmmss.gcore (local time; prefix = the `system` name,
//              default qvm-guest); if that name exists, -1 ... -9 before .gcore; if all ten
//              exist, no dump (an error). Created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 (a
//              guest's memory is as private as the VM): a symlink at a name counts as taken and
//              is never followed. The directory must exist and be ours or root's, not writable by
//              group or others unless sticky (base/safe_open.hpp's output-directory rules); it is
//              not created. A file left incomplete by an error is removed.
//   |command   `/bin/sh -c command` with the core on its stdin (a pipe) and QVM_DUMP_NAME set to
//              the file name the directory form would have used; signals at their defaults,
//              qvm's other fds closed. Waiting for it is bounded: a command that does not read
//              for WriteOptions::stall fails the dump, one that has not ended a few seconds after
//              its stdin closes is left running and reaped later (reap_children()).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "dump/elf_core.hpp"

namespace qvm::dump {

// The `dump` option's value, taken apart.
struct Destination {
  enum class Kind { kDirectory, kCommand };
  Kind kind = Kind::kDirectory;
  std::string target;  // the directory, or the command without its '|'

  static Result<Destination> parse(std::string_view option);
  std::string describe() const;  // "directory DIR" | "command 'CMD'"
};

// Whether a dump could go there now (the directory exists and passes the checks above); for a
// start-up warning. A command is not run to find out.
Status check_destination(const Destination& dest);

// `<prefix>-YYYYMMDD-hhmmss.gcore`, with "-N" before ".gcore" for attempt N in 1..9.
std::string file_name(std::string_view prefix, const std::tm& local, int attempt);

// The first free name of the ten in `dirfd`, created empty (O_EXCL, O_NOFOLLOW, 0600).
struct CreatedFile {
  UniqueFd fd;
  std::string name;
};
Result<CreatedFile> create_file(int dirfd, std::string_view prefix, const std::tm& local);

// How long to wait for a dump command to end after its stdin is closed.
struct CommandOptions {
  WriteOptions write;
  std::chrono::milliseconds reap_wait{5000};
};

struct Written {
  std::string where;  // the file's path, or "command 'CMD'"
  uint64_t bytes = 0;
};

// One dump to `dest`, named for `when` in local time.
Result<Written> write_dump(const Destination& dest, std::string_view prefix, std::time_t when,
                           const CoreInput& in, const CommandOptions& opts = {});

// Dump commands that had not ended when their dump was done: reaped without blocking here. Returns
// how many are still running.
size_t reap_children();
std::vector<pid_t> stray_children();  // for tests and the status report

}  // namespace qvm::dump
