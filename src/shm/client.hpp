// One participant in a region (spec §11.4): a client slot 0-15, the data pages mapped, and a
// doorbell eventfd that is signalled when another client notifies this one or when the set of
// attached clients changes. A qvm wires the doorbell to the guest's interrupt as a KVM irqfd;
// qvm-shm polls it.
//
// Doorbells cross processes as file descriptors (docs/shmem.md "Doorbells"): each client listens
// on a Unix seqpacket socket in the region's directory; a client that attaches connects to every
// other attached client and exchanges doorbells with it (SCM_RIGHTS), checking the peer's
// credentials. A notification is then an atomic OR into the target's pending bits plus one
// eventfd write: no process of the receiving side wakes before its guest's interrupt. A closed
// connection means the peer detached or died (its slot lock says which).
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "shm/region.hpp"

namespace qvm::shm {

struct ClientOptions {
  std::string dir;          // empty: default_dir()
  uint32_t pages = 0;       // data pages when the region must be created
  bool create = true;       // false: attach only if it exists (the factory's `find`)
  mode_t file_mode = 0600;  // a new region file's mode
  int doorbell_fd = -1;     // an eventfd to use (duplicated) instead of a new one
};

struct ClientStats {
  uint64_t notifies = 0;      // notify requests
  uint64_t doorbells = 0;     // eventfd writes to peers
  uint64_t peer_changes = 0;  // attaches and detaches seen
  uint64_t refused = 0;       // connections refused (credentials, malformed hello)
};

class Client {
 public:
  static constexpr uint32_t kAllButMe = ~0u;

  static Result<std::unique_ptr<Client>> attach(std::string_view name, const ClientOptions& o);
  ~Client();  // detaches
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  uint32_t index() const { return idx_; }
  uint32_t pages() const { return file_->pages(); }
  const std::string& name() const { return file_->name(); }
  std::span<uint8_t> data() const { return {data_, uint64_t{pages()} * kPage}; }

  // The control page's `status` (spec §11.4): pending notifications (cleared by the read) in
  // bits 0-15, attached clients in bits 16-31.
  uint32_t read_status();
  uint32_t attached() const;
  uint32_t pending() const;
  // Whether the doorbell should (still) be rung: notifications pending, or the attached set
  // changed since the last read_status (level-interrupt resampling).
  bool wants_interrupt() const;
  // `notify`: each client in `mask` that is attached (kAllButMe: all others) gets this client's
  // bit in its pending set and its doorbell rung.
  void notify(uint32_t mask);

  int doorbell_fd() const { return doorbell_.get(); }
  void ring_own_doorbell();
  // The socket side (listener and peer connections) behind one epoll fd: call service() on the
  // main thread when it is readable.
  int poll_fd() const { return ep_.get(); }
  void service();
  ClientStats stats() const;

 private:
  Client() = default;
  Status listen();
  void connect_peers();
  void on_readable(int fd);
  void drop_connection(int fd);
  void peer_gone(uint32_t j);
  bool send_hello(int fd);
  void watch(int fd);

  std::unique_ptr<RegionFile> file_;
  uint32_t idx_ = 0;
  uint64_t gen_ = 0;
  bool attached_ = false;  // the slot is ours: the destructor detaches
  uint8_t* data_ = nullptr;
  UniqueFd doorbell_, ep_, listener_;
  std::atomic<bool> changed_{false};
  mutable std::mutex mu_;  // peers_, conns_, stats_
  struct Peer {
    int conn = -1;  // in conns_
    UniqueFd doorbell;
  };
  std::array<Peer, kMaxClients> peers_;
  std::map<int, UniqueFd> conns_;  // fd -> connection; peer index known once its hello came
  std::map<int, int> conn_peer_;   // fd -> peer index (absent: no hello yet)
  ClientStats stats_;
};

}  // namespace qvm::shm
