// dump/elf_core: the core is parsed back with the C library's own ELF and procfs structures
// (elf.h, sys/procfs.h, sys/user.h: the layout GDB reads for x86-64 Linux cores), and guest
// memory is streamed rather than copied.
#include "dump/elf_core.hpp"

#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/resource.h>
#include <sys/user.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.hpp"
#include "temp_dir.hpp"

namespace qvm::dump {
namespace {

// Our offsets against the C library's structures (x86-64 Linux).
static_assert(sizeof(elf_prstatus) == kPrstatusSize);
static_assert(offsetof(elf_prstatus, pr_reg) == kPrRegOffset);
static_assert(offsetof(elf_prstatus, pr_pid) == kPrPidOffset);
static_assert(sizeof(elf_prpsinfo) == kPrpsinfoSize);
static_assert(sizeof(user_regs_struct) == 27 * 8);

VcpuRegs regs_for(uint64_t seed) {
  VcpuRegs r;
  uint64_t v = seed << 8;
  for (uint64_t* p :
       {&r.rax,     &r.rbx,     &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rbp,  &r.rsp,      &r.r8,
        &r.r9,      &r.r10,     &r.r11, &r.r12, &r.r13, &r.r14, &r.r15,  &r.rip,      &r.rflags,
        &r.fs_base, &r.gs_base, &r.cr0, &r.cr2, &r.cr3, &r.cr4, &r.efer, &r.gdt_base, &r.idt_base})
    *p = ++v;
  r.cs = 0x2b;
  r.ss = 0x23;
  r.ds = 0x23;
  r.es = 0x23;
  r.fs = 0x10;
  r.gs = static_cast<uint16_t>(seed);
  r.gdt_limit = 0x37;
  r.idt_limit = 0xfff;
  return r;
}

std::vector<uint8_t> pattern(size_t n, uint8_t salt) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 7 + i / 4096 + salt) & 0xff);
  return b;
}

struct Note {
  std::string name;
  uint32_t type;
  std::vector<uint8_t> desc;
};

// The core, parsed back.
struct Parsed {
  Elf64_Ehdr eh{};
  std::vector<Elf64_Phdr> ph;
  std::vector<Note> notes;
};

Parsed parse(const std::vector<uint8_t>& f) {
  Parsed p;
  EXPECT_GE(f.size(), sizeof p.eh);
  if (f.size() < sizeof p.eh) return p;
  std::memcpy(&p.eh, f.data(), sizeof p.eh);
  for (size_t i = 0; i < p.eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    const size_t at = p.eh.e_phoff + i * sizeof ph;
    EXPECT_LE(at + sizeof ph, f.size());
    if (at + sizeof ph > f.size()) return p;
    std::memcpy(&ph, f.data() + at, sizeof ph);
    p.ph.push_back(ph);
  }
  for (const auto& ph : p.ph) {
    if (ph.p_type != PT_NOTE) continue;
    size_t at = ph.p_offset;
    const size_t end = ph.p_offset + ph.p_filesz;
    EXPECT_LE(end, f.size());
    while (at + sizeof(Elf64_Nhdr) <= end && end <= f.size()) {
      Elf64_Nhdr nh{};
      std::memcpy(&nh, f.data() + at, sizeof nh);
      at += sizeof nh;
      Note n;
      n.name.assign(reinterpret_cast<const char*>(f.data() + at), nh.n_namesz);
      at += (nh.n_namesz + 3) / 4 * 4;
      n.type = nh.n_type;
      n.desc.assign(f.data() + at, f.data() + at + nh.n_descsz);
      at += (nh.n_descsz + 3) / 4 * 4;
      p.notes.push_back(std::move(n));
    }
    EXPECT_EQ(at, end);
  }
  return p;
}

std::vector<uint8_t> to_file(const CoreInput& in, const std::string& path,
                             const WriteOptions& o = {}) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  EXPECT_TRUE(fd);
  auto n = write_core(fd.get(), in, o);
  EXPECT_TRUE(n) << (n ? "" : n.error().message);
  auto bytes = test::read_all(path);
  if (n) {
    EXPECT_EQ(*n, bytes.size());
  }
  return bytes;
}

