// The shmem factory page (vdev/shmem/factory_page.hpp, spec §11.3) against a fake host: register
// layout, name handling, allow/deny, the status codes and what a failed request leaves.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "vdev/shmem/factory_page.hpp"

namespace qvm::vdev::shmem {
namespace {

class FakeHost final : public FactoryHost {
 public:
  struct Call {
    std::string name;
    uint32_t pages;
    bool create;
  };
  std::vector<Call> calls;
  Result<Attached> next = Attached{0x100000000ull, 4};
  Result<Attached> attach(std::string_view name, uint32_t pages, bool create) override {
    calls.push_back({std::string(name), pages, create});
    return next;
  }
};

uint64_t rd(FactoryPage& f, uint64_t off, size_t n) {
  uint8_t b[8] = {};
  f.read(off, std::span<uint8_t>(b, n));
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | b[i];
  return v;
}
void wr(FactoryPage& f, uint64_t off, uint64_t v, size_t n) {
  uint8_t b[8];
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  f.write(off, std::span<const uint8_t>(b, n));
}
void name(FactoryPage& f, const char* s) {
  char n[32] = {};
  std::strncpy(n, s, sizeof n);
  for (size_t i = 0; i < 32; i += 4) {
    uint32_t w;
    std::memcpy(&w, n + i, 4);
    wr(f, FactoryPage::kRegName + i, w, 4);
  }
}

TEST(ShmemFactory, SignatureVectorAndReadOnlyRegisters) {
  FakeHost h;
  FactoryPage f(h, 17, NamePolicy{});
  EXPECT_EQ(rd(f, 0, 8), 0x4d534732474d5651ull);
  EXPECT_EQ(rd(f, 0, 4), 0x474d5651ull);  // any width
  EXPECT_EQ(rd(f, 4, 4), 0x4d534732ull);
  EXPECT_EQ(rd(f, FactoryPage::kRegVector, 4), 17u);
  wr(f, 0, 0, 8);
  wr(f, FactoryPage::kRegVector, 3, 4);
  wr(f, FactoryPage::kRegStatus, 5, 4);
  EXPECT_EQ(rd(f, 0, 8), 0x4d534732474d5651ull);
  EXPECT_EQ(rd(f, FactoryPage::kRegVector, 4), 17u);
  EXPECT_EQ(rd(f, FactoryPage::kRegStatus, 4), 0u);
  EXPECT_EQ(rd(f, 0x800, 8), 0u);  // beyond the registers
  EXPECT_TRUE(h.calls.empty());
}

TEST(ShmemFactory, SizeWriteCreatesOrAttachesTheNamedRegion) {
  FakeHost h;
  FactoryPage f(h, 5, NamePolicy{});
  name(f, "region-a");
  EXPECT_EQ(rd(f, FactoryPage::kRegName, 8), 0x612d6e6f69676572ull);  // the name reads back
  wr(f, FactoryPage::kRegSize, 16, 4);
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].name, "region-a");
  EXPECT_EQ(h.calls[0].pages, 16u);
  EXPECT_TRUE(h.calls[0].create);
  EXPECT_EQ(rd(f, FactoryPage::kRegStatus, 4), 0u);
  EXPECT_EQ(rd(f, FactoryPage::kRegShmem, 8), 0x100000000ull);
  EXPECT_EQ(rd(f, FactoryPage::kRegSize, 4), 4u);  // the region's actual size
  wr(f, FactoryPage::kRegFind, 1, 4);
  ASSERT_EQ(h.calls.size(), 2u);
  EXPECT_FALSE(h.calls[1].create);
}

TEST(ShmemFactory, NamesWithoutNulOrEmptyAreIllegal) {
  FakeHost h;
  FactoryPage f(h, 5, NamePolicy{});
  for (size_t i = 0; i < 32; ++i) wr(f, FactoryPage::kRegName + i, 'x', 1);
  wr(f, FactoryPage::kRegSize, 1, 4);
  EXPECT_EQ(rd(f, FactoryPage::kRegStatus, 4), static_cast<uint32_t>(shm::Gss::kIllegalName));
  EXPECT_EQ(rd(f, FactoryPage::kRegShmem, 8), FactoryPage::kInvalidAddress);
  name(f, "");
  wr(f, FactoryPage::kRegSize, 1, 4);
  EXPECT_EQ(rd(f, FactoryPage::kRegStatus, 4), static_cast<uint32_t>(shm::Gss::kIllegalName));
  EXPECT_TRUE(h.calls.empty());
  EXPECT_EQ(f.failures(), 2u);
}

TEST(ShmemFactory, HostErrorsBecomeTheirStatusCodes) {
  FakeHost h;
  FactoryPage f(h, 5, NamePolicy{});
  name(f, "r");
  const std::pair<int, shm::Gss> cases[] = {{ENOENT, shm::Gss::kDoesNotExist},
                                            {ENOMEM, shm::Gss::kNoMem},
                                            {EUSERS, shm::Gss::kClientMax},
                                            {EACCES, shm::Gss::kNoPermission},
                                            {EIO, shm::Gss::kUnknownFailure}};
  for (const auto& [e, gss] : cases) {
    h.next = Error{"x", e};
    wr(f, FactoryPage::kRegSize, 1, 4);
    EXPECT_EQ(rd(f, FactoryPage::kRegStatus, 4), static_cast<uint32_t>(gss)) << e;
    EXPECT_EQ(rd(f, FactoryPage::kRegShmem, 8), FactoryPage::kInvalidAddress);
  }
  h.next = FactoryHost::Attached{0x200000000ull, 2};
  wr(f, FactoryPage::kRegSize, 1, 4);
  EXPECT_EQ(rd(f, FactoryPage::kRegStatus, 4), 0u);
  EXPECT_TRUE(f.last_error().empty());
}

TEST(ShmemFactory, AllowAndDenyWithTheDocumentedDefault) {
  EXPECT_TRUE(NamePolicy().permits("any"));
  NamePolicy only_allow({{true, "hc_*"}});
  EXPECT_TRUE(only_allow.permits("hc_shmem"));
  EXPECT_FALSE(only_allow.permits("other"));  // naming `allow` makes deny the default
  NamePolicy only_deny({{false, "secret*"}});
  EXPECT_FALSE(only_deny.permits("secret1"));
  EXPECT_TRUE(only_deny.permits("public"));
  NamePolicy both({{true, "k*"}, {false, "*-no"}});
  EXPECT_TRUE(both.permits("kit"));
  EXPECT_FALSE(both.permits("kit-no"));  // the last matching rule decides
  EXPECT_TRUE(both.permits("zzz"));      // both kinds named: allow
  FakeHost h;
  FactoryPage f(h, 5, only_allow);
  name(f, "other");
  wr(f, FactoryPage::kRegSize, 1, 4);
  EXPECT_EQ(rd(f, FactoryPage::kRegStatus, 4), static_cast<uint32_t>(shm::Gss::kNoPermission));
  EXPECT_TRUE(h.calls.empty());
}

TEST(ShmemFactory, OneAccessWritingNameBytesAndTheTriggerUsesTheNewName) {
  FakeHost h;
  FactoryPage f(h, 5, NamePolicy{});
  name(f, "abc");
  // An 8-byte write at 0x38: the last name bytes (0x38-0x3b) and `find` (0x3c).
  wr(f, 0x38, 0x0000000100000000ull, 8);
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].name, "abc");
  EXPECT_FALSE(h.calls[0].create);
}

}  // namespace
}  // namespace qvm::vdev::shmem
