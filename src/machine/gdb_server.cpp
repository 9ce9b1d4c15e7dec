#include "machine/gdb_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "arch/x86/page_walk.hpp"
#include "base/exit_code.hpp"
#include "base/log.hpp"
#include "base/peer_uid.hpp"
#include "machine/machine_impl.hpp"

namespace qvm::machine {
namespace {

constexpr uint64_t kEferLma = 1ull << 10;
constexpr uint64_t kCr0Pe = 1;

Result<UniqueFd> listen_tcp(const config::GdbEndpoint& ep, std::string& where) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(ep.port);
  if (int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return make_error("set gdb: host '" + ep.host + "': " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
  int last = 0;
  for (addrinfo* a = res; a; a = a->ai_next) {
    UniqueFd s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) {
      last = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(s.get(), 1) != 0) {
      last = errno;
      continue;
    }
    where = "tcp " + ep.host + ":" + port;
    return s;
  }
  return Error::from_errno("set gdb: listening on " + ep.host + ":" + port, last);
}

Result<UniqueFd> listen_unix(const std::string& path, std::string& where) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return make_error("set gdb: socket path too long");
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  // A socket left by an earlier qvm of ours is replaced; anything else at the path is not ours
  // to remove (docs/security.md).
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid())
      return make_error("set gdb: " + path + " exists and is not a socket of this user");
    ::unlink(path.c_str());
  }
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) return Error::from_errno("set gdb: socket", errno);
  // Only this user may connect: the mode is set before the name exists.
  const mode_t old = ::umask(077);
  int rc = ::bind(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa);  // NOLINT
  const int err = errno;
  ::umask(old);
  if (rc != 0) return Error::from_errno("set gdb: binding " + path, err);
  if (::listen(s.get(), 1) != 0) return Error::from_errno("set gdb: listen", errno);
  where = "unix " + path;
  return s;
}

}  // namespace

GdbServer::GdbServer(Parts p)
    : cache_(p.vcpus->size()), applied_(p.vcpus->size()), parts_(std::move(p)) {}

GdbServer::~GdbServer() {
  if (client_) (void)parts_.loop->remove_fd(client_.get());
  if (listen_) (void)parts_.loop->remove_fd(listen_.get());
  if (trap_efd_) (void)parts_.loop->remove_fd(trap_efd_.get());
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

Result<std::unique_ptr<GdbServer>> GdbServer::create(const config::GdbEndpoint& ep, Parts parts) {
  std::unique_ptr<GdbServer> g(new GdbServer(std::move(parts)));
  g->listen_ = ep.unix_socket ? QVM_TRY(listen_unix(ep.path, g->where_))
                              : QVM_TRY(listen_tcp(ep, g->where_));
  if (ep.unix_socket) g->unix_path_ = ep.path;
  g->trap_efd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!g->trap_efd_) return Error::from_errno("eventfd", errno);
  GdbServer* raw = g.get();
  QVM_TRY(g->parts_.loop->add_fd(g->listen_.get(), [raw] { raw->on_accept(); }));
  QVM_TRY(g->parts_.loop->add_fd(g->trap_efd_.get(), [raw] { raw->on_traps(); }));
  g->stub_ = std::make_unique<gdb::Stub>(
      *static_cast<gdb::Target*>(raw), [raw](std::string_view b) { raw->send(b); },
      [raw] { raw->drop_client(nullptr); });
  struct stat pvm {};
  if (::stat("/sys/module/kvm_pvm", &pvm) == 0) {
    g->limits_.sw_breakpoints = false;
    g->limits_.user_mode_traps = false;
    g->limits_.why =
        "this host's KVM is kvm_pvm, which intercepts no guest int3 and no debug trap in guest "
        "ring 3: breakpoints use the 4 debug registers and stop only in ring 0, single steps "
        "only in ring 0 (docs/debugging.md)";
    log_warn("GDB stub: %s", g->limits_.why.c_str());
  }
  if (ep.paused) g->parts_.gate->hold_all();  // threads do not exist yet: no kick needed
  log_info("GDB stub listening on %s%s", g->where_.c_str(),
           ep.paused ? " (vCPUs held until GDB continues them)" : "");
  return g;
}

