// Fuzz target: the shmem vdev's registers as a guest drives them: the factory page (name bytes,
// size and find triggers, any width and offset) and the control pages of its attachments
// (status, idx, notify, detach), over real region files and clients in a private directory, as
// vdev/shmem/device.cpp wires them.
// Input: operations {op, offset, value le64}. op & 3: 0 factory read, 1 factory write,
// 2 control read, 3 control write; (op >> 2) & 3: size 1/2/4/8; (op >> 4): attachment.
// Properties: no crash or sanitizer report; after each request the status is one of the seven
// codes, a success's `shmem` names a live attachment's window and a failure's is all ones; a
// control page's status shows its client attached, and a second status read has no pending
// bits unless a notify came between (from any attachment: the fuzzer may attach one region
// several times).
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "fuzz_input.hpp"
#include "shm/client.hpp"
#include "vdev/shmem/factory_page.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
using namespace qvm::vdev::shmem;

constexpr uint64_t kWindow = 0x100000000ull;

uint32_t le32(const uint8_t* b) {
  return uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
}

std::string base_dir;

void remove_dirs() {
  (void)::rmdir((base_dir + "/shm").c_str());  // empty: every client detached
  (void)::rmdir(base_dir.c_str());
}

std::string dir() {
  static std::string d = [] {
    char t[] = "/tmp/qvm-fuzz-shm.XXXXXX";
    base_dir = ::mkdtemp(t);
    std::atexit(remove_dirs);
    return base_dir + "/shm";
  }();
  return d;
}

class Host final : public FactoryHost {
 public:
  std::array<std::unique_ptr<qvm::shm::Client>, 4> att;
  qvm::Result<Attached> attach(std::string_view name, uint32_t pages, bool create) override {
    size_t k = 0;
    while (k < att.size() && att[k]) ++k;
    if (k == att.size()) return qvm::Error{"full", ENOMEM};
    qvm::shm::ClientOptions o;
    o.dir = dir();
    o.pages = pages > 64 ? 64 : pages;  // keep the fuzzer's files small
    o.create = create;
    auto c = QVM_TRY(qvm::shm::Client::attach(name, o));
    att[k] = std::move(c);
    return Attached{kWindow + k * (1ull << 32), att[k]->pages()};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Host h;
  FactoryPage f(h, 11, NamePolicy({{true, "*"}, {false, "*-no*"}}));
  static constexpr size_t kSizes[4] = {1, 2, 4, 8};
  Input in(data, size);
  std::array<bool, 4> notified{};
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const size_t n = kSizes[(op >> 2) & 3];
    const uint64_t offset = in.u8() % 0x48;
    const uint64_t v = in.u64();
    uint8_t buf[8];
    for (size_t i = 0; i < n; ++i) buf[i] = static_cast<uint8_t>(v >> (8 * i));
    const size_t k = (op >> 4) % h.att.size();
    switch (op & 3) {
      case 0:
        f.read(offset, std::span<uint8_t>(buf, n));
        break;
      case 1: {
        const uint64_t before = f.requests();
        f.write(offset, std::span<const uint8_t>(buf, n));
        if (f.requests() == before) break;  // no request: nothing to check
        uint8_t r[8];
        f.read(FactoryPage::kRegStatus, std::span<uint8_t>(r, 4));
        const uint32_t st = le32(r);
        check(st <= static_cast<uint32_t>(qvm::shm::Gss::kDoesNotExist));
        f.read(FactoryPage::kRegShmem, std::span<uint8_t>(r, 8));
        uint64_t shmem = 0;
        for (size_t i = 8; i-- > 0;) shmem = (shmem << 8) | r[i];
        if (st != 0) {
          check(shmem == FactoryPage::kInvalidAddress);
        } else {
          check(shmem >= kWindow && (shmem - kWindow) % (1ull << 32) == 0);
          const size_t a = (shmem - kWindow) >> 32;
          check(a < h.att.size() && h.att[a] != nullptr);
        }
        break;
      }
      case 2: {
        qvm::shm::Client* c = h.att[k].get();
        if (!c) break;
        control_read(offset % 16, std::span<uint8_t>(buf, n), c->index(),
                     [&] { return c->read_status(); });
        if (offset % 16 == 0 && n >= 4) {
          const uint32_t st = le32(buf);
          check(((st >> 16) & (1u << c->index())) != 0);  // attached, itself among them
          if (!notified[k]) check((st & 0xffff) == 0);
          notified[k] = false;
          check((c->read_status() & 0xffff) == 0);
        }
        break;
      }
      case 3: {
        qvm::shm::Client* c = h.att[k].get();
        if (!c) break;
        const ControlWrite w = decode_control_write(offset % 16, std::span<const uint8_t>(buf, n));
        if (w.notify) {
          c->notify(w.notify_mask);
          notified.fill(true);  // another attachment of the same region may be a target
        }
        if (w.detach) {
          h.att[k].reset();
          notified[k] = false;
        }
        break;
      }
    }
  }
  return 0;
}