class ElfCore : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    low_ = pattern(3 * 4096, 1);
    high_ = pattern(5000, 2);  // not a page multiple: the next segment starts page-aligned
    rom_ = pattern(2 * 4096, 3);
    in_.name = "unit-vm";
    in_.vcpus = {regs_for(1), regs_for(2)};
    in_.memory = {{0x0, low_, false}, {0x100000, high_, false}, {0xfffe0000, rom_, true}};
  }
  test::TempDir dir_;
  std::vector<uint8_t> low_, high_, rom_;
  CoreInput in_;
};

TEST_F(ElfCore, HeaderAndProgramHeaders) {
  const auto f = to_file(in_, dir_.path() + "/core");
  const Parsed p = parse(f);
  EXPECT_EQ(std::memcmp(p.eh.e_ident, ELFMAG, SELFMAG), 0);
  EXPECT_EQ(p.eh.e_ident[EI_CLASS], ELFCLASS64);
  EXPECT_EQ(p.eh.e_ident[EI_DATA], ELFDATA2LSB);
  EXPECT_EQ(p.eh.e_ident[EI_VERSION], EV_CURRENT);
  EXPECT_EQ(p.eh.e_type, ET_CORE);
  EXPECT_EQ(p.eh.e_machine, EM_X86_64);
  EXPECT_EQ(p.eh.e_version, static_cast<uint32_t>(EV_CURRENT));
  EXPECT_EQ(p.eh.e_phoff, sizeof(Elf64_Ehdr));
  EXPECT_EQ(p.eh.e_ehsize, sizeof(Elf64_Ehdr));
  EXPECT_EQ(p.eh.e_phentsize, sizeof(Elf64_Phdr));
  EXPECT_EQ(p.eh.e_shnum, 0);
  ASSERT_EQ(p.ph.size(), 4u);  // one PT_NOTE + three PT_LOAD
  EXPECT_EQ(p.ph[0].p_type, static_cast<uint32_t>(PT_NOTE));
  const std::vector<uint8_t>* src[] = {&low_, &high_, &rom_};
  const uint64_t gpa[] = {0x0, 0x100000, 0xfffe0000};
  for (size_t i = 0; i < 3; ++i) {
    const Elf64_Phdr& ph = p.ph[i + 1];
    SCOPED_TRACE(i);
    EXPECT_EQ(ph.p_type, static_cast<uint32_t>(PT_LOAD));
    EXPECT_EQ(ph.p_vaddr, gpa[i]);
    EXPECT_EQ(ph.p_paddr, gpa[i]);
    EXPECT_EQ(ph.p_filesz, src[i]->size());
    EXPECT_EQ(ph.p_memsz, src[i]->size());
    EXPECT_EQ(ph.p_offset % 4096, 0u);
    EXPECT_EQ(ph.p_align, 4096u);
    EXPECT_EQ(ph.p_flags, i == 2 ? static_cast<uint32_t>(PF_R | PF_X)
                                 : static_cast<uint32_t>(PF_R | PF_W | PF_X));
    ASSERT_LE(ph.p_offset + ph.p_filesz, f.size());
    EXPECT_TRUE(
        std::equal(src[i]->begin(), src[i]->end(), f.begin() + static_cast<ptrdiff_t>(ph.p_offset)))
        << "segment " << i << " differs from the guest memory";
    if (i > 0) {
      EXPECT_GE(ph.p_offset, p.ph[i].p_offset + p.ph[i].p_filesz);
    }
  }
  EXPECT_GE(p.ph[1].p_offset, p.ph[0].p_offset + p.ph[0].p_filesz);
  EXPECT_EQ(f.size(), p.ph[3].p_offset + p.ph[3].p_filesz);
  const auto l = core_layout(in_);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->total, f.size());
}

