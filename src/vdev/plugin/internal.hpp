// What the loader, the instance adapter and the C functions of include/qvm/ share.
#pragma once

#include <qvm/vdev-core.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "config/schema.hpp"
#include "event/event_loop.hpp"
#include "vdev/api/context.hpp"
#include "virtio/device.hpp"

namespace qvm::vdev::plugin {

// A registered factory: its type, the object it came from, and the schema built from it.
struct Loaded {
  std::string type;
  std::string path;
  vdev_factory* factory = nullptr;
  config::VdevSchema schema;
};
const Loaded* find_loaded(std::string_view type);

inline constexpr uint32_t kInstanceMagic = 0x71766476;  // "qvdv"
inline constexpr size_t kMaxTimers = 16;

// One `vdev` entry of a loaded type. `pub` is the vdev_t the vdev sees; pub.v_qvm points back.
struct Instance {
  uint32_t magic = kInstanceMagic;
  vdev_s pub{};
  void* extra = nullptr;
  const Loaded* plugin = nullptr;
  VdevContext* ctx = nullptr;
  const config::VdevConfig* cfg = nullptr;  // during create() only
  std::string name;
  bool mutex = false;       // VFF_MUTEX: v_mtx is initialized and held around callbacks
  bool terminated = false;  // TERMINATE sent
  std::vector<unsigned> intr_ids;
  struct TimerSlot {
    std::unique_ptr<event::Timer> timer;
    unsigned cookie = 0;
  };
  std::vector<TimerSlot> timers;
  RateLimit log_rl{5.0, 20.0};
  std::weak_ptr<Instance> self;
  // Regions added at run time with gasp_region_set_soft (base, io).
  std::vector<std::pair<uint64_t, bool>> soft_regions;
  // A virtio device (include/qvm/vio.h): set by vio_init during OPTIONS_END.
  bool in_options_end = false;
  std::shared_ptr<virtio::VirtioDevice> vio;
  // On PCI (include/qvm/pci.h): what the vdev declared during VDEV_CTRL_PCI_BARS.
  bool in_pci_bars = false;
  struct PciIds {
    uint16_t vendor = 0, device = 0, subsystem_vendor = 0, subsystem = 0;
    uint32_t class_code = 0;
    uint8_t revision = 0;
  };
  std::optional<PciIds> pci_ids;
  struct PciBar {
    uint8_t index;
    uint64_t size;
    bool io;
  };
  std::vector<PciBar> pci_bars;

  ~Instance();
  void lock() {
    if (mutex) pthread_mutex_lock(&pub.v_mtx);
  }
  void unlock() {
    if (mutex) pthread_mutex_unlock(&pub.v_mtx);
  }
  int control(vdev_ctrl_options_t c, const char* arg) {
    lock();
    int r = plugin->factory->control(&pub, c, arg);
    unlock();
    return r;
  }
};
// The instance behind a vdev_t, or nullptr (not one of ours).
Instance* instance_of(vdev_t* vdp);

// The bus device of a trapped region: accesses call vread/vwrite with `cookie`; vopnd->location is
// base + offset (QST_MEMORY, QST_X86_IO) or the offset in a BAR (QST_PCI, base 0).
std::shared_ptr<bus::BusDevice> make_trap_region(std::weak_ptr<Instance> in, uint64_t base,
                                                 uint16_t space, unsigned cookie);

// Interrupt handles (guest_intr.src_id): process-wide, one VM per process.
unsigned add_intr(std::unique_ptr<IrqLine> line);
IrqLine* find_intr(unsigned id);
void remove_intr(unsigned id);

// While a STATUS control runs on this thread, vdev_logf lines go here.
extern thread_local std::vector<std::string>* tl_status_lines;

// The registration hook the C function vdev_register_factory() calls (capi.cpp -> loader.cpp).
int register_factory(vdev_factory* f, unsigned abi);

}  // namespace qvm::vdev::plugin
