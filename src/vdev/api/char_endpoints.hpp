// Host ends of character devices (`hostdev` of ser8250 and virtio-console, spec §6.2.7/§6.4):
// qvm's stdio, files and a pseudo-terminal.
#pragma once

#include <string>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm::vdev {

// The input and output fds of one character device. -1 = none.
struct CharEndpoints {
  int in = -1;
  int out = -1;
  std::vector<UniqueFd> owned;  // fds opened for this device
  std::string description;
};

// Parses and opens `hostdev` values: `-` (stdio), `<PATH` input, `>PATH` output, `PATH` both,
// `pty` (a new pseudo-terminal whose name is logged). `dryrun`: nothing is created (spec §4:
// dryrun only checks): an output that does not exist yet is checked to be creatable (its
// directory exists and is writable), an existing one is opened without O_CREAT, no pty is made.
Result<CharEndpoints> open_char_endpoints(const std::vector<std::string>& hostdevs,
                                          bool dryrun = false);

}  // namespace qvm::vdev
