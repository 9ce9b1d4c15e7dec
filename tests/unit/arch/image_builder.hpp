// Synthetic kernel images for the loader tests and the fuzz seed corpus: an ELF (32- or 64-bit)
// with chosen program headers and an optional Xen PVH note, and a bzImage with a setup header.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace qvm::arch::x86::testing {

inline void put_le(std::vector<uint8_t>& b, size_t off, uint64_t v, int n) {
  if (b.size() < off + static_cast<size_t>(n)) b.resize(off + static_cast<size_t>(n));
  for (int i = 0; i < n; i++) b[off + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}

struct Seg {
  uint32_t type = 1;  // PT_LOAD
  uint64_t offset = 0, paddr = 0, filesz = 0, memsz = 0;
};

// ELF header + phdrs at 64 (ELF64) / 52 (ELF32); segment data must already be in `body` at the
// offsets the segments name (body bytes from 0x1000 on are appended as given).
inline std::vector<uint8_t> make_elf(bool is64, uint64_t entry, const std::vector<Seg>& segs,
                                     const std::vector<uint8_t>& body_from_0x1000 = {}) {
  std::vector<uint8_t> b(0x1000, 0);
  const uint8_t ident[] = {0x7f, 'E', 'L', 'F', static_cast<uint8_t>(is64 ? 2 : 1), 1, 1};
  std::memcpy(b.data(), ident, sizeof ident);
  put_le(b, 16, 2, 2);              // ET_EXEC
  put_le(b, 18, is64 ? 62 : 3, 2);  // EM_X86_64 / EM_386
  put_le(b, 20, 1, 4);
  const size_t phoff = is64 ? 64 : 52, phent = is64 ? 56 : 32;
  if (is64) {
    put_le(b, 24, entry, 8);
    put_le(b, 32, phoff, 8);
    put_le(b, 52, 64, 2);
    put_le(b, 54, phent, 2);
    put_le(b, 56, segs.size(), 2);
  } else {
    put_le(b, 24, entry, 4);
    put_le(b, 28, phoff, 4);
    put_le(b, 40, 52, 2);
    put_le(b, 42, phent, 2);
    put_le(b, 44, segs.size(), 2);
  }
  for (size_t i = 0; i < segs.size(); i++) {
    size_t o = phoff + i * phent;
    const Seg& s = segs[i];
    put_le(b, o, s.type, 4);
    if (is64) {
      put_le(b, o + 8, s.offset, 8);
      put_le(b, o + 16, s.paddr, 8);
      put_le(b, o + 24, s.paddr, 8);
      put_le(b, o + 32, s.filesz, 8);
      put_le(b, o + 40, s.memsz, 8);
    } else {
      put_le(b, o + 4, s.offset, 4);
      put_le(b, o + 8, s.paddr, 4);
      put_le(b, o + 12, s.paddr, 4);
      put_le(b, o + 16, s.filesz, 4);
      put_le(b, o + 20, s.memsz, 4);
    }
  }
  b.insert(b.end(), body_from_0x1000.begin(), body_from_0x1000.end());
  return b;
}

// A Xen PVH note (name "Xen", type 18) with a `desc_size`-byte entry.
inline std::vector<uint8_t> pvh_note(uint64_t entry, int desc_size = 8) {
  std::vector<uint8_t> n;
  put_le(n, 0, 4, 4);
  put_le(n, 4, static_cast<uint64_t>(desc_size), 4);
  put_le(n, 8, 18, 4);
  const uint8_t name[] = {'X', 'e', 'n', 0};
  n.insert(n.end(), name, name + 4);
  put_le(n, 16, entry, desc_size);
  return n;
}

// A bzImage: `setup_sects` sectors of setup after the boot sector, header fields of protocol
// `version`, then `kernel` as the protected-mode part.
inline std::vector<uint8_t> make_bzimage(uint16_t version, uint8_t setup_sects,
                                         const std::vector<uint8_t>& kernel,
                                         uint64_t pref_address = 0, uint32_t init_size = 0) {
  size_t setup = (static_cast<size_t>(setup_sects == 0 ? 4 : setup_sects) + 1) * 512;
  std::vector<uint8_t> b(setup, 0);
  b[0x1f1] = setup_sects;
  put_le(b, 0x1fe, 0xaa55, 2);
  b[0x200] = 0xeb;                  // jmp short
  b[0x201] = 0x66;                  // header end = 0x268
  put_le(b, 0x202, 0x53726448, 4);  // "HdrS"
  put_le(b, 0x206, version, 2);
  b[0x211] = 0x01;                  // LOADED_HIGH
  put_le(b, 0x214, 0x100000, 4);    // code32_start
  put_le(b, 0x22c, 0x7fffffff, 4);  // initrd_addr_max
  put_le(b, 0x230, 0x200000, 4);    // kernel_alignment
  b[0x234] = 1;                     // relocatable
  put_le(b, 0x238, 2048, 4);        // cmdline_size
  put_le(b, 0x258, pref_address, 8);
  put_le(b, 0x260, init_size, 4);
  b.insert(b.end(), kernel.begin(), kernel.end());
  return b;
}

}  // namespace qvm::arch::x86::testing