void GdbServer::on_accept() {
  UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!c) return;
  // Whoever is attached controls the guest: on this host only qvm's user or root may be
  // (docs/security.md). Unix sockets say who connected (SO_PEERCRED); loopback TCP through
  // sock_diag. A client from another host reaches a TCP endpoint only where the user bound one
  // to a non-loopback address.
  std::optional<uid_t> uid;
  std::string why;
  if (!unix_path_.empty()) {
    ucred cr{};
    socklen_t cl = sizeof cr;
    if (::getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) uid = cr.uid;
  } else if (tcp_peer_is_loopback(c.get())) {
    auto u = loopback_tcp_peer_uid(c.get());
    if (u)
      uid = *u;
    else
      why = u.error().message + "; use set gdb unix:PATH on this host";
  } else {
    uid = ::geteuid();  // remote: the user chose to expose the endpoint
  }
  if (!uid || (*uid != ::geteuid() && *uid != 0)) {
    ++refused_;
    static RateLimit rl;
    uint64_t supp = 0;
    if (rl.allow(std::chrono::steady_clock::now(), &supp))
      log_warn("GDB stub: connection refused: %s (%llu similar suppressed)",
               uid ? strprintf("uid %u is not this user", static_cast<unsigned>(*uid)).c_str()
                   : ("its user is unknown: " + why).c_str(),
               static_cast<unsigned long long>(supp));
    return;
  }
  if (client_) {
    // One GDB at a time (the protocol has one all-stop state per connection).
    ++refused_;
    static RateLimit rl;
    uint64_t supp = 0;
    if (rl.allow(std::chrono::steady_clock::now(), &supp))
      log_warn("GDB stub: a second connection refused: a GDB client is already attached");
    return;
  }
  int one = 1;
  ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails on unix: harmless
  client_ = std::move(c);
  if (auto s = parts_.loop->add_fd(client_.get(), [this] { on_client_readable(); }); !s) {
    client_.reset();
    return;
  }
  ++sessions_;
  uint64_t supp = 0;
  if (session_log_.allow(std::chrono::steady_clock::now(), &supp))
    log_info("GDB stub: client attached on %s; the VM is stopped", where_.c_str());
  stub_->attach();
  after_stub();
}

