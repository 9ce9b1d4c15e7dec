// Named shared-memory regions between qvm processes and host programs (spec §11, docs/shmem.md).
// A region is a file in a private directory (<runtime>/shm, mode 0700): one host-only header page
// (the membership table, below) followed by the region's data pages. Every participant maps the
// data pages; a guest sees them as memory (a KVM memslot), behind the control page its qvm
// emulates. The file exists while a client is attached or a holder (`create`) keeps it; the last
// one to leave removes it.
//
// Mutual exclusion and liveness use open-file-description locks (fcntl F_OFD_*) on bytes of the
// file, which the kernel drops when a process dies however it dies:
//   byte 0         the membership lock (attach, detach, reaping a dead client)
//   byte 1         read-locked by each holder
//   byte 16 + i    write-locked by client i while it is attached
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace qvm::shm {

inline constexpr uint32_t kMaxClients = 16;  // spec §11.1
inline constexpr size_t kNameMax = 32;       // bytes, including the NUL (spec §11.3)
inline constexpr uint64_t kPage = 4096;
// The control page and the data pages fit in 4 GiB: a guest attachment's window (docs/shmem.md).
inline constexpr uint32_t kMaxPages = (1u << 20) - 1;

// enum guest_shm_status (spec §11.3), in the spec's order.
enum class Gss : uint32_t {
  kOk = 0,
  kUnknownFailure,
  kNoMem,
  kClientMax,
  kIllegalName,
  kNoPermission,
  kDoesNotExist,
};
const char* gss_name(Gss s);
// The status a failed attach reports to a guest: errors carry an errno that says which
// (ENOENT: no such region, ENOMEM/ENOSPC: no memory, EUSERS: 16 clients, EINVAL: bad name).
Gss gss_from(const Error& e);

// The region file's first page. Fields shared between processes are accessed with atomics.
struct RegionHeader {
  char magic[8];  // "QVMSHM\0\1"
  uint32_t version;
  uint32_t pages;     // data pages
  uint32_t attached;  // bitset of attached clients
  uint32_t reserved;
  uint64_t reserved2;
  char name[kNameMax];
  struct Slot {
    uint32_t pending;  // bitset of the clients that notified this one since it last read status
    uint32_t pid;      // the process that holds the slot
    uint64_t gen;      // increments at each attach to the slot
  } slots[kMaxClients];
};
static_assert(sizeof(RegionHeader) <= kPage);

// Names are any 1..31 bytes (the guest's); the file name encodes them ("r." + hex escapes).
std::string region_file_name(std::string_view name);
Status check_name(std::string_view name);
// <runtime>/shm (base/runtime_dir.hpp).
std::string default_dir();

// An open region file: the verified directory, the file, its header mapping. Internal to the
// library's clients and holders, exposed for tests.
class RegionFile {
 public:
  enum class Mode { kCreateOrAttach, kAttachOnly };
  // Opens (or creates with `pages` data pages) the region `name` in `dir` and returns it with
  // the membership lock held.
  static Result<std::unique_ptr<RegionFile>> open_locked(const std::string& dir,
                                                         std::string_view name, uint32_t pages,
                                                         Mode mode, mode_t file_mode);
  ~RegionFile();
  RegionFile(const RegionFile&) = delete;
  RegionFile& operator=(const RegionFile&) = delete;

  Status lock();  // the membership lock (bounded wait: 2 s)
  void unlock();
  // Clears the slots of clients whose processes are gone (membership lock held), except those
  // in `own` (slots this file description locks itself: its own locks never conflict).
  uint32_t reap_dead(uint32_t own = 0);
  bool slot_alive(uint32_t i) const;
  bool holders_alive() const;
  // Removes the file if nobody is attached and no holder keeps it (membership lock held).
  void remove_if_unused();

  RegionHeader& header() const { return *hdr_; }
  int fd() const { return fd_.get(); }
  int dir_fd() const { return dir_.get(); }
  const std::string& dir() const { return dir_path_; }
  const std::string& name() const { return name_; }
  uint32_t pages() const { return pages_; }
  uint64_t inode() const { return ino_; }
  // "s.<16 hex>.<i>": client i's socket (short enough for sun_path under any runtime dir).
  std::string socket_name(uint32_t i) const;

  // Byte-range OFD locks on this file description.
  bool try_lock_byte(uint64_t byte, bool write);
  void unlock_byte(uint64_t byte);
  bool byte_locked_by_other(uint64_t byte, bool write) const;

 private:
  RegionFile() = default;
  std::string dir_path_, name_, file_;
  UniqueFd dir_, fd_;
  RegionHeader* hdr_ = nullptr;
  uint32_t pages_ = 0;
  uint64_t ino_ = 0;
  bool locked_ = false;
};

// Keeps a region in existence (the `create` option): created with `pages` if missing.
class Holder {
 public:
  static Result<std::unique_ptr<Holder>> create(const std::string& dir, std::string_view name,
                                                uint32_t pages, mode_t file_mode = 0600);
  ~Holder();
  uint32_t pages() const { return file_->pages(); }

 private:
  std::unique_ptr<RegionFile> file_;
};

}  // namespace qvm::shm
