// See client.hpp and docs/shmem.md ("Doorbells").
#include "shm/client.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "base/log.hpp"

namespace qvm::shm {
namespace {

constexpr char kHelloMagic[8] = {'Q', 'V', 'M', 'S', 'H', 'M', 'C', '1'};
constexpr uint64_t kLockSlot0 = 16;  // region.hpp
constexpr size_t kMaxConnections = 2 * kMaxClients;

struct Hello {
  char magic[8];
  uint32_t idx;
  uint32_t reserved;
  uint64_t gen;
  uint64_t inode;  // the region file's: sockets are named by a hash of the region's name
};

Error err(int e, std::string msg) {
  return Error{std::move(msg), e};
}

Result<sockaddr_un> unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    return err(ENAMETOOLONG, "socket path " + path + " is longer than 107 bytes");
  std::memcpy(a.sun_path, path.c_str(), path.size());
  return a;
}

std::atomic_ref<uint32_t> at(uint32_t& v) {
  return std::atomic_ref<uint32_t>(v);
}

}  // namespace

Result<std::unique_ptr<Client>> Client::attach(std::string_view name, const ClientOptions& o) {
  const std::string dir = o.dir.empty() ? default_dir() : o.dir;
  std::unique_ptr<Client> c(new Client());
  c->file_ = QVM_TRY(RegionFile::open_locked(
      dir, name, o.pages,
      o.create ? RegionFile::Mode::kCreateOrAttach : RegionFile::Mode::kAttachOnly, o.file_mode));
  RegionFile& f = *c->file_;
  struct Unlock {
    RegionFile& f;
    ~Unlock() { f.unlock(); }
  } unlock{f};
  RegionHeader& h = f.header();
  f.reap_dead();
  const uint32_t a = at(h.attached).load();
  uint32_t i = 0;
  while (i < kMaxClients && (a & (1u << i))) ++i;
  if (i == kMaxClients)
    return err(EUSERS,
               strprintf("region '%s' has %u clients already", f.name().c_str(), kMaxClients));
  if (!f.try_lock_byte(kLockSlot0 + i, true))
    return Error::from_errno(strprintf("claiming slot %u of region '%s'", i, f.name().c_str()),
                             errno);
  c->idx_ = i;
  auto release_slot = [&] { f.unlock_byte(kLockSlot0 + i); };

  const uint64_t len = uint64_t{f.pages()} * kPage;
  void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, f.fd(), kPage);
  if (m == MAP_FAILED) {
    const int e = errno;
    release_slot();
    return err(e == ENOMEM ? ENOMEM : e, "mapping region '" + f.name() + "': " + strerror(e));
  }
  c->data_ = static_cast<uint8_t*>(m);
  (void)::madvise(m, len, MADV_DONTDUMP);  // shared guest data stays out of core dumps
  c->doorbell_.reset(o.doorbell_fd >= 0 ? ::fcntl(o.doorbell_fd, F_DUPFD_CLOEXEC, 0)
                                        : ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  c->ep_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!c->doorbell_ || !c->ep_) {
    const int e = errno;
    release_slot();
    return Error::from_errno("creating the doorbell", e);
  }
  if (auto s = c->listen(); !s) {
    release_slot();
    return std::move(s).error();
  }
  RegionHeader::Slot& slot = h.slots[i];
  at(slot.pending).store(0);
  at(slot.pid).store(static_cast<uint32_t>(::getpid()));
  c->gen_ = std::atomic_ref<uint64_t>(slot.gen).fetch_add(1) + 1;
  at(h.attached).fetch_or(1u << i);
  c->attached_ = true;
  c->connect_peers();
  return c;
}

Client::~Client() {
  if (!file_ || !attached_) return;  // a failed attach: closing the file drops its locks
  RegionFile& f = *file_;
  const bool locked = f.lock().ok();  // best effort: the slot is cleared either way
  RegionHeader& h = f.header();
  at(h.slots[idx_].pending).store(0);
  at(h.slots[idx_].pid).store(0);
  at(h.attached).fetch_and(~(1u << idx_));
  ::unlinkat(f.dir_fd(), f.socket_name(idx_).c_str(), 0);
  f.unlock_byte(kLockSlot0 + idx_);
  if (locked) {
    f.remove_if_unused();
    f.unlock();
  }
  {
    std::lock_guard lk(mu_);
    conns_.clear();  // the peers see their connection close
    for (auto& p : peers_) p = Peer{};
  }
  listener_.reset();
  if (data_) ::munmap(data_, uint64_t{f.pages()} * kPage);
}

