// See factory_page.hpp; register layout from spec §11.3.
#include "vdev/shmem/factory_page.hpp"

#include <fnmatch.h>

#include <cstring>

#include "base/log.hpp"

namespace qvm::vdev::shmem {

bool NamePolicy::permits(std::string_view name) const {
  const std::string n(name);
  bool any_allow = false, any_deny = false;
  const NameRule* last = nullptr;
  for (const NameRule& r : rules_) {
    (r.allow ? any_allow : any_deny) = true;
    if (::fnmatch(r.pattern.c_str(), n.c_str(), 0) == 0) last = &r;
  }
  if (last) return last->allow;
  return !(any_allow && !any_deny);
}

ControlWrite decode_control_write(uint64_t offset, std::span<const uint8_t> data) {
  ControlWrite w;
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    if (at >= 8 && at < 12) {
      w.notify_mask |= uint32_t{data[i]} << (8 * (at - 8));
      w.notify = true;
    } else if (at >= 12 && at < 16) {
      w.detach = true;
    }
  }
  return w;
}

void FactoryPage::read(uint64_t offset, std::span<uint8_t> data) const {
  uint8_t image[kRegEnd] = {};
  auto put = [&](uint64_t at, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) image[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  put(kRegSignature, kSignature, 8);
  put(kRegShmem, shmem_, 8);
  put(kRegVector, vector_, 4);
  put(kRegStatus, status_, 4);
  put(kRegSize, size_, 4);
  std::memcpy(image + kRegName, name_, sizeof name_);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    data[i] = at < kRegEnd ? image[at] : uint8_t{0};
  }
}

void FactoryPage::write(uint64_t offset, std::span<const uint8_t> data) {
  // The name bytes of an access first, then a trigger it covers (a driver may write the last
  // name bytes and `find` in one access).
  uint32_t size_value = 0, find_value = 0;
  bool size_hit = false, find_hit = false;
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    if (at >= kRegName && at < kRegFind) {
      name_[at - kRegName] = static_cast<char>(data[i]);
    } else if (at >= kRegSize && at < kRegName) {
      size_value |= uint32_t{data[i]} << (8 * (at - kRegSize));
      size_hit = true;
    } else if (at >= kRegFind && at < kRegEnd) {
      find_value |= uint32_t{data[i]} << (8 * (at - kRegFind));
      find_hit = true;
    }
  }
  if (size_hit) request(size_value, true);
  if (find_hit) request(0, false);
  (void)find_value;  // `find` is a trigger; its value has no meaning (spec §11.3)
}

void FactoryPage::request(uint32_t pages, bool create) {
  ++requests_;
  auto fail = [&](shm::Gss s, std::string why) {
    ++failures_;
    status_ = static_cast<uint32_t>(s);
    shmem_ = kInvalidAddress;
    last_error_ = std::move(why);
  };
  const size_t len = strnlen(name_, sizeof name_);
  if (len == 0 || len == sizeof name_)
    return fail(shm::Gss::kIllegalName,
                len ? "region name has no NUL in its 32 bytes" : "empty region name");
  const std::string_view name(name_, len);
  if (!policy_.permits(name))
    return fail(shm::Gss::kNoPermission,
                "region '" + std::string(name) + "' is not allowed by this vdev's allow/deny");
  auto r = host_.attach(name, pages, create);
  if (!r) return fail(shm::gss_from(r.error()), r.error().message);
  status_ = static_cast<uint32_t>(shm::Gss::kOk);
  shmem_ = r->control_gpa;
  size_ = r->pages;
  last_error_.clear();
}

}  // namespace qvm::vdev::shmem
