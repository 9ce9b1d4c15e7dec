#include "gdb/stub.hpp"

#include <algorithm>

#include "base/log.hpp"

namespace qvm::gdb {
namespace {

constexpr int kSigInt = 2;  // Ctrl-C; every other stop is a SIGTRAP (5, Stop::signal)

std::string hex2(unsigned v) {
  static const char* kHex = "0123456789abcdef";
  return {kHex[(v >> 4) & 15], kHex[v & 15]};
}

// "addr,len" with both in hex.
bool addr_len(std::string_view s, uint64_t& addr, uint64_t& len) {
  auto comma = s.find(',');
  if (comma == std::string_view::npos) return false;
  auto a = parse_hex(s.substr(0, comma));
  auto l = parse_hex(s.substr(comma + 1));
  if (!a || !l) return false;
  addr = *a;
  len = *l;
  return true;
}

}  // namespace

Stub::Stub(Target& t, std::function<void(std::string_view)> send, std::function<void()> close)
    : t_(t), send_(std::move(send)), close_(std::move(close)) {}

void Stub::attach() {
  t_.stop_all();
  attached_ = true;
  running_ = false;
  no_ack_ = false;
  arch_fixed_ = false;
  physical_ = false;
  t_.set_physical(false);
  g_vcpu_ = c_vcpu_ = 0;
  last_stop_ = Stop{};
  dec_ = PacketDecoder{};
  for (size_t i = 0; i < t_.vcpu_count(); ++i) {
    DebugState d;
    d.enabled = true;
    (void)t_.set_debug(i, d);
  }
}

void Stub::disconnected() {
  if (!attached_) return;
  if (!running_) t_.stop_all();
  detach();
}

void Stub::vm_ended(int exit_code) {
  if (!attached_) return;
  remove_all_breakpoints();
  if (running_) reply("W" + hex2(static_cast<unsigned>(exit_code) & 0xff));
  attached_ = false;
  running_ = false;
}

void Stub::detach() {
  if (running_) t_.stop_all();
  remove_fault_catchers();
  remove_all_breakpoints();
  for (auto& h : hw_) h = HwBreakpoint{};
  for (size_t i = 0; i < t_.vcpu_count(); ++i) (void)t_.set_debug(i, DebugState{});
  attached_ = false;
  running_ = false;
  stepping_.reset();
  std::vector<size_t> all(t_.vcpu_count());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  t_.resume(all);
}

void Stub::feed(std::span<const uint8_t> bytes) {
  std::vector<Input> in;
  dec_.feed(bytes, in);
  for (Input& i : in) {
    if (!attached_) return;
    switch (i.kind) {
      case Input::Kind::kInterrupt:
        if (running_) {
          t_.stop_all();
          remove_fault_catchers();
          Stop s;
          s.vcpu = stepping_.value_or(g_vcpu_);
          s.signal = kSigInt;
          stepping_.reset();
          report_stop(s);
        }
        break;
      case Input::Kind::kAck:
        resends_ = 0;
        break;
      case Input::Kind::kNack:
        // Resend the last reply a few times; a client that keeps refusing is not helped by more.
        if (!last_sent_.empty() && ++resends_ <= 3) send_(last_sent_);
        break;
      case Input::Kind::kBadPacket:
        ++stats_.bad_packets;
        if (!no_ack_) send_("-");
        break;
      case Input::Kind::kPacket:
        ++stats_.packets;
        if (!no_ack_) send_("+");
        handle(i.payload);
        break;
    }
  }
}

void Stub::reply(std::string_view payload) {
  last_sent_ = frame(payload);
  resends_ = 0;
  send_(last_sent_);
}

std::string Stub::stop_reply() const {
  const Stop& s = last_stop_;
  std::string r =
      "T" + hex2(static_cast<unsigned>(s.signal)) + "thread:" + hex_u64(s.vcpu + 1) + ";";
  switch (s.kind) {
    case StopKind::kSwBreak:
      r += "swbreak:;";
      break;
    case StopKind::kHwBreak:
      r += "hwbreak:;";
      break;
    case StopKind::kWatch:
      r += std::string(s.watch_rw == 2   ? "watch"
                       : s.watch_rw == 3 ? "rwatch"
                                         : "awatch") +
           ":" + hex_u64(s.watch_addr) + ";";
      break;
    default:
      break;
  }
  return r;
}

void Stub::report_stop(const Stop& s) {
  running_ = false;
  ++stats_.stops;
  last_stop_ = s;
  g_vcpu_ = s.vcpu;
  reply(stop_reply());
}

void Stub::on_trap(const DebugTrap& trap) {
  if (!attached_ || !running_ || trap.vcpu >= t_.vcpu_count()) return;
  Stop s;
  s.vcpu = trap.vcpu;
  const bool was_stepping = stepping_.has_value();
  stepping_.reset();
  if (trap.exception == 3) {
    if (sw_.count(trap.pc)) {
      s.kind = StopKind::kSwBreak;
    } else {
      // The guest's own int3: give it back to the guest on the next resume; GDB is told of a
      // SIGTRAP, as a native debugger would see it.
      inject_bp_ = true;
    }
  } else if (trap.exception == 1) {
    const uint64_t hit = trap.dr6 & 0xf;
    for (int i = 0; i < 4; ++i) {
      if (!(hit & (1u << i)) || !hw_[i].enabled) continue;
      if (hw_kind_[i] == kCatcher) {
        s.kind = StopKind::kStep;  // the stepped instruction faulted: stop in its handler
        clear_step_flag_in_frame(trap.vcpu, catcher_vector_[i]);
      } else if (hw_kind_[i] == kSwInDr) {
        s.kind = StopKind::kSwBreak;
      } else if (hw_kind_[i] == 1) {
        s.kind = StopKind::kHwBreak;
      } else {
        s.kind = StopKind::kWatch;
        s.watch_addr = hw_[i].addr;
        s.watch_rw = hw_kind_[i];
      }
      break;
    }
    if (s.kind == StopKind::kSignal && (was_stepping || (trap.dr6 & (1u << 14))))
      s.kind = StopKind::kStep;
  }
  remove_fault_catchers();
  report_stop(s);
}

std::optional<size_t> Stub::thread_index(std::string_view id, bool allow_any) const {
  if (id == "-1" || id == "0") {
    if (!allow_any) return std::nullopt;
    return 0;
  }
  auto v = parse_hex(id);
  if (!v || *v == 0 || *v > t_.vcpu_count()) return std::nullopt;
  return static_cast<size_t>(*v - 1);
}

void Stub::handle(std::string_view p) {
  if (p.empty()) return reply("");
  if (running_) {
    // All-stop: GDB waits for the stop reply and sends nothing but the interrupt byte meanwhile.
    return;
  }
  const char c = p[0];
  const std::string_view args = p.substr(1);
  switch (c) {
    case '?':
      return reply(stop_reply());
    case 'q':
    case 'Q':
      return reply(query(p));
    case 'H':
      return reply(set_thread(args));
    case 'T':
      return reply(thread_index(args, false) ? "OK" : "E01");
    case 'g':
      return reply(regs_all());
    case 'G':
      return reply(regs_write(args));
    case 'p':
      return reply(reg_read(args));
    case 'P':
      return reply(reg_write(args));
    case 'm':
      return reply(read_memory(args));
    case 'M':
      return reply(write_memory(args, false));
    case 'X':
      return reply(write_memory(args, true));
    case 'Z':
      return reply(breakpoint(args, true));
    case 'z':
      return reply(breakpoint(args, false));
    case 'c':
    case 'C':
      if (c == 'c' && !args.empty()) {
        // `c ADDR`: resume at ADDR.
        auto a = parse_hex(args);
        auto regs = a ? t_.read_registers(c_vcpu_) : Result<X86State>(Error{"bad address"});
        if (!a || !regs) return reply("E01");
        regs->rip = *a;
        if (!t_.write_registers(c_vcpu_, *regs)) return reply("E01");
      }
      return resume(std::nullopt);
    case 's':
    case 'S':
      if (!step_allowed(c_vcpu_)) return reply("E01");
      return resume(c_vcpu_);
    case 'v':
      if (p == "vCont?") return reply("vCont;c;C;s;S");
      if (p.substr(0, 6) == "vCont;") {
        if (!vcont(p.substr(6))) reply("E01");
        return;
      }
      if (p.substr(0, 5) == "vKill") {
        reply("OK");
        return t_.kill();
      }
      return reply("");
    case 'D':
      reply("OK");
      detach();
      close_();
      return;
    case 'k':
      detach();
      t_.kill();
      close_();
      return;
    default:
      return reply("");
  }
}

std::string Stub::query(std::string_view p) {
  if (p.substr(0, 10) == "qSupported")
    return "PacketSize=" + hex_u64(kMaxPacket) +
           ";qXfer:features:read+;swbreak+;hwbreak+;vContSupported+;QStartNoAckMode+";
  if (p == "QStartNoAckMode") {
    no_ack_ = true;
    return "OK";
  }
  if (p == "qAttached") return "1";  // GDB attached to a running VM: `quit` detaches
  if (p == "qC") return "QC" + hex_u64(g_vcpu_ + 1);
  if (p == "qfThreadInfo") {
    std::string r = "m";
    for (size_t i = 0; i < t_.vcpu_count(); ++i) r += (i ? "," : "") + hex_u64(i + 1);
    return r;
  }
  if (p == "qsThreadInfo") return "l";
  if (p.substr(0, 17) == "qThreadExtraInfo,") {
    auto i = thread_index(p.substr(17), false);
    if (!i) return "E01";
    return to_hex("vCPU " + std::to_string(*i));
  }
  constexpr std::string_view kXfer = "qXfer:features:read:target.xml:";
  if (p.substr(0, kXfer.size()) == kXfer) {
    uint64_t off = 0, len = 0;
    if (!addr_len(p.substr(kXfer.size()), off, len)) return "E01";
    if (!arch_fixed_) {
      // The register layout is fixed for the connection when GDB reads it.
      arch_ = t_.arch(g_vcpu_);
      arch_fixed_ = true;
    }
    const std::string& x = target_xml(arch_);
    if (off >= x.size()) return "l";
    len = std::min<uint64_t>({len, x.size() - off, kMaxPacket - 16});
    return (off + len >= x.size() ? "l" : "m") + x.substr(off, len);
  }
  if (p.substr(0, 6) == "qXfer:") return "";
  if (p.substr(0, 6) == "qRcmd,") return monitor(p.substr(6));
  return "";
}

// `monitor CMD` (qRcmd, hex-encoded): output goes back as hex text, then OK.
std::string Stub::monitor(std::string_view hex) {
  auto raw = parse_hex_bytes(hex);
  if (!raw) return "E01";
  const std::string cmd(raw->begin(), raw->end());
  std::string text;
  if (cmd == "phys on" || cmd == "phys off") {
    physical_ = cmd == "phys on";
    t_.set_physical(physical_);
    text = physical_ ? "memory accesses use guest-physical addresses\n"
                     : "memory accesses use guest-virtual addresses (the vCPU's page tables)\n";
  } else if (cmd == "phys") {
    text = physical_ ? "physical\n" : "virtual\n";
  } else {
    text =
        "qvm monitor commands:\n"
        "  phys on|off   guest-physical / guest-virtual addresses for memory accesses\n"
        "  phys          which one is in use\n";
  }
  return to_hex(text);
}

std::string Stub::set_thread(std::string_view args) {
  if (args.empty()) return "E01";
  auto i = thread_index(args.substr(1), true);
  if (!i) return "E01";
  if (args[0] == 'g')
    g_vcpu_ = *i;
  else if (args[0] == 'c')
    c_vcpu_ = *i;
  else
    return "E01";
  return "OK";
}

std::string Stub::regs_all() {
  auto s = t_.read_registers(g_vcpu_);
  if (!s) return "E01";
  return encode_all(*s, arch_);
}

std::string Stub::regs_write(std::string_view hex) {
  auto s = t_.read_registers(g_vcpu_);
  if (!s || !decode_all(hex, *s, arch_)) return "E01";
  return t_.write_registers(g_vcpu_, *s) ? "OK" : "E01";
}

std::string Stub::reg_read(std::string_view n) {
  auto i = parse_hex(n);
  auto s = t_.read_registers(g_vcpu_);
  if (!i || !s) return "E01";
  auto v = encode_one(*s, arch_, static_cast<size_t>(*i));
  return v ? *v : "E01";
}

std::string Stub::reg_write(std::string_view args) {
  auto eq = args.find('=');
  if (eq == std::string_view::npos) return "E01";
  auto i = parse_hex(args.substr(0, eq));
  auto s = t_.read_registers(g_vcpu_);
  if (!i || !s || !decode_one(args.substr(eq + 1), *s, arch_, static_cast<size_t>(*i)))
    return "E01";
  return t_.write_registers(g_vcpu_, *s) ? "OK" : "E01";
}

std::string Stub::read_memory(std::string_view args) {
  uint64_t addr = 0, len = 0;
  if (!addr_len(args, addr, len)) return "E01";
  len = std::min<uint64_t>(len, kMaxMemory);
  std::vector<uint8_t> buf(static_cast<size_t>(len));
  size_t n = t_.read_memory(g_vcpu_, addr, buf);
  if (n == 0 && len != 0) return "E14";  // EFAULT
  buf.resize(n);
  shadow(addr, buf);  // GDB sees the guest's bytes, not our int3s
  return to_hex(buf);
}

std::string Stub::write_memory(std::string_view args, bool binary) {
  auto colon = args.find(':');
  if (colon == std::string_view::npos) return "E01";
  uint64_t addr = 0, len = 0;
  if (!addr_len(args.substr(0, colon), addr, len)) return "E01";
  auto data = binary ? unescape(args.substr(colon + 1)) : parse_hex_bytes(args.substr(colon + 1));
  if (!data || data->size() != len) return "E01";
  // A write over one of our int3s changes the byte under it; the int3 stays.
  for (size_t i = 0; i < data->size(); ++i) {
    if (auto it = sw_.find(addr + i); it != sw_.end()) {
      it->second = (*data)[i];
      (*data)[i] = 0xcc;
    }
  }
  return t_.write_memory(g_vcpu_, addr, *data) == data->size() ? "OK" : "E14";
}

std::string Stub::breakpoint(std::string_view args, bool insert) {
  // type,addr,kind
  if (args.size() < 2 || args[1] != ',') return "E01";
  const char type = args[0];
  uint64_t addr = 0, kind = 0;
  if (!addr_len(args.substr(2), addr, kind)) {
    // kind may be followed by ";cond_list": not offered in qSupported, so not expected.
    return "E01";
  }
  if (type == '0') {
    if (insert) return insert_sw(addr) ? "OK" : "E14";
    return remove_sw(addr) ? "OK" : "E01";
  }
  if (type < '1' || type > '4') return "";
  const uint8_t k = static_cast<uint8_t>(type - '0');
  const uint8_t rw = k == 1 ? 0 : k == 2 ? 1 : 3;
  uint8_t len = k == 1 ? 1 : static_cast<uint8_t>(kind);
  if (k != 1 && len != 1 && len != 2 && len != 4 && len != 8) return "E01";
  if (k != 1 && (addr & (len - 1u)) != 0) return "E01";  // DR7 lengths need aligned addresses
  if (insert) {
    for (int i = 0; i < 4; ++i)
      if (hw_[i].enabled && hw_[i].addr == addr && hw_kind_[i] == k) return "OK";
    const int r = free_debug_register();
    if (r < 0) return "E28";  // ENOSPC: four debug registers
    hw_[r] = HwBreakpoint{true, addr, rw, len};
    hw_kind_[r] = k;
    return "OK";
  }
  for (int i = 0; i < 4; ++i) {
    if (hw_[i].enabled && hw_[i].addr == addr && hw_kind_[i] == k) {
      hw_[i] = HwBreakpoint{};
      hw_kind_[i] = 0;
      return "OK";
    }
  }
  return "E01";
}

bool Stub::vcont(std::string_view args) {
  // Actions separated by ';', each `c`, `C sig`, `s`, `S sig`, optionally `:thread`.
  std::optional<size_t> step;
  bool any = false;
  while (!args.empty()) {
    auto semi = args.find(';');
    std::string_view a = args.substr(0, semi);
    args = semi == std::string_view::npos ? std::string_view{} : args.substr(semi + 1);
    if (a.empty()) return false;
    std::optional<size_t> thread;
    if (auto colon = a.find(':'); colon != std::string_view::npos) {
      thread = thread_index(a.substr(colon + 1), true);
      if (!thread) return false;
      a = a.substr(0, colon);
    }
    const char act = a[0];
    if ((act == 'C' || act == 'S') && (a.size() != 3 || !parse_hex(a.substr(1)))) return false;
    if ((act == 'c' || act == 's') && a.size() != 1) return false;
    if (act == 's' || act == 'S') {
      if (!step) step = thread.value_or(c_vcpu_);
    } else if (act != 'c' && act != 'C') {
      return false;
    }
    any = true;
  }
  if (!any) return false;
  if (step && !step_allowed(*step)) return false;
  resume(step);
  return true;
}

bool Stub::step_allowed(size_t vcpu) {
  if (t_.limits().user_mode_traps) return true;
  auto r = t_.read_registers(vcpu);
  if (r && (r->seg[0] & 3) == 3) {
    // The trap would go to the guest's #DB handler (a guest that does not expect it crashes).
    warn_limit("single steps in guest user mode (ring 3)");
    return false;
  }
  return true;
}

void Stub::warn_limit(const char* what) {
  static RateLimit rl(1.0, 5.0);
  uint64_t supp = 0;
  if (rl.allow(std::chrono::steady_clock::now(), &supp))
    log_warn("GDB stub: %s are not available on this host: %s", what, t_.limits().why.c_str());
}

void Stub::resume(std::optional<size_t> step_vcpu) {
  if (step_vcpu) {
    ++stats_.steps;
    plant_fault_catchers(*step_vcpu);
  }
  apply_debug(step_vcpu);
  inject_bp_ = false;
  stepping_ = step_vcpu;
  running_ = true;
  // A step runs only the stepped vCPU; the others stay parked (GDB's scheduler-locking "step").
  std::vector<size_t> run;
  if (step_vcpu) {
    run.push_back(*step_vcpu);
  } else {
    for (size_t i = 0; i < t_.vcpu_count(); ++i) run.push_back(i);
  }
  t_.resume(run);
}

}  // namespace qvm::gdb
