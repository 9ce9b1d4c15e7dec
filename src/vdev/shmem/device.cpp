// See device.hpp; registers from spec §11.3 and §11.4.
#include "vdev/shmem/device.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "base/log.hpp"

namespace qvm::vdev::shmem {
namespace {

constexpr uint64_t kResampleTag = ~0ull;

// A region named virtio<N> (N < 16) takes window N when it is free: the public Linux
// "virtio over guest-shm" driver computes its data window as GUEST_SHM_PADDR + (N << 32) + 4 KiB
// (docs/shmem.md "Where regions appear").
std::optional<uint32_t> virtio_window(std::string_view name) {
  if (name.substr(0, 6) != "virtio" || name.size() == 6) return std::nullopt;
  uint32_t n = 0;
  const char* b = name.data() + 6;
  const char* e = name.data() + name.size();
  auto [p, ec] = std::from_chars(b, e, n);
  if (ec != std::errc() || p != e || n >= kWindows) return std::nullopt;
  return n;
}

class FactoryRegisters final : public bus::BusDevice {
 public:
  FactoryRegisters(FactoryPage& f, std::mutex& mu) : f_(f), mu_(mu) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    std::lock_guard lk(mu_);
    f_.read(offset, data);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard lk(mu_);
    f_.write(offset, data);
  }

 private:
  FactoryPage& f_;
  std::mutex& mu_;
};

}  // namespace

// A window's control page: dispatched to the vdev holding the window; while none does it reads
// all ones and ignores writes. The windows' lock is not held into the device's (the device takes
// them in the other order when it claims a window).
class ControlPage final : public bus::BusDevice {
 public:
  ControlPage(std::shared_ptr<Windows> w, uint32_t k) : w_(std::move(w)), k_(k) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    ShmemDevice* d = w_->owner(k_);
    if (d && d->control_read(k_, offset, data)) return;
    for (auto& b : data) b = 0xff;
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    if (ShmemDevice* d = w_->owner(k_)) d->control_write(k_, offset, data);
  }

 private:
  std::shared_ptr<Windows> w_;
  uint32_t k_;
};

std::optional<uint32_t> Windows::claim(ShmemDevice* d, std::optional<uint32_t> prefer) {
  std::lock_guard lk(mu_);
  if (prefer && *prefer < kWindows && !owner_[*prefer]) {
    owner_[*prefer] = d;
    return prefer;
  }
  for (uint32_t k = 0; k < kWindows; ++k) {
    if (!owner_[k]) {
      owner_[k] = d;
      return k;
    }
  }
  return std::nullopt;
}

void Windows::release(uint32_t k) {
  std::lock_guard lk(mu_);
  owner_[k] = nullptr;
}

ShmemDevice* Windows::owner(uint32_t k) {
  std::lock_guard lk(mu_);
  return owner_[k];
}

std::shared_ptr<bus::BusDevice> Windows::control_page(uint32_t k) {
  return std::make_shared<ControlPage>(shared_from_this(), k);
}

bool ShmemDevice::control_read(uint32_t k, uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lk(mu_);
  shm::Client* c = slots_[k].client.get();
  if (!c) return false;
  shmem::control_read(offset, data, c->index(), [c] { return c->read_status(); });
  return true;
}

void ShmemDevice::control_write(uint32_t k, uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lk(mu_);
  shm::Client* c = slots_[k].client.get();
  if (!c) return;
  const ControlWrite w = decode_control_write(offset, data);
  // A partial write of `notify` (one byte of ~0) means its bytes, not "all but me".
  if (w.notify) c->notify(w.notify_mask);
  if (w.detach) detach(k);
}

ShmemDevice::~ShmemDevice() {
  if (msix_) msix_->set_on_change(nullptr);
  std::lock_guard lk(mu_);
  for (uint32_t k = 0; k < kWindows; ++k) detach(k);
  msi_.reset();
  intx_.reset();
}

Status ShmemDevice::start(uint32_t gsi) {
  doorbell_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  resample_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ep_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!doorbell_ || !resample_ || !ep_) return Error::from_errno("shmem eventfd/epoll", errno);
  gsi_ = gsi;
  intx_ = QVM_TRY(ctx_.irqfd(gsi, doorbell_.get(), resample_.get()));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kResampleTag;
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, resample_.get(), &ev) != 0)
    return Error::from_errno("epoll_ctl", errno);
  return ctx_.loop().add_fd(ep_.get(), [this] { on_events(); });
}

void ShmemDevice::use_msix(pci::Msix* msix) {
  msix_ = msix;
  msix_->set_on_change([this] { update_interrupt(); });
}

void ShmemDevice::update_interrupt() {
  if (!doorbell_ || !msix_) return;  // dryrun
  const bool enabled = msix_->enabled();
  const std::optional<pci::Msix::Route> r = msix_->route(0);
  std::lock_guard lk(mu_);
  if (!enabled) {
    if (msi_) ++msi_switches_;
    msi_.reset();
    msi_route_.reset();
    if (!intx_) {
      if (auto i = ctx_.irqfd(gsi_, doorbell_.get(), resample_.get()))
        intx_ = std::move(*i);
      else
        log_error("shmem: INTx: %s", i.error().message.c_str());
    }
    return;
  }
  intx_.reset();  // the resampler lowers the line as its last irqfd goes
  if (!r) {
    // Masked: rings count in the eventfd; KVM delivers them when the irqfd is assigned again.
    msi_.reset();
    msi_route_.reset();
    return;
  }
  if (msi_) {
    if (r != msi_route_) (void)msi_->update(r->addr, r->data);
  } else {
    auto m = ctx_.msi_irqfd(doorbell_.get(), r->addr, r->data);
    if (!m) {
      log_error("shmem: MSI-X: %s", m.error().message.c_str());
      return;
    }
    msi_ = std::move(*m);
    ++msi_switches_;
  }
  msi_route_ = r;
  // A cause that was waiting for a level line's EOI is sent as a message now.
  for (auto& s : slots_)
    if (s.client && s.client->wants_interrupt()) {
      s.client->ring_own_doorbell();
      break;
    }
}

