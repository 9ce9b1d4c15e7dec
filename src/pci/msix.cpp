#include "pci/msix.hpp"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "base/log.hpp"

namespace qvm::pci {
namespace {

using ull = unsigned long long;

// Message Control bits (PCI 3.0 §6.8.2.3).
constexpr uint16_t kCtlFunctionMask = 1u << 14;
constexpr uint16_t kCtlEnable = 1u << 15;
constexpr uint32_t kVectorMasked = 1;  // Vector Control bit 0 (§6.8.2.9)

void log_guest(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_guest(const char* fmt, ...) {
  static RateLimit limit(5.0, 20.0);
  uint64_t suppressed = 0;
  if (!limit.allow(std::chrono::steady_clock::now(), &suppressed)) return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  log_warn("msix: %s (%llu suppressed)", buf, static_cast<ull>(suppressed));
}

uint32_t pba_bytes(uint16_t vectors) {
  return ((static_cast<uint32_t>(vectors) + 63) / 64) * 8;  // whole QWORDs (§6.8.2.10)
}

}  // namespace

Msix::Layout Msix::packed(uint16_t vectors, uint8_t bir, uint32_t base) {
  vectors = std::clamp<uint16_t>(vectors, 1, kMaxVectors);
  Layout l;
  l.vectors = vectors;
  l.bir = bir;
  l.table_offset = base & ~7u;
  l.pba_offset = l.table_offset + vectors * kEntrySize;  // 16-byte entries keep 8-alignment
  return l;
}

uint32_t Msix::packed_size(uint16_t vectors) {
  vectors = std::clamp<uint16_t>(vectors, 1, kMaxVectors);
  return vectors * kEntrySize + pba_bytes(vectors);
}

Msix::Msix(ConfigSpace& cfg, Layout layout, DeliverFn deliver)
    : cfg_(cfg), layout_(layout), deliver_(std::move(deliver)) {
  layout_.vectors = std::clamp<uint16_t>(layout_.vectors, 1, kMaxVectors);
  layout_.bir &= 7;
  layout_.table_offset &= ~7u;
  layout_.pba_offset &= ~7u;
  entries_.resize(layout_.vectors);
  const auto n1 = static_cast<uint16_t>(layout_.vectors - 1);
  const uint32_t table = layout_.table_offset | layout_.bir;
  const uint32_t pba = layout_.pba_offset | layout_.bir;
  const uint8_t body[10] = {static_cast<uint8_t>(n1),          static_cast<uint8_t>(n1 >> 8),
                            static_cast<uint8_t>(table),       static_cast<uint8_t>(table >> 8),
                            static_cast<uint8_t>(table >> 16), static_cast<uint8_t>(table >> 24),
                            static_cast<uint8_t>(pba),         static_cast<uint8_t>(pba >> 8),
                            static_cast<uint8_t>(pba >> 16),   static_cast<uint8_t>(pba >> 24)};
  const uint8_t writable[10] = {0, static_cast<uint8_t>((kCtlFunctionMask | kCtlEnable) >> 8)};
  cap_ = cfg_.add_capability(kCapId, body, writable);
}

void Msix::config_written(uint16_t offset, unsigned size) {
  const uint16_t ctl = static_cast<uint16_t>(cap_ + 2);
  if (offset + size <= ctl || offset >= ctl + 2) return;
  const uint16_t v = cfg_.raw16(ctl);
  std::vector<Message> msgs;
  {
    std::lock_guard lk(mu_);
    enabled_ = (v & kCtlEnable) != 0;
    function_masked_ = (v & kCtlFunctionMask) != 0;
    collect_pending_locked(msgs);
  }
  deliver(msgs);
  if (on_change_) on_change_();
}

std::optional<Msix::Route> Msix::route(uint16_t vector) const {
  std::lock_guard lk(mu_);
  if (vector >= entries_.size() || !deliverable_locked(entries_[vector])) return std::nullopt;
  const Entry& e = entries_[vector];
  return Route{(uint64_t{e.addr_hi} << 32) | e.addr_lo, e.data};
}

bool Msix::enabled() const {
  std::lock_guard lk(mu_);
  return enabled_;
}

bool Msix::function_masked() const {
  std::lock_guard lk(mu_);
  return function_masked_;
}

bool Msix::vector_masked(uint16_t vector) const {
  std::lock_guard lk(mu_);
  return vector < entries_.size() && (entries_[vector].control & kVectorMasked) != 0;
}

bool Msix::pending(uint16_t vector) const {
  std::lock_guard lk(mu_);
  return vector < entries_.size() && entries_[vector].pending;
}

bool Msix::deliverable_locked(const Entry& e) const {
  return enabled_ && !function_masked_ && (e.control & kVectorMasked) == 0;
}

void Msix::collect_pending_locked(std::vector<Message>& out) {
  for (auto& e : entries_)
    if (e.pending && deliverable_locked(e)) {
      e.pending = false;
      out.push_back({(uint64_t{e.addr_hi} << 32) | e.addr_lo, e.data});
    }
}

void Msix::deliver(const std::vector<Message>& msgs) const {
  if (!deliver_) return;
  for (const auto& m : msgs) deliver_(m.addr, m.data);
}

void Msix::notify(uint16_t vector) {
  Message m{};
  {
    std::lock_guard lk(mu_);
    if (vector >= entries_.size()) {
      log_guest("vector %u out of range (table size %zu), ignored", vector, entries_.size());
      return;
    }
    Entry& e = entries_[vector];
    if (!deliverable_locked(e)) {
      e.pending = true;
      return;
    }
    m = {(uint64_t{e.addr_hi} << 32) | e.addr_lo, e.data};
  }
  if (deliver_) deliver_(m.addr, m.data);
}

void Msix::reset() {
  {
    std::lock_guard lk(mu_);
    for (auto& e : entries_) e = Entry{};
    enabled_ = false;
    function_masked_ = false;
  }
  const auto ctl = static_cast<uint16_t>(cap_ + 2);
  const uint16_t v = cfg_.raw16(ctl) & static_cast<uint16_t>(~(kCtlEnable | kCtlFunctionMask));
  const uint8_t bytes[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
  cfg_.set_raw(ctl, bytes);
}

uint32_t Msix::read32_locked(uint64_t offset) const {
  const uint64_t table_end = layout_.table_offset + uint64_t{kEntrySize} * entries_.size();
  if (offset >= layout_.table_offset && offset < table_end) {
    const uint64_t rel = offset - layout_.table_offset;
    const Entry& e = entries_[rel / kEntrySize];
    switch (rel % kEntrySize) {
      case 0:
        return e.addr_lo;
      case 4:
        return e.addr_hi;
      case 8:
        return e.data;
      default:
        return e.control;
    }
  }
  const uint64_t pba_end = layout_.pba_offset + uint64_t{pba_bytes(vectors())};
  if (offset >= layout_.pba_offset && offset < pba_end) {
    const uint64_t first = (offset - layout_.pba_offset) * 8;  // vector of bit 0
    uint32_t v = 0;
    for (uint64_t b = 0; b < 32 && first + b < entries_.size(); ++b)
      if (entries_[first + b].pending) v |= 1u << b;
    return v;
  }
  return 0;
}

void Msix::write32_locked(uint64_t offset, uint32_t value, std::vector<Message>& out) {
  const uint64_t table_end = layout_.table_offset + uint64_t{kEntrySize} * entries_.size();
  if (offset < layout_.table_offset || offset >= table_end) {
    log_guest("write 0x%x at 0x%llx outside the table ignored (PBA is read-only)", value,
              static_cast<ull>(offset));
    return;
  }
  const uint64_t rel = offset - layout_.table_offset;
  Entry& e = entries_[rel / kEntrySize];
  switch (rel % kEntrySize) {
    case 0:
      e.addr_lo = value & ~3u;  // DWORD aligned (§6.8.2.6)
      break;
    case 4:
      e.addr_hi = value;
      break;
    case 8:
      e.data = value;
      break;
    default:
      e.control = value & kVectorMasked;  // other bits reserved
      if (e.pending && deliverable_locked(e)) {
        e.pending = false;
        out.push_back({(uint64_t{e.addr_hi} << 32) | e.addr_lo, e.data});
      }
      break;
  }
}

void Msix::read(uint64_t offset, std::span<uint8_t> data) {
  const size_t n = data.size();
  if ((n != 4 && n != 8) || (offset % n) != 0) {
    log_guest("%zu-byte read at 0x%llx (DWORD/QWORD aligned only)", n, static_cast<ull>(offset));
    bus::store_le(data, 0);
    return;
  }
  std::lock_guard lk(mu_);
  uint64_t v = read32_locked(offset);
  if (n == 8) v |= uint64_t{read32_locked(offset + 4)} << 32;
  bus::store_le(data, v);
}

void Msix::write(uint64_t offset, std::span<const uint8_t> data) {
  const size_t n = data.size();
  if ((n != 4 && n != 8) || (offset % n) != 0) {
    log_guest("%zu-byte write at 0x%llx dropped (DWORD/QWORD aligned only)", n,
              static_cast<ull>(offset));
    return;
  }
  const uint64_t v = bus::load_le(data);
  std::vector<Message> msgs;
  {
    std::lock_guard lk(mu_);
    write32_locked(offset, static_cast<uint32_t>(v), msgs);
    if (n == 8) write32_locked(offset + 4, static_cast<uint32_t>(v >> 32), msgs);
  }
  deliver(msgs);
  if (on_change_) on_change_();
}

}  // namespace qvm::pci
