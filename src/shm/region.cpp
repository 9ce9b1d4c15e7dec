// See region.hpp and docs/shmem.md ("Region files").
#include "shm/region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "base/log.hpp"
#include "base/runtime_dir.hpp"

namespace qvm::shm {
namespace {

constexpr char kMagic[8] = {'Q', 'V', 'M', 'S', 'H', 'M', 0, 1};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kLockMembership = 0;
constexpr uint64_t kLockHolders = 1;
constexpr uint64_t kLockSlot0 = 16;

uint32_t load(const uint32_t& v) {
  return std::atomic_ref<const uint32_t>(v).load();
}

Error err(int e, std::string msg) {
  return Error{std::move(msg), e};
}

flock range(short type, uint64_t byte) {
  flock f{};
  f.l_type = type;
  f.l_whence = SEEK_SET;
  f.l_start = static_cast<off_t>(byte);
  f.l_len = 1;
  return f;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char ch : s) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  return h;
}

// Creates the region under a temporary name, fully initialized, then renames it into place
// without replacing: no reader ever sees a half-written header.
Result<bool> create_file(int dirfd, const std::string& file, std::string_view name, uint32_t pages,
                         mode_t mode) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp = strprintf("t.%d.%u", static_cast<int>(::getpid()), counter++);
  UniqueFd fd(
      ::openat(dirfd, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return err(errno, "creating a region file: " + std::string(std::strerror(errno)));
  auto fail = [&](int e, const std::string& what) {
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return err(e, what + ": " + std::strerror(e));
  };
  if (::fchmod(fd.get(), mode) != 0) return fail(errno, "setting the region file's mode");
  const off_t total = static_cast<off_t>((uint64_t{pages} + 1) * kPage);
  // Reserve every page now: a tmpfs that fills up later would otherwise end the first access
  // to an unbacked page with SIGBUS (in qvm) or EFAULT (in KVM_RUN).
  if (int e = ::posix_fallocate(fd.get(), 0, total); e != 0)
    return fail(e == ENOSPC ? ENOMEM : e, strprintf("reserving %llu KiB for region '%.*s'",
                                                    static_cast<unsigned long long>(total / 1024),
                                                    static_cast<int>(name.size()), name.data()));
  RegionHeader h{};
  std::memcpy(h.magic, kMagic, sizeof h.magic);
  h.version = kVersion;
  h.pages = pages;
  std::memcpy(h.name, name.data(), name.size());
  if (::pwrite(fd.get(), &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
    return fail(errno ? errno : EIO, "writing the region header");
  if (::renameat2(dirfd, tmp.c_str(), dirfd, file.c_str(), RENAME_NOREPLACE) != 0) {
    const int e = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    if (e == EEXIST) return false;  // another process created it first: attach to theirs
    return err(e, "naming the region file: " + std::string(std::strerror(e)));
  }
  return true;
}

}  // namespace

const char* gss_name(Gss s) {
  switch (s) {
    case Gss::kOk:
      return "GSS_OK";
    case Gss::kUnknownFailure:
      return "GSS_UNKNOWN_FAILURE";
    case Gss::kNoMem:
      return "GSS_NOMEM";
    case Gss::kClientMax:
      return "GSS_CLIENT_MAX";
    case Gss::kIllegalName:
      return "GSS_ILLEGAL_NAME";
    case Gss::kNoPermission:
      return "GSS_NO_PERMISSION";
    case Gss::kDoesNotExist:
      return "GSS_DOES_NOT_EXIST";
  }
  return "?";
}

Gss gss_from(const Error& e) {
  switch (e.sys_errno) {
    case ENOENT:
      return Gss::kDoesNotExist;
    case ENOMEM:
    case ENOSPC:
    case EFBIG:
      return Gss::kNoMem;
    case EUSERS:
      return Gss::kClientMax;
    case EINVAL:
    case ENAMETOOLONG:
      return Gss::kIllegalName;
    case EACCES:
    case EPERM:
      return Gss::kNoPermission;
    default:
      return Gss::kUnknownFailure;
  }
}

Status check_name(std::string_view name) {
  if (name.empty() || name.size() >= kNameMax)
    return err(EINVAL,
               strprintf("a region name has 1-%zu bytes, this one %zu", kNameMax - 1, name.size()));
  if (name.find('\0') != std::string_view::npos)
    return err(EINVAL, "a region name cannot contain NUL");
  return {};
}

std::string region_file_name(std::string_view name) {
  std::string out = "r.";
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '-')
      out += static_cast<char>(c);
    else
      out += strprintf("%%%02x", c);
  }
  return out;
}

std::string default_dir() {
  return base::runtime_dir() + "/shm";
}

Result<std::unique_ptr<RegionFile>> RegionFile::open_locked(const std::string& dir,
                                                            std::string_view name, uint32_t pages,
                                                            Mode mode, mode_t file_mode) {
  QVM_TRY(check_name(name));
  QVM_TRY(base::private_dir(dir));
  std::unique_ptr<RegionFile> r(new RegionFile());
  r->dir_path_ = dir;
  r->name_ = std::string(name);
  r->file_ = region_file_name(name);
  r->dir_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!r->dir_) return Error::from_errno("opening " + dir, errno);
  const char* file = r->file_.c_str();
  // A last client may remove the file between our open and our lock: then start again.
  for (int attempt = 0;; ++attempt) {
    if (attempt == 8) return err(EAGAIN, "region '" + r->name_ + "' keeps changing; try again");
    r->fd_.reset(::openat(r->dir_.get(), file, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!r->fd_) {
      if (errno != ENOENT) return Error::from_errno("opening region '" + r->name_ + "'", errno);
      if (mode == Mode::kAttachOnly) return err(ENOENT, "no region '" + r->name_ + "'");
      if (pages == 0 || pages > kMaxPages)
        return err(ENOMEM, strprintf("region '%s' does not exist and %u pages cannot create it "
                                     "(1-%u)",
                                     r->name_.c_str(), pages, kMaxPages));
      QVM_TRY(create_file(r->dir_.get(), r->file_, name, pages, file_mode));
      continue;
    }
    QVM_TRY(r->lock());
    struct stat st {};
    if (::fstat(r->fd_.get(), &st) != 0) return Error::from_errno("fstat region", errno);
    if (st.st_nlink == 0) {
      r->unlock();
      continue;
    }
    if (!S_ISREG(st.st_mode)) return err(EINVAL, "region file " + r->file_ + " is not a file");
    if (st.st_uid != ::geteuid())
      return err(EACCES,
                 strprintf("region file %s/%s belongs to uid %u, not %u", dir.c_str(), file,
                           static_cast<unsigned>(st.st_uid), static_cast<unsigned>(::geteuid())));
    if (st.st_size < static_cast<off_t>(2 * kPage) ||
        st.st_size > static_cast<off_t>((uint64_t{kMaxPages} + 1) * kPage) ||
        st.st_size % static_cast<off_t>(kPage))
      return err(EINVAL, "region file " + r->file_ + " has a bad size");
    r->ino_ = st.st_ino;
    void* m = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd_.get(), 0);
    if (m == MAP_FAILED) return Error::from_errno("mapping the region header", errno);
    r->hdr_ = static_cast<RegionHeader*>(m);
    const RegionHeader& h = *r->hdr_;
    if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.version != kVersion ||
        (uint64_t{h.pages} + 1) * kPage != static_cast<uint64_t>(st.st_size) ||
        std::string_view(h.name, strnlen(h.name, kNameMax)) != name)
      return err(EINVAL, "region file " + r->file_ + " is not a qvm region of this version");
    r->pages_ = h.pages;
    return r;
  }
}