Result<FactoryHost::Attached> ShmemDevice::attach(std::string_view name, uint32_t pages,
                                                  bool create) {
  if (!doorbell_) return Error{"shared memory is not started (dryrun)", EIO};
  const std::optional<uint32_t> k = windows_->claim(this, virtio_window(name));
  if (!k)
    return Error{strprintf("the VM has %u attachments already (detach one first)", kWindows),
                 ENOMEM};
  struct Release {
    Windows* w;
    uint32_t k;
    ~Release() {
      if (w) w->release(k);
    }
  } release{windows_.get(), *k};
  shm::ClientOptions o;
  o.dir = dir_;
  o.pages = pages;
  o.create = false;
  o.doorbell_fd = doorbell_.get();
  auto r = shm::Client::attach(name, o);
  if (!r && create && r.error().sys_errno == ENOENT) {
    // A guest creates regions of bounded size: their pages are reserved in the host's tmpfs
    // (docs/shmem.md "Limits"); bigger ones are declared with `create`.
    if (pages > kGuestCreateMaxPages)
      return Error{strprintf("a guest creates regions of at most %u MiB (asked %u pages); "
                             "declare bigger ones with `create NAME,SIZE`",
                             kGuestCreateMaxPages / 256, pages),
                   ENOMEM};
    o.create = true;
    r = shm::Client::attach(name, o);
  }
  auto c = QVM_TRY(std::move(r));
  const uint64_t control = windows_->control(*k);
  auto mem = QVM_TRY(ctx_.map_host_memory(control + shm::kPage, c->data()));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = *k;
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, c->poll_fd(), &ev) != 0)
    return Error::from_errno("epoll_ctl", errno);
  const Attached a{control, c->pages()};
  slots_[*k] = Slot{std::move(c), std::move(mem)};
  release.w = nullptr;
  ++attaches_;
  return a;
}

void ShmemDevice::detach(uint32_t k) {
  Slot& s = slots_[k];
  if (!s.client) return;
  (void)::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, s.client->poll_fd(), nullptr);
  s.memory.reset();  // the memslot goes before the mapping behind it
  s.client.reset();
  windows_->release(k);
  ++detaches_;
}

void ShmemDevice::on_events() {
  epoll_event evs[kWindows + 1];
  const int n = ::epoll_wait(ep_.get(), evs, static_cast<int>(kWindows + 1), 0);
  std::lock_guard lk(mu_);
  for (int i = 0; i < n; ++i) {
    const uint64_t tag = evs[i].data.u64;
    if (tag != kResampleTag) {
      if (tag < kWindows && slots_[tag].client) slots_[tag].client->service();
      continue;
    }
    // The guest's EOI lowered the line: raise it again while a cause remains (level semantics).
    uint64_t v;
    (void)!::read(resample_.get(), &v, sizeof v);
    ++resamples_;
    for (auto& s : slots_) {
      if (s.client && s.client->wants_interrupt()) {
        ++rerings_;
        s.client->ring_own_doorbell();
        break;
      }
    }
  }
}

std::shared_ptr<bus::BusDevice> ShmemDevice::factory_registers() {
  return std::make_shared<FactoryRegisters>(factory_, mu_);
}

std::vector<std::string> ShmemDevice::status_lines() {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  out.push_back(strprintf(
      "factory: %llu requests, %llu failed (last status %s%s%s), "
      "%llu attaches, %llu detaches, %llu EOIs (%llu re-raised), interrupt %s",
      static_cast<unsigned long long>(factory_.requests()),
      static_cast<unsigned long long>(factory_.failures()), shm::gss_name(factory_.status()),
      factory_.last_error().empty() ? "" : ": ", factory_.last_error().c_str(),
      static_cast<unsigned long long>(attaches_), static_cast<unsigned long long>(detaches_),
      static_cast<unsigned long long>(resamples_), static_cast<unsigned long long>(rerings_),
      msi_    ? "MSI-X (KVM MSI route)"
      : intx_ ? "INTx/intr (level)"
              : "masked"));
  for (uint32_t k = 0; k < kWindows; ++k) {
    const shm::Client* c = slots_[k].client.get();
    if (!c) continue;
    const shm::ClientStats st = c->stats();
    out.push_back(strprintf(
        "window %u at 0x%llx: region '%s' %u pages, client %u, attached 0x%04x, "
        "%llu notifies, %llu doorbells, %llu peer changes, %llu refused",
        k, static_cast<unsigned long long>(windows_->control(k)), c->name().c_str(), c->pages(),
        c->index(), c->attached(), static_cast<unsigned long long>(st.notifies),
        static_cast<unsigned long long>(st.doorbells),
        static_cast<unsigned long long>(st.peer_changes),
        static_cast<unsigned long long>(st.refused)));
  }
  return out;
}

}  // namespace qvm::vdev::shmem
