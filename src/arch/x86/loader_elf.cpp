// ELF loading (System V gABI; x86-64 psABI) with the Xen PVH entry note
// (xen/include/public/elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY = 18, name "Xen"). PT_LOAD segments
// go to p_paddr; the bytes past p_filesz up to p_memsz are zeroed. Every header field is checked
// against the file size before use.
#include <algorithm>

#include "arch/x86/loader_internal.hpp"
#include "base/log.hpp"

namespace qvm::arch::x86::detail {

namespace {

constexpr uint8_t kClass32 = 1, kClass64 = 2, kDataLsb = 1;
constexpr uint16_t kEm386 = 3, kEmX8664 = 62;
constexpr uint32_t kPtLoad = 1, kPtNote = 4;
constexpr uint32_t kXenElfnotePhys32Entry = 18;
constexpr uint32_t kMaxPhnum = 4096;

struct Phdr {
  uint32_t type = 0;
  uint64_t offset = 0, paddr = 0, filesz = 0, memsz = 0;
};

Result<Phdr> read_phdr(std::span<const uint8_t> f, uint64_t off, bool is64) {
  Phdr p;
  bool ok = rd(f, off, p.type);
  if (is64) {
    ok = ok && rd(f, off + 8, p.offset) && rd(f, off + 24, p.paddr) && rd(f, off + 32, p.filesz) &&
         rd(f, off + 40, p.memsz);
  } else {
    uint32_t o = 0, pa = 0, fs = 0, ms = 0;
    ok = ok && rd(f, off + 4, o) && rd(f, off + 12, pa) && rd(f, off + 16, fs) &&
         rd(f, off + 20, ms);
    p.offset = o;
    p.paddr = pa;
    p.filesz = fs;
    p.memsz = ms;
  }
  if (!ok) return make_error("ELF program header outside the file");
  return p;
}

// The segment's file bytes, or an error if they are not all inside the file.
Result<std::span<const uint8_t>> segment_bytes(std::span<const uint8_t> f, const Phdr& p) {
  if (p.offset > f.size() || p.filesz > f.size() - p.offset)
    return make_error(
        strprintf("ELF segment data at file offset 0x%llx+0x%llx is outside the "
                  "file (%zu bytes)",
                  static_cast<unsigned long long>(p.offset),
                  static_cast<unsigned long long>(p.filesz), f.size()));
  return f.subspan(static_cast<size_t>(p.offset), static_cast<size_t>(p.filesz));
}

uint64_t align4(uint64_t v) {
  return (v + 3) & ~uint64_t{3};
}

// Scans one PT_NOTE segment for the PVH entry note. Notes: namesz, descsz, type, name (padded to
// 4), desc (padded to 4) (gABI "Note Section").
Result<std::optional<uint64_t>> find_pvh_note(std::span<const uint8_t> notes) {
  uint64_t off = 0;
  while (notes.size() - off >= 12) {
    uint32_t namesz = 0, descsz = 0, type = 0;
    (void)rd(notes, off, namesz);
    (void)rd(notes, off + 4, descsz);
    (void)rd(notes, off + 8, type);
    uint64_t name_off = off + 12;
    uint64_t desc_off = name_off + align4(namesz);
    uint64_t next = desc_off + align4(descsz);
    if (next > notes.size() || desc_off + descsz > notes.size())
      return make_error("ELF note extends past its PT_NOTE segment");
    static constexpr uint8_t kXen[4] = {'X', 'e', 'n', 0};
    if (type == kXenElfnotePhys32Entry && namesz == 4 &&
        std::equal(kXen, kXen + 4, notes.begin() + static_cast<ptrdiff_t>(name_off))) {
      // Linux emits the entry as _ASM_PTR (8 bytes on x86-64), Xen's own kernels as 4 bytes.
      uint64_t entry = 0;
      if (descsz == 4) {
        uint32_t e32 = 0;
        (void)rd(notes, desc_off, e32);
        entry = e32;
      } else if (descsz == 8) {
        (void)rd(notes, desc_off, entry);
      } else {
        return make_error("Xen PVH entry note has a bad size");
      }
      if (entry >= (1ull << 32)) return make_error("Xen PVH entry point is above 4 GiB");
      return std::optional<uint64_t>(entry);
    }
    off = next;
  }
  return std::optional<uint64_t>();
}

}  // namespace

Result<ElfImage> load_elf(const LoadInput& in, memory::GuestMemory& mem) {
  std::span<const uint8_t> f = in.image;
  if (f.size() < 52) return make_error("ELF header truncated");
  const uint8_t cls = f[4];
  if (cls != kClass32 && cls != kClass64) return make_error("ELF: unknown class");
  if (f[5] != kDataLsb) return make_error("ELF: not little-endian");
  const bool is64 = cls == kClass64;
  if (is64 && f.size() < 64) return make_error("ELF header truncated");
  uint16_t machine = 0, phentsize = 0, phnum = 0;
  uint64_t entry = 0, phoff = 0;
  (void)rd(f, 18, machine);
  if (machine != (is64 ? kEmX8664 : kEm386)) return make_error("ELF: not an x86 executable");
  if (is64) {
    (void)rd(f, 24, entry);
    (void)rd(f, 32, phoff);
    (void)rd(f, 54, phentsize);
    (void)rd(f, 56, phnum);
  } else {
    uint32_t e = 0, o = 0;
    (void)rd(f, 24, e);
    (void)rd(f, 28, o);
    (void)rd(f, 42, phentsize);
    (void)rd(f, 44, phnum);
    entry = e;
    phoff = o;
  }
  if (phnum == 0 || phnum > kMaxPhnum) return make_error("ELF: no or too many program headers");
  if (phentsize < (is64 ? 56 : 32)) return make_error("ELF: program header size too small");
  if (phoff > f.size() || uint64_t{phnum} * phentsize > f.size() - phoff)
    return make_error("ELF: program headers outside the file");

  std::vector<Phdr> phdrs;
  for (uint32_t i = 0; i < phnum; i++)
    phdrs.push_back(QVM_TRY(read_phdr(f, phoff + uint64_t{i} * phentsize, is64)));

  ElfImage img;
  img.is64 = is64;
  img.entry = entry;
  img.elf_entry = entry;
  for (const Phdr& p : phdrs) {
    if (p.type != kPtNote) continue;
    std::span<const uint8_t> notes = QVM_TRY(segment_bytes(f, p));
    auto note = QVM_TRY(find_pvh_note(notes));
    if (note) {
      img.entry = *note;
      img.pvh = true;
      break;
    }
  }

  bool any = false;
  for (const Phdr& p : phdrs) {
    if (p.type != kPtLoad || p.memsz == 0) continue;
    if (p.filesz > p.memsz) return make_error("ELF segment has p_filesz > p_memsz");
    std::span<const uint8_t> data = QVM_TRY(segment_bytes(f, p));
    QVM_TRY(check_dest(in, p.paddr, p.memsz, "ELF segment"));
    QVM_TRY(mem.write(p.paddr, data));
    QVM_TRY(mem.fill(p.paddr + p.filesz, 0, p.memsz - p.filesz));
    img.start = any ? std::min(img.start, p.paddr) : p.paddr;
    img.end = any ? std::max(img.end, p.paddr + p.memsz) : p.paddr + p.memsz;
    any = true;
  }
  if (!any) return make_error("ELF has no loadable segment");
  return img;
}

}  // namespace qvm::arch::x86::detail
