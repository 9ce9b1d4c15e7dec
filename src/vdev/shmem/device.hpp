// vdev shmem's device (spec §6.5, §11): the factory page, its attachments and the doorbell. An
// attachment holds one of the VM's sixteen windows (base + k * 4 GiB): its control page
// (trapped, emulated here) and right after it the region's data pages (a KVM memslot of the
// region file).
// One doorbell eventfd serves every attachment: it is the irqfd of the vdev's interrupt and the
// fd the other clients of each region ring (shm/client.hpp).
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"
#include "bus/bus.hpp"
#include "pci/msix.hpp"
#include "shm/client.hpp"
#include "shm/region.hpp"
#include "vdev/api/context.hpp"
#include "vdev/shmem/factory_page.hpp"

namespace qvm::vdev::shmem {

inline constexpr uint32_t kWindows = 16;
inline constexpr uint64_t kWindowStride = 1ull << 32;
// The largest region a guest may create itself (256 MiB); `create` declares bigger ones.
inline constexpr uint32_t kGuestCreateMaxPages = 65536;

class ShmemDevice;

// The VM's sixteen attachment windows, shared by all its shmem vdevs (window k at
// base + k * 4 GiB): each window's control page is registered once and dispatches to the vdev
// whose attachment holds the window.
class Windows : public std::enable_shared_from_this<Windows> {
 public:
  explicit Windows(uint64_t base) : base_(base) {}
  uint64_t base() const { return base_; }
  uint64_t control(uint32_t k) const { return base_ + k * kWindowStride; }
  // A free window for `d`, `prefer` if it is free.
  std::optional<uint32_t> claim(ShmemDevice* d, std::optional<uint32_t> prefer);
  void release(uint32_t k);
  ShmemDevice* owner(uint32_t k);
  std::shared_ptr<bus::BusDevice> control_page(uint32_t k);

 private:
  uint64_t base_;
  std::mutex mu_;
  std::array<ShmemDevice*, kWindows> owner_{};
};

class ShmemDevice final : public FactoryHost {
 public:
  ShmemDevice(VdevContext& ctx, std::string dir, std::shared_ptr<Windows> w, uint32_t gsi,
              NamePolicy p)
      : ctx_(ctx),
        dir_(std::move(dir)),
        windows_(std::move(w)),
        factory_(*this, gsi, std::move(p)) {}
  ~ShmemDevice() override;

  // The doorbell, its irqfd on `gsi` (INTx or the `intr` line: level, resampled) and the
  // event-loop hook (not in dryrun).
  Status start(uint32_t gsi);
  // PCI: the function's MSI-X. Once the guest enables it and unmasks vector 0, the doorbell is
  // an irqfd on a KVM MSI route instead (PCI 3.0 §6.8.2: INTx is not used while MSI-X is on).
  void use_msix(pci::Msix* msix);

  // FactoryHost: runs on a vCPU thread inside the factory page's access (mu_ held).
  Result<Attached> attach(std::string_view name, uint32_t pages, bool create) override;

  std::shared_ptr<bus::BusDevice> factory_registers();
  // Window k's control page (spec §11.4), when this vdev holds it: false if it does not.
  bool control_read(uint32_t k, uint64_t offset, std::span<uint8_t> data);
  void control_write(uint32_t k, uint64_t offset, std::span<const uint8_t> data);
  std::vector<std::string> status_lines();

 private:
  struct Slot {
    std::unique_ptr<shm::Client> client;
    std::unique_ptr<Registration> memory;
  };
  void detach(uint32_t k);  // mu_ held
  void on_events();
  void update_interrupt();  // after an MSI-X table or Message Control write

  VdevContext& ctx_;
  std::string dir_;
  std::shared_ptr<Windows> windows_;
  std::mutex mu_;
  FactoryPage factory_;
  std::array<Slot, kWindows> slots_;
  UniqueFd doorbell_, resample_, ep_;
  uint32_t gsi_ = 0;
  pci::Msix* msix_ = nullptr;
  std::unique_ptr<Registration> intx_;
  std::unique_ptr<MsiIrqfd> msi_;
  std::optional<pci::Msix::Route> msi_route_;
  uint64_t msi_switches_ = 0;
  uint64_t attaches_ = 0, detaches_ = 0, resamples_ = 0, rerings_ = 0;
};

}  // namespace qvm::vdev::shmem
