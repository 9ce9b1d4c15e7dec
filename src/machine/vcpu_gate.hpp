// Holding vCPU threads outside KVM_RUN (design §3.9): the GDB stub stops and resumes vCPUs one
// by one, a guest dump pauses all of them to read a consistent state. A vCPU thread passes
// checkpoint() before every KVM_RUN; it runs only when no pause is in force, the debugger does
// not hold it, and the VM is not stopping. The kick (immediate_exit plus a signal) is the
// caller's: the gate only knows indexes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

namespace qvm::machine {

class VcpuGate {
 public:
  // `kick(i)` makes vCPU i leave KVM_RUN soon (request_exit + signal).
  VcpuGate(size_t n, std::function<void(size_t)> kick);

  // vCPU thread i, before KVM_RUN: blocks while it may not run. Returns false once stopping.
  bool checkpoint(size_t i);
  // vCPU thread i has left its loop for good (a parked-forever thread must not be waited for).
  void exited(size_t i);

  // Any thread but a vCPU's: every vCPU parked (or exited) on return. Nestable (a dump while
  // GDB holds the VM); resume_all() undoes one pause_all().
  void pause_all();
  void resume_all();

  // The debugger's per-vCPU hold: hold(i) keeps vCPU i parked once it reaches checkpoint();
  // wait_parked(i) waits for it to get there. release() lets the listed vCPUs run (when no
  // pause_all is in force).
  void hold(size_t i);
  // vCPU thread i holds itself (it is about to reach checkpoint(): no kick needed).
  void hold_self(size_t i);
  void hold_all();
  void release(size_t i);
  void release_all();
  bool wait_parked(size_t i);  // false if it exited instead
  void wait_all_parked();
  bool parked(size_t i) const;

  // The VM stops: every checkpoint returns false from now on.
  void stop();
  size_t size() const { return slots_.size(); }

 private:
  struct Slot {
    bool held = false, parked = false, exited = false;
  };
  bool may_run(size_t i) const { return !stopping_ && pauses_ == 0 && !slots_[i].held; }
  // Under mu_: whether anything may hold a vCPU; checkpoint() skips the lock while false.
  void update_fast();
  bool settled(size_t i) const { return slots_[i].parked || slots_[i].exited; }

  std::function<void(size_t)> kick_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  int pauses_ = 0;
  int holds_ = 0;
  // No pause, hold or stop in force: the lock-free fast path of checkpoint() (one atomic load
  // per exit while no debugger or dump is at work). A hold set after this load is still seen:
  // the kick that follows every hold makes the vCPU come back to checkpoint().
  std::atomic<bool> free_{true};
  bool stopping_ = false;
};

}  // namespace qvm::machine
