// MSI-X (PCI Local Bus Specification 3.0 §6.8.2): the capability in a function's configuration
// space and the MSI-X table + Pending Bit Array (PBA) as a bus::BusDevice for the BAR that holds
// them.
//
// Capability (§6.8.2.1-§6.8.2.5): Message Control (table size N-1 read-only; Function Mask bit 14
// and MSI-X Enable bit 15 writable), Table Offset/BIR, PBA Offset/BIR (read-only).
// Table entry (§6.8.2.6-§6.8.2.9): Message Address (bits 1:0 read as 0), Message Upper Address,
// Message Data, Vector Control (bit 0 = Mask, set at reset; other bits read 0). Aligned 32-bit
// and 64-bit accesses only (§6.8.2: "aligned full DWORD or aligned full QWORD"); any other
// access reads 0 and is dropped on write. The PBA (§6.8.2.10) is read-only.
//
// notify(vector): delivered through the injected DeliverFn (the machine's KVM_SIGNAL_MSI) if
// MSI-X is enabled, the function not masked and the vector not masked; otherwise the vector's
// pending bit is set, and the message is sent (pending bit cleared) as soon as all three allow
// it (§6.8.2.9). Out-of-range vectors are ignored (logged, rate-limited).
//
// Not implemented: per-vector masking/pending capability bits of PCIe ECNs, MSI (§6.8.1).
//
// Threading: read/write/notify/config_written may come from any thread; an internal lock guards
// the table. DeliverFn is called without that lock held. config_written() reads the
// ConfigSpace: call it where the config space is otherwise protected (PciRoot's lock).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "bus/bus.hpp"
#include "pci/config_space.hpp"

namespace qvm::pci {

class Msix final : public bus::BusDevice {
 public:
  using DeliverFn = std::function<void(uint64_t addr, uint32_t data)>;
  static constexpr uint16_t kMaxVectors = 2048;  // table size field is 11 bits
  static constexpr uint8_t kCapId = 0x11;
  static constexpr uint32_t kEntrySize = 16;

  struct Layout {
    uint16_t vectors = 1;       // 1..kMaxVectors (clamped)
    uint8_t bir = 0;            // BAR holding table and PBA
    uint32_t table_offset = 0;  // within the BAR, 8-aligned
    uint32_t pba_offset = 0;    // within the BAR, 8-aligned, not overlapping the table
  };
  // A layout with the table at `base` and the PBA after it (8-aligned).
  static Layout packed(uint16_t vectors, uint8_t bir, uint32_t base = 0);
  // Bytes from table_offset to the end of the PBA for packed().
  static uint32_t packed_size(uint16_t vectors);

  // Adds the capability to `cfg`. BusDevice offsets are relative to the start of BAR
  // `layout.bir`; accesses outside the table and the PBA read 0 and are dropped.
  Msix(ConfigSpace& cfg, Layout layout, DeliverFn deliver);

  uint16_t cap_offset() const { return cap_; }
  uint16_t vectors() const { return static_cast<uint16_t>(entries_.size()); }
  const Layout& layout() const { return layout_; }

  // The function's config space was written at [offset, offset+size): picks up Enable and
  // Function Mask, and sends pending messages that became deliverable.
  void config_written(uint16_t offset, unsigned size);
  bool enabled() const;
  bool function_masked() const;
  bool vector_masked(uint16_t vector) const;
  bool pending(uint16_t vector) const;

  // Signals `vector` (see above).
  void notify(uint16_t vector);
  // The message `vector` would send now: set only while it is deliverable (enabled, function and
  // vector unmasked). For a device whose interrupt bypasses notify() (an irqfd on a KVM MSI route
  // it keeps in step through on_change).
  struct Route {
    uint64_t addr;
    uint32_t data;
    bool operator==(const Route&) const = default;
  };
  std::optional<Route> route(uint16_t vector) const;
  // Called (without the table lock) after every table write and every write of the capability's
  // Message Control.
  void set_on_change(std::function<void()> fn) { on_change_ = std::move(fn); }
  // Function reset: every vector masked with address/data 0, no pending bits, Enable and
  // Function Mask clear in `cfg`. Call where the config space is protected.
  void reset();

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  struct Entry {
    uint32_t addr_lo = 0;
    uint32_t addr_hi = 0;
    uint32_t data = 0;
    uint32_t control = 1;  // masked
    bool pending = false;
  };
  struct Message {
    uint64_t addr;
    uint32_t data;
  };
  bool deliverable_locked(const Entry& e) const;
  void collect_pending_locked(std::vector<Message>& out);
  uint32_t read32_locked(uint64_t offset) const;
  void write32_locked(uint64_t offset, uint32_t value, std::vector<Message>& out);
  void deliver(const std::vector<Message>& msgs) const;

  ConfigSpace& cfg_;
  Layout layout_;
  DeliverFn deliver_;
  std::function<void()> on_change_;
  uint16_t cap_ = 0;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
  bool enabled_ = false;
  bool function_masked_ = false;
};

}  // namespace qvm::pci
