// Fuzz target: the ELF / PVH kernel loader (and the raw fallback) over a 4 MiB guest. Property:
// no crash, hang, leak or out-of-bounds access on any image; on success the loaded image and the
// initrd lie in usable guest RAM.
#include "loader_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qvm::fuzz::run_loader(data, size);
  return 0;
}