TEST_F(ElfCore, NotesAreThoseGdbReads) {
  const Parsed p = parse(to_file(in_, dir_.path() + "/core"));
  // vCPU 0: PRSTATUS, PRPSINFO, QVM; vCPU 1: PRSTATUS, QVM.
  ASSERT_EQ(p.notes.size(), 5u);
  const std::pair<std::string, uint32_t> want[] = {{std::string("CORE\0", 5), NT_PRSTATUS},
                                                   {std::string("CORE\0", 5), NT_PRPSINFO},
                                                   {std::string("QVM\0", 4), kNtQvmVcpu},
                                                   {std::string("CORE\0", 5), NT_PRSTATUS},
                                                   {std::string("QVM\0", 4), kNtQvmVcpu}};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(p.notes[i].name, want[i].first) << i;
    EXPECT_EQ(p.notes[i].type, want[i].second) << i;
  }
  EXPECT_EQ(p.notes[0].desc.size(), sizeof(elf_prstatus));
  EXPECT_EQ(p.notes[1].desc.size(), sizeof(elf_prpsinfo));
  EXPECT_EQ(p.notes[2].desc.size(), kQvmVcpuSize);

  for (size_t cpu = 0; cpu < 2; ++cpu) {
    SCOPED_TRACE(cpu);
    const Note& n = p.notes[cpu == 0 ? 0 : 3];
    elf_prstatus st{};
    std::memcpy(&st, n.desc.data(), sizeof st);
    EXPECT_EQ(st.pr_pid, static_cast<pid_t>(cpu + 1));
    EXPECT_EQ(st.pr_cursig, 0);
    user_regs_struct u{};
    std::memcpy(&u, st.pr_reg, sizeof u);
    const VcpuRegs& r = in_.vcpus[cpu];
    EXPECT_EQ(u.rip, r.rip);
    EXPECT_EQ(u.rsp, r.rsp);
    EXPECT_EQ(u.rbp, r.rbp);
    EXPECT_EQ(u.rax, r.rax);
    EXPECT_EQ(u.rbx, r.rbx);
    EXPECT_EQ(u.rcx, r.rcx);
    EXPECT_EQ(u.rdx, r.rdx);
    EXPECT_EQ(u.rsi, r.rsi);
    EXPECT_EQ(u.rdi, r.rdi);
    EXPECT_EQ(u.r8, r.r8);
    EXPECT_EQ(u.r9, r.r9);
    EXPECT_EQ(u.r10, r.r10);
    EXPECT_EQ(u.r11, r.r11);
    EXPECT_EQ(u.r12, r.r12);
    EXPECT_EQ(u.r13, r.r13);
    EXPECT_EQ(u.r14, r.r14);
    EXPECT_EQ(u.r15, r.r15);
    EXPECT_EQ(u.eflags, r.rflags);
    EXPECT_EQ(u.orig_rax, ~0ull);
    EXPECT_EQ(u.cs, 0x2bu);
    EXPECT_EQ(u.ss, 0x23u);
    EXPECT_EQ(u.ds, 0x23u);
    EXPECT_EQ(u.es, 0x23u);
    EXPECT_EQ(u.fs, 0x10u);
    EXPECT_EQ(u.gs, cpu + 1);
    EXPECT_EQ(u.fs_base, r.fs_base);
    EXPECT_EQ(u.gs_base, r.gs_base);

    const Note& q = p.notes[cpu == 0 ? 2 : 4];
    uint32_t ver = 0, idx = 0;
    uint64_t cr3 = 0, efer = 0;
    uint16_t idt_limit = 0;
    std::memcpy(&ver, &q.desc[0], 4);
    std::memcpy(&idx, &q.desc[4], 4);
    std::memcpy(&cr3, &q.desc[8 + 2 * 8], 8);
    std::memcpy(&efer, &q.desc[8 + 4 * 8], 8);
    std::memcpy(&idt_limit, &q.desc[66], 2);
    EXPECT_EQ(ver, 1u);
    EXPECT_EQ(idx, cpu);
    EXPECT_EQ(cr3, r.cr3);
    EXPECT_EQ(efer, r.efer);
    EXPECT_EQ(idt_limit, 0xfff);
  }
  elf_prpsinfo ps{};
  std::memcpy(&ps, p.notes[1].desc.data(), sizeof ps);
  EXPECT_STREQ(ps.pr_fname, "unit-vm");
  EXPECT_STREQ(ps.pr_psargs, "qvm guest unit-vm");
}