Status Client::listen() {
  const std::string path = file_->dir() + "/" + file_->socket_name(idx_);
  sockaddr_un a = QVM_TRY(unix_addr(path));
  listener_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener_) return Error::from_errno("socket", errno);
  // A socket left by a client of this slot that died: the slot lock says nobody owns it now.
  ::unlinkat(file_->dir_fd(), file_->socket_name(idx_).c_str(), 0);
  // SAFETY: sockaddr_un is a sockaddr for the socket API.
  if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
    return Error::from_errno("binding " + path, errno);
  if (::listen(listener_.get(), static_cast<int>(kMaxClients)) != 0)
    return Error::from_errno("listen " + path, errno);
  watch(listener_.get());
  return {};
}

void Client::watch(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  (void)::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev);
}

bool Client::send_hello(int fd) {
  Hello m{};
  std::memcpy(m.magic, kHelloMagic, sizeof m.magic);
  m.idx = idx_;
  m.gen = gen_;
  m.inode = file_->inode();
  iovec iov{&m, sizeof m};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  cmsghdr* cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  const int db = doorbell_.get();
  std::memcpy(CMSG_DATA(cm), &db, sizeof db);
  return ::sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(sizeof m);
}

void Client::connect_peers() {
  const uint32_t a = attached();
  std::lock_guard lk(mu_);
  for (uint32_t j = 0; j < kMaxClients; ++j) {
    if (j == idx_ || !(a & (1u << j))) continue;
    auto addr = unix_addr(file_->dir() + "/" + file_->socket_name(j));
    if (!addr) continue;
    UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    // SAFETY: sockaddr_un is a sockaddr for the socket API.
    if (!s || ::connect(s.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
      continue;  // that client is going away: its hang-up or the next reap clears it
    ucred cr{};
    socklen_t cl = sizeof cr;
    if (::getsockopt(s.get(), SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
        (cr.uid != ::geteuid() && cr.uid != 0)) {
      ++stats_.refused;
      continue;
    }
    if (!send_hello(s.get())) continue;
    const int fd = s.get();
    watch(fd);
    conn_peer_[fd] = static_cast<int>(j);
    peers_[j].conn = fd;
    conns_[fd] = std::move(s);
  }
}

uint32_t Client::attached() const {
  return at(file_->header().attached).load();
}
uint32_t Client::pending() const {
  return at(file_->header().slots[idx_].pending).load();
}

uint32_t Client::read_status() {
  const uint32_t p = at(file_->header().slots[idx_].pending).exchange(0);
  changed_.store(false);
  return (p & 0xffffu) | (attached() << 16);
}

bool Client::wants_interrupt() const {
  return pending() != 0 || changed_.load();
}

void Client::ring_own_doorbell() {
  const uint64_t one = 1;
  (void)!::write(doorbell_.get(), &one, sizeof one);
}

void Client::notify(uint32_t mask) {
  const uint32_t a = attached();
  const uint32_t targets = (mask == kAllButMe ? a & ~(1u << idx_) : mask & a) & 0xffffu;
  RegionHeader& h = file_->header();
  const uint64_t one = 1;
  std::lock_guard lk(mu_);
  ++stats_.notifies;
  for (uint32_t j = 0; j < kMaxClients; ++j) {
    if (!(targets & (1u << j))) continue;
    at(h.slots[j].pending).fetch_or(1u << idx_);
    const int fd = j == idx_ ? doorbell_.get() : peers_[j].doorbell.get();
    // A peer whose doorbell has not arrived yet is rung when it does (on_readable).
    if (fd >= 0 && ::write(fd, &one, sizeof one) == sizeof one) ++stats_.doorbells;
  }
}

void Client::service() {
  epoll_event evs[16];
  for (int round = 0; round < 4; ++round) {
    const int n = ::epoll_wait(ep_.get(), evs, 16, 0);
    if (n <= 0) return;
    for (int k = 0; k < n; ++k) {
      const int fd = evs[k].data.fd;
      if (fd != listener_.get()) {
        on_readable(fd);
        continue;
      }
      for (int a = 0; a < static_cast<int>(kMaxClients); ++a) {
        UniqueFd s(::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!s) break;
        ucred cr{};
        socklen_t cl = sizeof cr;
        std::lock_guard lk(mu_);
        if (::getsockopt(s.get(), SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
            (cr.uid != ::geteuid() && cr.uid != 0) || conns_.size() >= kMaxConnections) {
          ++stats_.refused;
          continue;
        }
        watch(s.get());
        conns_[s.get()] = std::move(s);
      }
    }
  }
}

void Client::on_readable(int fd) {
  Hello m{};
  iovec iov{&m, sizeof m};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(4 * sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  const ssize_t n = ::recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  std::vector<UniqueFd> fds;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int x;
      std::memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof x);
      fds.emplace_back(x);
    }
  }
  if (n <= 0) return drop_connection(fd);
  const RegionHeader& h = file_->header();
  const bool ok = n == static_cast<ssize_t>(sizeof m) && !(mh.msg_flags & MSG_CTRUNC) &&
                  std::memcmp(m.magic, kHelloMagic, sizeof m.magic) == 0 && m.idx < kMaxClients &&
                  m.idx != idx_ && m.inode == file_->inode() && fds.size() == 1 &&
                  std::atomic_ref<const uint64_t>(h.slots[m.idx].gen).load() == m.gen;
  bool joined = false;
  {
    std::lock_guard lk(mu_);
    if (!ok) {
      ++stats_.refused;
    } else if (auto it = conn_peer_.find(fd); it != conn_peer_.end()) {
      // The reply on a connection we opened: that peer's doorbell.
      if (it->second == static_cast<int>(m.idx)) {
        peers_[m.idx].doorbell = std::move(fds[0]);
        if (at(file_->header().slots[m.idx].pending).load() != 0) {
          const uint64_t one = 1;
          (void)!::write(peers_[m.idx].doorbell.get(), &one, sizeof one);
        }
        return;
      }
      ++stats_.refused;
    } else {
      // A client that attached after us: a stale connection for its slot goes.
      if (peers_[m.idx].conn >= 0 && peers_[m.idx].conn != fd) {
        const int old = peers_[m.idx].conn;
        conn_peer_.erase(old);
        (void)::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, old, nullptr);
        conns_.erase(old);
      }
      conn_peer_[fd] = static_cast<int>(m.idx);
      peers_[m.idx].conn = fd;
      peers_[m.idx].doorbell = std::move(fds[0]);
      ++stats_.peer_changes;
      joined = true;
      // If it is gone already, its connection goes now and peer_gone reaps its slot.
      if (send_hello(fd)) fd = -1;
    }
  }
  if (joined) {
    changed_.store(true);
    ring_own_doorbell();
  }
  if (fd >= 0) drop_connection(fd);
}

void Client::drop_connection(int fd) {
  int peer = -1;
  {
    std::lock_guard lk(mu_);
    (void)::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
    if (auto it = conn_peer_.find(fd); it != conn_peer_.end()) {
      peer = it->second;
      conn_peer_.erase(it);
      if (peers_[static_cast<size_t>(peer)].conn == fd) {
        peers_[static_cast<size_t>(peer)] = Peer{};
      } else {
        peer = -1;  // replaced by a newer connection already
      }
    }
    conns_.erase(fd);
  }
  if (peer >= 0) {
    peer_gone(static_cast<uint32_t>(peer));
  } else if (file_->lock()) {
    // A connection that closed before its hello: a client that died while attaching.
    const uint32_t reaped = file_->reap_dead(1u << idx_);
    file_->unlock();
    if (reaped) {
      changed_.store(true);
      ring_own_doorbell();
    }
  }
}

void Client::peer_gone(uint32_t j) {
  // A peer that died drops its socket and its slot lock as the kernel closes its files, in no
  // fixed order: give the lock a moment to go before reaping.
  if (file_->lock()) {
    for (int i = 0; i < 50 && (attached() & (1u << j)) && file_->slot_alive(j); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    file_->reap_dead(1u << idx_);
    file_->unlock();
  }
  {
    std::lock_guard lk(mu_);
    ++stats_.peer_changes;
  }
  changed_.store(true);
  ring_own_doorbell();
}

ClientStats Client::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

}  // namespace qvm::shm