RegionFile::~RegionFile() {
  if (hdr_) ::munmap(hdr_, kPage);
  // Closing the file description drops its OFD locks (membership, holder, slot).
}

Status RegionFile::lock() {
  // Bounded: the other holders of this lock are qvm processes in short critical sections.
  for (int i = 0; i < 2000; ++i) {
    if (try_lock_byte(kLockMembership, true)) {
      locked_ = true;
      return {};
    }
    if (errno != EAGAIN && errno != EACCES && errno != EINTR)
      return Error::from_errno("locking region '" + name_ + "'", errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return err(EBUSY, "region '" + name_ + "' stayed locked for 2 s");
}

void RegionFile::unlock() {
  if (locked_) unlock_byte(kLockMembership);
  locked_ = false;
}

bool RegionFile::try_lock_byte(uint64_t byte, bool write) {
  flock f = range(write ? F_WRLCK : F_RDLCK, byte);
  return ::fcntl(fd_.get(), F_OFD_SETLK, &f) == 0;
}

void RegionFile::unlock_byte(uint64_t byte) {
  flock f = range(F_UNLCK, byte);
  (void)::fcntl(fd_.get(), F_OFD_SETLK, &f);
}

bool RegionFile::byte_locked_by_other(uint64_t byte, bool write) const {
  flock f = range(write ? F_WRLCK : F_RDLCK, byte);
  if (::fcntl(fd_.get(), F_OFD_GETLK, &f) != 0) return true;  // unknown: assume alive
  return f.l_type != F_UNLCK;
}

bool RegionFile::slot_alive(uint32_t i) const {
  return byte_locked_by_other(kLockSlot0 + i, false);
}

bool RegionFile::holders_alive() const {
  return byte_locked_by_other(kLockHolders, true);
}

uint32_t RegionFile::reap_dead(uint32_t own) {
  uint32_t reaped = 0;
  std::atomic_ref<uint32_t> attached(hdr_->attached);
  const uint32_t a = attached.load();
  for (uint32_t i = 0; i < kMaxClients; ++i) {
    if (!(a & (1u << i)) || (own & (1u << i)) || slot_alive(i)) continue;
    attached.fetch_and(~(1u << i));
    std::atomic_ref<uint32_t>(hdr_->slots[i].pending).store(0);
    std::atomic_ref<uint32_t>(hdr_->slots[i].pid).store(0);
    ::unlinkat(dir_.get(), socket_name(i).c_str(), 0);
    reaped |= 1u << i;
  }
  return reaped;
}

void RegionFile::remove_if_unused() {
  if (load(hdr_->attached) != 0 || holders_alive()) return;
  struct stat st {};
  if (::fstat(fd_.get(), &st) == 0 && st.st_nlink > 0) ::unlinkat(dir_.get(), file_.c_str(), 0);
}

std::string RegionFile::socket_name(uint32_t i) const {
  return strprintf("s.%016llx.%u", static_cast<unsigned long long>(fnv1a(file_)), i);
}

Result<std::unique_ptr<Holder>> Holder::create(const std::string& dir, std::string_view name,
                                               uint32_t pages, mode_t file_mode) {
  auto f = QVM_TRY(
      RegionFile::open_locked(dir, name, pages, RegionFile::Mode::kCreateOrAttach, file_mode));
  f->reap_dead();
  if (!f->try_lock_byte(kLockHolders, false)) {
    const int e = errno;
    f->unlock();
    return Error::from_errno("holding region '" + std::string(name) + "'", e);
  }
  f->unlock();
  std::unique_ptr<Holder> h(new Holder());
  h->file_ = std::move(f);
  return h;
}

Holder::~Holder() {
  if (!file_ || !file_->lock()) return;
  file_->unlock_byte(kLockHolders);
  file_->reap_dead();
  file_->remove_if_unused();
  file_->unlock();
}

}  // namespace qvm::shm
