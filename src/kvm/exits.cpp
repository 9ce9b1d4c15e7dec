#include "kvm/exits.hpp"

#include <linux/kvm.h>

#include "base/log.hpp"

namespace qvm::kvm {

std::string describe(const VcpuExit& exit) {
  struct V {
    std::string operator()(const IoExit& e) const {
      return strprintf("io %s port 0x%x size %u count %u", e.write ? "out" : "in", e.port, e.size,
                       e.count);
    }
    std::string operator()(const MmioExit& e) const {
      return strprintf("mmio %s 0x%llx len %u", e.write ? "write" : "read",
                       static_cast<unsigned long long>(e.addr), e.len);
    }
    std::string operator()(const HltExit&) const { return "hlt"; }
    std::string operator()(const ShutdownExit&) const { return "shutdown (triple fault)"; }
    std::string operator()(const SystemEventExit& e) const {
      return strprintf("system event %u", e.type);
    }
    std::string operator()(const InterruptedExit&) const { return "interrupted"; }
    std::string operator()(const InternalErrorExit& e) const {
      std::string s = strprintf(
          "internal error, suberror %u (%s)", e.suberror,
          e.suberror == KVM_INTERNAL_ERROR_EMULATION ? "instruction emulation failed" : "other");
      for (auto d : e.data) s += strprintf(" 0x%llx", static_cast<unsigned long long>(d));
      return s;
    }
    std::string operator()(const FailEntryExit& e) const {
      return strprintf("entry failed, hardware reason 0x%llx",
                       static_cast<unsigned long long>(e.reason));
    }
    std::string operator()(const DebugExit& e) const {
      return strprintf("debug exception %u at 0x%llx", e.exception,
                       static_cast<unsigned long long>(e.pc));
    }
    std::string operator()(const MsrExit& e) const {
      return e.write ? strprintf("wrmsr 0x%x <- 0x%llx", e.index,
                                 static_cast<unsigned long long>(e.data))
                     : strprintf("rdmsr 0x%x", e.index);
    }
    std::string operator()(const UnknownExit& e) const {
      return strprintf("unknown exit reason %u", e.reason);
    }
  };
  return std::visit(V{}, exit);
}

}  // namespace qvm::kvm