TEST_F(ElfCore, LongNamesAreTruncatedInPrpsinfo) {
  in_.name = std::string(200, 'n');
  const Parsed p = parse(to_file(in_, dir_.path() + "/core"));
  ASSERT_GE(p.notes.size(), 2u);
  elf_prpsinfo ps{};
  std::memcpy(&ps, p.notes[1].desc.data(), sizeof ps);
  EXPECT_EQ(std::strlen(ps.pr_fname), 15u);
  EXPECT_EQ(std::strlen(ps.pr_psargs), 79u);
}

TEST_F(ElfCore, SmallChunksAndAPipeGiveTheSameBytes) {
  const auto ref = to_file(in_, dir_.path() + "/core");
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd rd(p[0]), wr(p[1]);
  std::vector<uint8_t> got;
  std::thread reader([&] {
    int fl = ::fcntl(rd.get(), F_GETFL);
    ::fcntl(rd.get(), F_SETFL, fl & ~O_NONBLOCK);
    uint8_t buf[777];
    ssize_t n;
    while ((n = ::read(rd.get(), buf, sizeof buf)) > 0) got.insert(got.end(), buf, buf + n);
  });
  WriteOptions o;
  o.chunk = 4096;
  auto n = write_core(wr.get(), in_, o);
  wr.reset();
  reader.join();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(got, ref);
}

TEST_F(ElfCore, NoVcpuNoCore) {
  in_.vcpus.clear();
  UniqueFd fd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  auto n = write_core(fd.get(), in_);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("vCPU"), std::string::npos);
}

// A reader that went away: EPIPE as an error, no SIGPIPE (its default action would end this test
// process, which does not ignore it), and no SIGPIPE left pending afterwards.
TEST_F(ElfCore, AClosedPipeIsAnErrorNotASignal) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ::close(p[0]);
  UniqueFd wr(p[1]);
  auto n = write_core(wr.get(), in_);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().sys_errno, EPIPE) << n.error().message;
  sigset_t pend;
  sigpending(&pend);
  EXPECT_FALSE(sigismember(&pend, SIGPIPE));
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_FALSE(sigismember(&mask, SIGPIPE)) << "the old signal mask must come back";
}

// A reader that stops reading: the write gives up after the stall time instead of holding the VM.
TEST_F(ElfCore, AStalledReaderTimesOut) {
  std::vector<uint8_t> big(1 << 20, 0x5a);
  in_.memory = {{0, big, false}};
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd rd(p[0]), wr(p[1]);
  WriteOptions o;
  o.stall = std::chrono::milliseconds(200);
  const auto t0 = std::chrono::steady_clock::now();
  auto n = write_core(wr.get(), in_, o);
  const auto dt = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().message.find("no progress"), std::string::npos) << n.error().message;
  EXPECT_GE(dt, std::chrono::milliseconds(190));
  EXPECT_LT(dt, std::chrono::seconds(5));
}

long max_rss_kib() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// 256 MiB of guest memory through a pipe: the writer's peak memory stays far below the guest's
// size (a writer that copied the guest into a buffer first would add 256 MiB). The mapping is
// untouched anonymous memory: reading it maps the shared zero page, which RSS does not count.
TEST_F(ElfCore, GuestMemoryIsStreamedNotCopied) {
  constexpr size_t kSize = 256u << 20;
  void* m = ::mmap(nullptr, kSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  in_.memory = {{0x100000, std::span<const uint8_t>(static_cast<const uint8_t*>(m), kSize), false}};
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd rd(p[0]), wr(p[1]);
  uint64_t got = 0;
  std::thread reader([&] {
    std::vector<uint8_t> buf(1 << 16);
    ssize_t n;
    while ((n = ::read(rd.get(), buf.data(), buf.size())) > 0) got += static_cast<uint64_t>(n);
  });
  const long before = max_rss_kib();
  auto n = write_core(wr.get(), in_);
  wr.reset();
  reader.join();
  const long after = max_rss_kib();
  ::munmap(m, kSize);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(got, *n);
  EXPECT_GT(*n, kSize);
  EXPECT_LT(after - before, 64 * 1024) << "peak RSS grew by " << (after - before) << " KiB";
}

}  // namespace
}  // namespace qvm::dump
