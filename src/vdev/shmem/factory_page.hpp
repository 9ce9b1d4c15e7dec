// The shmem vdev's factory page (spec §11.3, `struct guest_shm_factory`): the registers a guest
// driver uses to create, attach to and find named regions. A model with no host side of its own:
// requests go to a FactoryHost (the device, or a fake in unit tests).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "shm/region.hpp"

namespace qvm::vdev::shmem {

// `allow` / `deny` shell patterns (spec §6.5), in configuration order. The last rule that
// matches a name decides; when none does, naming only `allow` rules makes the default deny and
// otherwise the default is allow ("specifying one kind makes the opposite the default").
struct NameRule {
  bool allow = true;
  std::string pattern;
};
class NamePolicy {
 public:
  NamePolicy() = default;
  explicit NamePolicy(std::vector<NameRule> rules) : rules_(std::move(rules)) {}
  bool permits(std::string_view name) const;

 private:
  std::vector<NameRule> rules_;
};

class FactoryHost {
 public:
  virtual ~FactoryHost() = default;
  struct Attached {
    uint64_t control_gpa = 0;  // the region's control page in this guest
    uint32_t pages = 0;        // the region's actual size (its creator chose it)
  };
  // `create`: the `size` write (create-or-attach); else `find` (attach if it exists). Errors
  // carry the errno shm::gss_from maps to a status.
  virtual Result<Attached> attach(std::string_view name, uint32_t pages, bool create) = 0;
};

// A control page access (spec §11.4: status 0x0 RO, idx 0x4 RO, notify 0x8 WO, detach 0xc WO),
// decoded byte by byte so any width and offset means the same thing.
struct ControlWrite {
  bool notify = false;
  uint32_t notify_mask = 0;  // the bytes of `notify` the access wrote (others 0)
  bool detach = false;
};
ControlWrite decode_control_write(uint64_t offset, std::span<const uint8_t> data);
// Fills a read; `status` is called (reading clears the pending bits) only if the access covers
// the status register.
template <typename StatusFn>
void control_read(uint64_t offset, std::span<uint8_t> data, uint32_t idx, StatusFn status) {
  uint32_t regs[4] = {0, idx, 0, 0};
  if (offset < 4) regs[0] = status();
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    data[i] = static_cast<uint8_t>(at < sizeof regs ? regs[at / 4] >> (8 * (at % 4)) : 0u);
  }
}

class FactoryPage {
 public:
  static constexpr uint64_t kSize = 4096;
  static constexpr uint64_t kSignature = 0x4d534732474d5651;  // "QVMG2GSM"
  static constexpr uint64_t kInvalidAddress = ~0ull;          // `shmem` after a failed request
  enum Reg : uint64_t {
    kRegSignature = 0x00,
    kRegShmem = 0x08,
    kRegVector = 0x10,
    kRegStatus = 0x14,
    kRegSize = 0x18,
    kRegName = 0x1c,
    kRegFind = 0x3c,
    kRegEnd = 0x40,
  };

  FactoryPage(FactoryHost& host, uint32_t vector, NamePolicy policy)
      : host_(host), vector_(vector), policy_(std::move(policy)) {}

  // Any size and offset; unknown bytes read as 0, writes to read-only bytes are ignored.
  void read(uint64_t offset, std::span<uint8_t> data) const;
  void write(uint64_t offset, std::span<const uint8_t> data);

  shm::Gss status() const { return static_cast<shm::Gss>(status_); }
  uint64_t requests() const { return requests_; }
  uint64_t failures() const { return failures_; }
  // The message of the last failed request ("" after a success), for the status report.
  const std::string& last_error() const { return last_error_; }

 private:
  void request(uint32_t pages, bool create);

  FactoryHost& host_;
  uint32_t vector_;
  NamePolicy policy_;
  uint64_t shmem_ = kInvalidAddress;
  uint32_t status_ = 0, size_ = 0;
  char name_[shm::kNameMax] = {};
  uint64_t requests_ = 0, failures_ = 0;
  std::string last_error_;
};

}  // namespace qvm::vdev::shmem
