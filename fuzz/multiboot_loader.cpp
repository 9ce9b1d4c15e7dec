// Fuzz target: the multiboot v1 loader (header search, address fields, ELF32, boot information,
// modules) over a 4 MiB guest. Property: no crash, hang, leak or out-of-bounds access on any image;
// on success the image and the modules lie in guest RAM, the modules above the image.
#include "loader_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qvm::fuzz::run_loader(data, size, true);
  return 0;
}
