// Fuzz target: the Linux bzImage loader (setup header parsing, zero page, initrd placement) over
// a 4 MiB guest. The input is always treated as a bzImage candidate: the "HdrS" magic is forced
// so the fuzzer spends its time past detection. Property as for elf_loader.
#include <vector>

#include "loader_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> img(data, data + size);
  if (img.size() >= 0x206) {
    const uint8_t hdrs[] = {'H', 'd', 'r', 'S'};
    std::copy(hdrs, hdrs + 4, img.begin() + 0x202);
  }
  qvm::fuzz::run_loader(img.data(), img.size());
  return 0;
}
