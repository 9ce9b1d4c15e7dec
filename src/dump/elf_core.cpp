// The ELF64 core writer (elf_core.hpp). Layouts follow the System V gABI (ELF header, program
// headers, note entries with 4-byte aligned name and descriptor, as Linux writes them in cores)
// and Linux's x86-64 struct elf_prstatus / elf_prpsinfo (include/uapi/linux/elfcore.h), which is
// what BFD parses for GDB.
#include "dump/elf_core.hpp"

#include <elf.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace qvm::dump {
namespace {

constexpr size_t kEhdrSize = 64, kPhdrSize = 56;
constexpr size_t kNoteHeader = 12;  // namesz, descsz, type

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

void put(std::vector<uint8_t>& b, size_t at, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

size_t note_size(size_t namesz, size_t descsz) {
  return kNoteHeader + align_up(namesz, 4) + align_up(descsz, 4);
}

// Appends one note: header, name (NUL included in namesz) and descriptor, each padded to 4.
void add_note(std::vector<uint8_t>& b, const char* name, uint32_t type,
              const std::vector<uint8_t>& desc) {
  const size_t namesz = std::strlen(name) + 1;
  const size_t at = b.size();
  b.resize(at + note_size(namesz, desc.size()), 0);
  put(b, at, namesz, 4);
  put(b, at + 4, desc.size(), 4);
  put(b, at + 8, type, 4);
  std::memcpy(&b[at + kNoteHeader], name, namesz);
  std::memcpy(&b[at + kNoteHeader + align_up(namesz, 4)], desc.data(), desc.size());
}

std::vector<uint8_t> prstatus(const VcpuRegs& r, uint32_t pid) {
  std::vector<uint8_t> d(kPrstatusSize, 0);
  // pr_info, pr_cursig (0: GDB prints no "terminated with signal"), pr_sigpend, pr_sighold zero.
  put(d, kPrPidOffset, pid, 4);  // one LWP per vCPU: GDB's "Thread N (LWP pid)"
  const auto regs = user_regs(r);
  for (size_t i = 0; i < regs.size(); ++i) put(d, kPrRegOffset + 8 * i, regs[i], 8);
  // pr_fpvalid (offset 328) stays 0: no NT_FPREGSET follows.
  return d;
}

std::vector<uint8_t> prpsinfo(const std::string& name) {
  std::vector<uint8_t> d(kPrpsinfoSize, 0);
  d[1] = 'R';        // pr_sname: running
  put(d, 24, 1, 4);  // pr_pid: the first vCPU
  // pr_fname[16] at 40, pr_psargs[80] at 56; NUL-terminated, truncated to fit.
  const std::string fname = name.substr(0, 15);
  std::memcpy(&d[40], fname.data(), fname.size());
  const std::string args = ("qvm guest " + name).substr(0, 79);
  std::memcpy(&d[56], args.data(), args.size());
  return d;
}

std::vector<uint8_t> qvm_vcpu(const VcpuRegs& r, uint32_t index) {
  std::vector<uint8_t> d(kQvmVcpuSize, 0);
  put(d, 0, 1, 4);  // version
  put(d, 4, index, 4);
  const uint64_t v[] = {r.cr0, r.cr2, r.cr3, r.cr4, r.efer, r.gdt_base, r.idt_base};
  for (size_t i = 0; i < std::size(v); ++i) put(d, 8 + 8 * i, v[i], 8);
  put(d, 64, r.gdt_limit, 2);
  put(d, 66, r.idt_limit, 2);
  return d;
}

std::vector<uint8_t> notes(const CoreInput& in) {
  std::vector<uint8_t> b;
  for (size_t i = 0; i < in.vcpus.size(); ++i) {
    add_note(b, "CORE", kNtPrstatus, prstatus(in.vcpus[i], static_cast<uint32_t>(i + 1)));
    // Linux puts the process's NT_PRPSINFO after the first thread's NT_PRSTATUS.
    if (i == 0) add_note(b, "CORE", kNtPrpsinfo, prpsinfo(in.name));
    add_note(b, "QVM", kNtQvmVcpu, qvm_vcpu(in.vcpus[i], static_cast<uint32_t>(i)));
  }
  return b;
}

// SIGPIPE held off this thread while the core goes to a pipe whose reader may leave: the write
// then fails with EPIPE. A SIGPIPE that our writes raised is taken back before the old mask
// returns (qvm ignores SIGPIPE anyway; a unit test or another caller may not).
class SigpipeHold {
 public:
  SigpipeHold() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    sigset_t pend;
    sigpending(&pend);
    was_pending_ = sigismember(&pend, SIGPIPE) == 1;
  }
  ~SigpipeHold() {
    sigset_t pend;
    sigpending(&pend);
    if (!was_pending_ && sigismember(&pend, SIGPIPE) == 1) {
      const timespec zero{};
      (void)sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeHold(const SigpipeHold&) = delete;
  SigpipeHold& operator=(const SigpipeHold&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
};

class Writer {
 public:
  Writer(int fd, const WriteOptions& o) : fd_(fd), opts_(o) {}

  Status write(const uint8_t* p, size_t len) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + opts_.stall;
    while (len > 0) {
      const ssize_t n = ::write(fd_, p, len);
      if (n > 0) {
        p += n;
        len -= static_cast<size_t>(n);
        written_ += static_cast<uint64_t>(n);
        deadline = Clock::now() + opts_.stall;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd pfd{fd_, POLLOUT, 0};
        const int r = left.count() > 0 ? ::poll(&pfd, 1, static_cast<int>(left.count())) : 0;
        if (r < 0 && errno != EINTR) return Error::from_errno("poll", errno);
        if (r == 0 && Clock::now() >= deadline)
          return make_error("no progress for " + std::to_string(opts_.stall.count()) +
                            " ms (the reader stalled)");
        continue;
      }
      return Error::from_errno("write", n < 0 ? errno : EIO);
    }
    return {};
  }

  Status zeros(uint64_t len) {
    static const uint8_t kZero[kPageSize] = {};
    while (len > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(len, sizeof kZero));
      QVM_TRY(write(kZero, n));
      len -= n;
    }
    return {};
  }

  uint64_t written() const { return written_; }

 private:
  int fd_;
  WriteOptions opts_;
  uint64_t written_ = 0;
};

}  // namespace

std::vector<uint64_t> user_regs(const VcpuRegs& r) {
  return {r.r15,    r.r14, r.r13, r.r12,     r.rbp,     r.rbx, r.r11, r.r10, r.r9,
          r.r8,     r.rax, r.rcx, r.rdx,     r.rsi,     r.rdi, ~0ull, r.rip, r.cs,
          r.rflags, r.rsp, r.ss,  r.fs_base, r.gs_base, r.ds,  r.es,  r.fs,  r.gs};
}

Result<CoreLayout> core_layout(const CoreInput& in) {
  if (in.vcpus.empty()) return make_error("a core needs at least one vCPU");
  // e_phnum is 16 bits and 0xffff means "see section 0" (PN_XNUM), which this writer never uses.
  if (in.memory.size() + 1 >= PN_XNUM) return make_error("too many memory regions for one core");
  CoreLayout l;
  l.notes_offset = kEhdrSize + kPhdrSize * (in.memory.size() + 1);
  size_t notes_size = in.vcpus.size() * (note_size(5, kPrstatusSize) + note_size(4, kQvmVcpuSize));
  notes_size += note_size(5, kPrpsinfoSize);
  l.notes_size = notes_size;
  uint64_t at = align_up(l.notes_offset + l.notes_size, kPageSize);
  for (const auto& m : in.memory) {
    if (m.host.size() > std::numeric_limits<uint64_t>::max() - at - kPageSize ||
        m.gpa > std::numeric_limits<uint64_t>::max() - m.host.size())
      return make_error("guest memory region too large for a core");
    l.load_offsets.push_back(at);
    at = align_up(at + m.host.size(), kPageSize);
  }
  // The file ends with the last segment's bytes (no padding after it).
  l.total = in.memory.empty() ? l.notes_offset + l.notes_size
                              : l.load_offsets.back() + in.memory.back().host.size();
  return l;
}

Result<uint64_t> write_core(int fd, const CoreInput& in, const WriteOptions& opts) {
  const CoreLayout l = QVM_TRY(core_layout(in));
  const size_t phnum = in.memory.size() + 1;
  std::vector<uint8_t> head(kEhdrSize + kPhdrSize * phnum, 0);
  // ELF header (gABI "ELF Header").
  std::memcpy(head.data(), ELFMAG, SELFMAG);
  head[EI_CLASS] = ELFCLASS64;
  head[EI_DATA] = ELFDATA2LSB;
  head[EI_VERSION] = EV_CURRENT;
  head[EI_OSABI] = ELFOSABI_NONE;  // as Linux writes cores: GDB takes the host's OS ABI
  put(head, 16, ET_CORE, 2);
  put(head, 18, EM_X86_64, 2);
  put(head, 20, EV_CURRENT, 4);
  put(head, 32, kEhdrSize, 8);  // e_phoff
  put(head, 52, kEhdrSize, 2);  // e_ehsize
  put(head, 54, kPhdrSize, 2);  // e_phentsize
  put(head, 56, phnum, 2);      // e_phnum
  // Program headers: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align.
  auto phdr = [&](size_t i, uint32_t type, uint32_t flags, uint64_t off, uint64_t addr,
                  uint64_t size, uint64_t align) {
    const size_t at = kEhdrSize + kPhdrSize * i;
    put(head, at, type, 4);
    put(head, at + 4, flags, 4);
    put(head, at + 8, off, 8);
    put(head, at + 16, addr, 8);
    put(head, at + 24, addr, 8);
    put(head, at + 32, size, 8);
    put(head, at + 40, size, 8);
    put(head, at + 48, align, 8);
  };
  phdr(0, PT_NOTE, 0, l.notes_offset, 0, l.notes_size, 4);
  for (size_t i = 0; i < in.memory.size(); ++i) {
    const auto& m = in.memory[i];
    phdr(i + 1, PT_LOAD, PF_R | PF_X | (m.readonly ? 0 : PF_W), l.load_offsets[i], m.gpa,
         m.host.size(), kPageSize);
  }
  const std::vector<uint8_t> note_bytes = notes(in);
  if (note_bytes.size() != l.notes_size) return make_error("core notes: size mismatch");

  SigpipeHold hold;
  Writer w(fd, opts);
  QVM_TRY(w.write(head.data(), head.size()));
  QVM_TRY(w.write(note_bytes.data(), note_bytes.size()));
  for (size_t i = 0; i < in.memory.size(); ++i) {
    QVM_TRY(w.zeros(l.load_offsets[i] - w.written()));
    const auto& host = in.memory[i].host;
    const size_t chunk = std::max<size_t>(opts.chunk, kPageSize);
    for (size_t off = 0; off < host.size(); off += chunk) {
      const size_t n = std::min(chunk, host.size() - off);
      QVM_TRY(w.write(host.data() + off, n));
    }
  }
  if (w.written() != l.total) return make_error("core: size mismatch");
  return w.written();
}

}  // namespace qvm::dump
