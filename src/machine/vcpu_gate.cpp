#include "machine/vcpu_gate.hpp"

namespace qvm::machine {

VcpuGate::VcpuGate(size_t n, std::function<void(size_t)> kick)
    : kick_(std::move(kick)), slots_(n) {}

void VcpuGate::update_fast() {
  holds_ = 0;
  for (const auto& s : slots_) holds_ += s.held ? 1 : 0;
  free_.store(!stopping_ && pauses_ == 0 && holds_ == 0, std::memory_order_release);
}

bool VcpuGate::checkpoint(size_t i) {
  if (free_.load(std::memory_order_acquire)) return true;
  std::unique_lock lk(mu_);
  if (may_run(i)) return true;  // the common case: one uncontended lock per exit
  slots_[i].parked = true;
  cv_.notify_all();
  cv_.wait(lk, [&] { return stopping_ || may_run(i); });
  slots_[i].parked = false;
  return !stopping_;
}

void VcpuGate::exited(size_t i) {
  std::lock_guard lk(mu_);
  slots_[i].exited = true;
  cv_.notify_all();
}

void VcpuGate::pause_all() {
  {
    std::lock_guard lk(mu_);
    ++pauses_;
    update_fast();
  }
  for (size_t i = 0; i < slots_.size(); ++i) kick_(i);
  wait_all_parked();
}

void VcpuGate::resume_all() {
  std::lock_guard lk(mu_);
  if (pauses_ > 0) --pauses_;
  update_fast();
  cv_.notify_all();
}

void VcpuGate::hold(size_t i) {
  {
    std::lock_guard lk(mu_);
    slots_[i].held = true;
    update_fast();
  }
  kick_(i);
}

void VcpuGate::hold_self(size_t i) {
  std::lock_guard lk(mu_);
  slots_[i].held = true;
  update_fast();
}

void VcpuGate::hold_all() {
  std::vector<size_t> kick;
  {
    std::lock_guard lk(mu_);
    for (size_t i = 0; i < slots_.size(); ++i) {
      // One already held is parked or on its way there: no kick (a kick would cost it an extra
      // KVM_RUN round trip when it is released).
      if (!slots_[i].held) kick.push_back(i);
      slots_[i].held = true;
    }
    update_fast();
  }
  for (size_t i : kick) kick_(i);
}

void VcpuGate::release(size_t i) {
  std::lock_guard lk(mu_);
  slots_[i].held = false;
  update_fast();
  cv_.notify_all();
}

void VcpuGate::release_all() {
  std::lock_guard lk(mu_);
  for (auto& s : slots_) s.held = false;
  update_fast();
  cv_.notify_all();
}

bool VcpuGate::wait_parked(size_t i) {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return stopping_ || settled(i); });
  return slots_[i].parked;
}

void VcpuGate::wait_all_parked() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] {
    if (stopping_) return true;
    for (size_t i = 0; i < slots_.size(); ++i)
      if (!settled(i)) return false;
    return true;
  });
}

bool VcpuGate::parked(size_t i) const {
  std::lock_guard lk(mu_);
  return slots_[i].parked;
}

void VcpuGate::stop() {
  std::lock_guard lk(mu_);
  stopping_ = true;
  update_fast();
  cv_.notify_all();
}

}  // namespace qvm::machine