void GdbServer::on_client_readable() {
  uint8_t buf[4096];
  ssize_t n = ::read(client_.get(), buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    stub_->disconnected();
    drop_client("connection closed");
    return;
  }
  if (n > 0) stub_->feed(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
  after_stub();
}

void GdbServer::after_stub() {
  if (!send_failed_) return;
  send_failed_ = false;
  stub_->disconnected();
  drop_client("the client does not read its replies");
}

void GdbServer::drop_client(const char* why) {
  if (!client_) return;
  (void)parts_.loop->remove_fd(client_.get());
  client_.reset();
  uint64_t supp = 0;
  if (session_log_.allow(std::chrono::steady_clock::now(), &supp))
    log_info("GDB stub: client detached%s%s; the VM runs on", why ? ": " : "", why ? why : "");
}

void GdbServer::send(std::string_view bytes) {
  // The client is expected to read; one that does not cannot stall qvm's event loop for long:
  // after 5 s of a full socket it is dropped.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!bytes.empty() && client_ && !send_failed_) {
    ssize_t n = ::send(client_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && std::chrono::steady_clock::now() < deadline) {
      pollfd p{client_.get(), POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    send_failed_ = true;
    return;
  }
}

void GdbServer::on_debug_exit(size_t vcpu, const kvm::DebugExit& e) {
  {
    std::lock_guard lk(traps_mu_);
    if (traps_.size() < 64) traps_.push_back({vcpu, e.exception, e.pc, e.dr6});
  }
  parts_.gate->hold_self(vcpu);
  uint64_t one = 1;
  ssize_t n = ::write(trap_efd_.get(), &one, sizeof one);
  (void)n;
}

void GdbServer::on_traps() {
  uint64_t v = 0;
  ssize_t n = ::read(trap_efd_.get(), &v, sizeof v);
  (void)n;
  std::vector<gdb::DebugTrap> traps;
  {
    std::lock_guard lk(traps_mu_);
    traps.swap(traps_);
  }
  if (traps.empty()) return;
  if (!stub_->attached()) {
    // A trap that raced with a detach: that vCPU runs on.
    for (const auto& t : traps) parts_.gate->release(t.vcpu);
    return;
  }
  if (!stub_->running()) return;  // already stopped (an interrupt won): all vCPUs stay held
  stop_all();
  // All-stop: the first trap is reported; another vCPU that hit an int3 meanwhile hits it again
  // when resumed (its rip still points at it).
  stub_->on_trap(traps.front());
  after_stub();
}

void GdbServer::vm_ended(int exit_code) {
  if (!client_) return;
  stub_->vm_ended(exit_code);
  drop_client("the VM ended");
}

void GdbServer::stop_all() {
  parts_.gate->hold_all();
  parts_.gate->wait_all_parked();
}

void GdbServer::resume(std::span<const size_t> vcpus) {
  for (size_t i : vcpus) {
    cache_[i] = Cache{};
    parts_.gate->release(i);
  }
}

Result<kvm_sregs> GdbServer::cached_sregs(size_t vcpu) {
  Cache& c = cache_[vcpu];
  if (!c.sregs) c.sregs = QVM_TRY((*parts_.vcpus)[vcpu]->sregs());
  return *c.sregs;
}

void GdbServer::kill() {
  parts_.request_stop(kExitPowerCut, "GDB kill request");
}

gdb::Arch GdbServer::arch(size_t vcpu) {
  auto s = cached_sregs(vcpu);
  return s && (s->efer & kEferLma) ? gdb::Arch::kX86_64 : gdb::Arch::kI386;
}

Result<gdb::X86State> GdbServer::read_registers(size_t vcpu) {
  if (cache_[vcpu].state) return *cache_[vcpu].state;
  kvm::Vcpu& v = *(*parts_.vcpus)[vcpu];
  const kvm_regs r = QVM_TRY(v.regs());
  const kvm_sregs s = QVM_TRY(cached_sregs(vcpu));
  const kvm_fpu f = QVM_TRY(v.fpu());
  gdb::X86State x;
  const uint64_t gpr[16] = {r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp,
                            r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
  std::memcpy(x.gpr, gpr, sizeof gpr);
  x.rip = r.rip;
  x.rflags = r.rflags;
  const kvm_segment* segs[6] = {&s.cs, &s.ss, &s.ds, &s.es, &s.fs, &s.gs};
  for (int i = 0; i < 6; ++i) x.seg[i] = segs[i]->selector;
  x.fs_base = s.fs.base;
  x.gs_base = s.gs.base;
  x.cr0 = s.cr0;
  x.cr2 = s.cr2;
  x.cr3 = s.cr3;
  x.cr4 = s.cr4;
  x.cr8 = s.cr8;
  x.efer = s.efer;
  for (int i = 0; i < 8; ++i) std::memcpy(x.st[i], f.fpr[i], 10);
  x.fctrl = f.fcw;
  x.fstat = f.fsw;
  // FXSAVE keeps an abridged tag (1 bit per register: valid); GDB wants the x87 tag word (2
  // bits: 00 valid, 11 empty).
  x.ftag = 0;
  for (int i = 0; i < 8; ++i)
    if (!(f.ftwx & (1u << i))) x.ftag |= 3u << (2 * i);
  x.fop = f.last_opcode;
  x.fioff = static_cast<uint32_t>(f.last_ip);
  x.fiseg = static_cast<uint32_t>(f.last_ip >> 32);
  x.fooff = static_cast<uint32_t>(f.last_dp);
  x.foseg = static_cast<uint32_t>(f.last_dp >> 32);
  std::memcpy(x.xmm, f.xmm, sizeof x.xmm);
  x.mxcsr = f.mxcsr;
  cache_[vcpu].state = x;
  return x;
}

Status GdbServer::write_registers(size_t vcpu, const gdb::X86State& x) {
  cache_[vcpu] = Cache{};
  kvm::Vcpu& v = *(*parts_.vcpus)[vcpu];
  kvm_regs r = QVM_TRY(v.regs());
  __u64* gpr[16] = {&r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rbp, &r.rsp,
                    &r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15};
  for (int i = 0; i < 16; ++i) *gpr[i] = x.gpr[i];
  r.rip = x.rip;
  r.rflags = x.rflags;
  QVM_TRY(v.set_regs(r));
  // Segment selectors, control registers and EFER are shown, not written: loading a selector
  // needs its descriptor, and a debugger changing paging under a stopped guest rarely means it.
  kvm_fpu f = QVM_TRY(v.fpu());
  for (int i = 0; i < 8; ++i) std::memcpy(f.fpr[i], x.st[i], 10);
  f.fcw = static_cast<uint16_t>(x.fctrl);
  f.fsw = static_cast<uint16_t>(x.fstat);
  uint8_t ftwx = 0;
  for (int i = 0; i < 8; ++i)
    if (((x.ftag >> (2 * i)) & 3) != 3) ftwx |= static_cast<uint8_t>(1u << i);
  f.ftwx = ftwx;
  f.last_opcode = static_cast<uint16_t>(x.fop);
  std::memcpy(f.xmm, x.xmm, sizeof x.xmm);
  f.mxcsr = x.mxcsr;
  return v.set_fpu(f);
}

Result<gdb::IdtInfo> GdbServer::idt(size_t vcpu) {
  const kvm_sregs s = QVM_TRY(cached_sregs(vcpu));
  gdb::IdtInfo i;
  i.base = s.idt.base;
  i.limit = s.idt.limit;
  i.long_mode = (s.efer & kEferLma) != 0;
  i.protected_mode = (s.cr0 & kCr0Pe) != 0;
  return i;
}

std::optional<uint64_t> GdbServer::translate(size_t vcpu, uint64_t va) {
  if (physical_) return va;
  auto s = cached_sregs(vcpu);
  if (!s) return std::nullopt;
  arch::x86::PagingRegs pr{s->cr0, s->cr3, s->cr4, s->efer};
  const memory::GuestMemory& mem = *parts_.mem;
  return arch::x86::translate(pr, va,
                              [&mem](uint64_t gpa, unsigned bytes) -> std::optional<uint64_t> {
                                if (bytes == 8) {
                                  auto v = mem.read_obj<uint64_t>(gpa);
                                  return v ? std::optional<uint64_t>(*v) : std::nullopt;
                                }
                                auto v = mem.read_obj<uint32_t>(gpa);
                                return v ? std::optional<uint64_t>(*v) : std::nullopt;
                              });
}

// Page by page: each guest page may map anywhere, and an unmapped one ends the transfer.
size_t GdbServer::each_page(size_t vcpu, uint64_t addr, size_t len,
                            const std::function<bool(uint64_t gpa, size_t off, size_t n)>& fn) {
  size_t done = 0;
  while (done < len) {
    const uint64_t va = addr + done;
    const size_t chunk = std::min<uint64_t>(len - done, 4096 - (va & 4095));
    auto gpa = translate(vcpu, va);
    if (!gpa || !fn(*gpa, done, chunk)) break;
    done += chunk;
  }
  return done;
}

size_t GdbServer::read_memory(size_t vcpu, uint64_t addr, std::span<uint8_t> out) {
  return each_page(vcpu, addr, out.size(), [&](uint64_t gpa, size_t off, size_t n) {
    return parts_.mem->read(gpa, out.subspan(off, n)).ok();
  });
}

size_t GdbServer::write_memory(size_t vcpu, uint64_t addr, std::span<const uint8_t> in) {
  return each_page(vcpu, addr, in.size(), [&](uint64_t gpa, size_t off, size_t n) {
    return parts_.mem->write(gpa, in.subspan(off, n)).ok();
  });
}

Status GdbServer::set_debug(size_t vcpu, const gdb::DebugState& d) {
  // Unchanged between most steps and continues: one ioctl fewer per vCPU per resume.
  if (applied_[vcpu] && *applied_[vcpu] == d) return {};
  applied_[vcpu].reset();
  kvm_guest_debug g{};
  if (d.enabled) {
    g.control = KVM_GUESTDBG_ENABLE;
    if (d.single_step) {
      g.control |= KVM_GUESTDBG_SINGLESTEP;
      // No interrupt handler runs inside a step (KVM 5.16+), so `stepi` stays where it is.
      if (parts_.debug_caps & KVM_GUESTDBG_BLOCKIRQ) g.control |= KVM_GUESTDBG_BLOCKIRQ;
    }
    if (d.sw_breakpoints) g.control |= KVM_GUESTDBG_USE_SW_BP;
    if (d.inject_bp) g.control |= KVM_GUESTDBG_INJECT_BP;
    // DR7 (SDM vol. 3 §18.2.4): bits 9-10 as the CPU resets them, then per register a global
    // enable bit, R/W and LEN (1: 00, 2: 01, 8: 10, 4: 11).
    uint64_t dr7 = 0x600;
    bool any = false;
    for (int i = 0; i < 4; ++i) {
      const gdb::HwBreakpoint& h = d.hw[i];
      if (!h.enabled) continue;
      any = true;
      g.arch.debugreg[i] = h.addr;
      const uint64_t len = h.len == 2 ? 1 : h.len == 8 ? 2 : h.len == 4 ? 3 : 0;
      dr7 |= 2ull << (2 * i);
      dr7 |= static_cast<uint64_t>(h.rw) << (16 + 4 * i);
      dr7 |= len << (18 + 4 * i);
    }
    if (any) {
      g.control |= KVM_GUESTDBG_USE_HW_BP;
      g.arch.debugreg[7] = dr7;
    }
  }
  auto st = (*parts_.vcpus)[vcpu]->set_guest_debug(g);
  if (st) applied_[vcpu] = d;
  if (!st) {
    static RateLimit rl(1.0, 5.0);
    uint64_t supp = 0;
    if (rl.allow(std::chrono::steady_clock::now(), &supp))
      log_warn("GDB stub: vCPU %zu: %s (control 0x%x)", vcpu, st.error().message.c_str(),
               g.control);
  }
  return st;
}

std::vector<std::string> GdbServer::status() const {
  const gdb::StubStats& s = stub_->stats();
  return {strprintf(
      "%s, %s; %llu sessions, %llu refused, %llu packets (%llu bad), %llu stops, "
      "%llu steps",
      where_.c_str(),
      client_ ? (stub_->running() ? "client attached, VM running" : "client attached, VM stopped")
              : "no client",
      static_cast<unsigned long long>(sessions_), static_cast<unsigned long long>(refused_),
      static_cast<unsigned long long>(s.packets), static_cast<unsigned long long>(s.bad_packets),
      static_cast<unsigned long long>(s.stops), static_cast<unsigned long long>(s.steps))};
}

}  // namespace qvm::machine

namespace qvm::machine {

Status MachineImpl::build_gdb() {
  auto text = cfg_.var("gdb");
  if (!text || text->empty()) return {};
  const config::GdbEndpoint ep = QVM_TRY(config::parse_gdb_endpoint(*text));
  const int caps = kvm_->check_extension(KVM_CAP_SET_GUEST_DEBUG2);
  GdbServer::Parts parts{&vcpus_,
                         gate_.get(),
                         &mem_,
                         &*loop_,
                         [this](int code, const std::string& why) { request_stop(code, why); },
                         caps > 0 ? static_cast<uint32_t>(caps) : 0u};
  gdb_ = QVM_TRY(GdbServer::create(ep, std::move(parts)));
  GdbServer* g = gdb_.get();
  describe("gdb         " + g->where(), [g] { return g->status(); });
  return {};
}

}  // namespace qvm::machine
