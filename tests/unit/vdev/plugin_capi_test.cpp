// The C functions of include/qvm/ that loadable vdevs call (src/vdev/plugin/capi.cpp), and the
// loader's lookups that need no object. Loading real objects is tested through the qvm binary
// (tests/vdev: it exports the API; this test executable does not).
#include <gtest/gtest.h>
#include <qvm/gasp.h>
#include <qvm/guest.h>
#include <qvm/pci.h>
#include <qvm/utils.h>
#include <qvm/vdev-core.h>
#include <qvm/vio.h>

#include <cerrno>

#include "vdev/plugin/guest_cpu.hpp"
#include "vdev/plugin/plugin.hpp"

namespace {

uint64_t num(const char* s, unsigned flags = 0) {
  uint64_t v = 12345;
  EXPECT_EQ(qvm_parse_num(s, flags, &v, nullptr), 0) << s;
  return v;
}

int num_errno(const char* s, unsigned flags = 0) {
  uint64_t v = 0;
  errno = 0;
  EXPECT_EQ(qvm_parse_num(s, flags, &v, nullptr), -1) << s;
  return errno;
}

TEST(VdevCApi, ParseNumAcceptsTheConfigurationLanguagesForms) {
  EXPECT_EQ(num("0"), 0u);
  EXPECT_EQ(num("4096"), 4096u);
  EXPECT_EQ(num("0x1C05"), 0x1c05u);
  EXPECT_EQ(num("0d16384"), 16384u);
  EXPECT_EQ(num("16M", QPNF_SIZE_SUFFIX), 16u << 20);
  EXPECT_EQ(num("4k", QPNF_SIZE_SUFFIX), 4096u);
  EXPECT_EQ(num("-1", QPNF_NEGATIVE), UINT64_MAX);
  EXPECT_EQ(num("0xffffffffffffffff"), UINT64_MAX);
}

TEST(VdevCApi, ParseNumRejectsWhatItWasNotAskedToAccept) {
  EXPECT_EQ(num_errno(""), EINVAL);
  EXPECT_EQ(num_errno("0x"), EINVAL);
  EXPECT_EQ(num_errno("12abc"), EINVAL);
  EXPECT_EQ(num_errno("16M"), EINVAL);  // no QPNF_SIZE_SUFFIX
  EXPECT_EQ(num_errno("-1"), EINVAL);   // no QPNF_NEGATIVE
  EXPECT_EQ(num_errno("0x10000000000000000"), ERANGE);
  EXPECT_EQ(num_errno("99999999999999999999"), ERANGE);
  EXPECT_EQ(num_errno("0x8000000000000000k", QPNF_SIZE_SUFFIX), ERANGE);
  uint64_t v = 0;
  EXPECT_EQ(qvm_parse_num(nullptr, 0, &v, nullptr), -1);
  EXPECT_EQ(qvm_parse_num("1", 0x80, &v, nullptr), -1);  // unknown flag
}

TEST(VdevCApi, ParseNumStopsAtTrailingTextWhenAsked) {
  uint64_t v = 0;
  const char* end = nullptr;
  const char s[] = "0x20,rest";
  ASSERT_EQ(qvm_parse_num(s, QPNF_TRAILING, &v, &end), 0);
  EXPECT_EQ(v, 0x20u);
  EXPECT_EQ(end, s + 4);
}

TEST(VdevCApi, GuestCpuMovesTheAccessDataOneWayEach) {
  uint8_t data[4] = {0x78, 0x56, 0x34, 0x12};
  const qvm_state_block blk{0, 4, QST_DATA, 0};
  guest_cpu wr{data, 4, false};  // a vwrite: the vdev reads the value
  uint32_t v = 0;
  ASSERT_EQ(guest_cpu_read(&wr, 0, &blk, 1, &v, sizeof v), 0);
  EXPECT_EQ(v, 0x12345678u);
  EXPECT_EQ(guest_cpu_write(&wr, 0, &blk, 1, &v, sizeof v), -1);  // not a read
  EXPECT_EQ(errno, EINVAL);
  uint8_t out[2] = {};
  guest_cpu rd{out, 2, true};  // a 2-byte vread: only 2 bytes are stored
  const qvm_state_block blk2{0, 2, QST_DATA, 0};
  const uint32_t w = 0xaabbccdd;
  ASSERT_EQ(guest_cpu_write(&rd, 0, &blk2, 1, &w, sizeof w), 0);
  EXPECT_EQ(out[0], 0xdd);
  EXPECT_EQ(out[1], 0xcc);
  // Bad arguments fail the call: several blocks, a flag, no buffer, no gcp (no guest memory).
  EXPECT_EQ(guest_cpu_read(&wr, 0, &blk, 2, &v, sizeof v), -1);
  EXPECT_EQ(guest_cpu_read(&wr, 1, &blk, 1, &v, sizeof v), -1);
  EXPECT_EQ(guest_cpu_read(&wr, 0, &blk, 1, nullptr, 4), -1);
  EXPECT_EQ(guest_cpu_read(nullptr, 0, &blk, 1, &v, sizeof v), -1);
}

TEST(VdevCApi, ErrnoMapsToAVrsResult) {
  EXPECT_EQ(guest_cpu_to_vrs(0), VRS_NORMAL);
  EXPECT_EQ(static_cast<unsigned>(guest_cpu_to_vrs(EFAULT)), VRS_ERRNO + unsigned{EFAULT});
  EXPECT_EQ(guest_cpu_to_vrs(-1), VRS_BUS_ERROR);
}

TEST(VdevCApi, CallsWithoutAnInstanceFailInsteadOfCrashing) {
  vdev_s fake{};
  EXPECT_EQ(guest_timer_create(&fake, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(gasp_map_vdma(&fake, 0, 4096, GMF_READ), nullptr);
  EXPECT_EQ(guest_msi_signal(nullptr, 0xfee00000, 0x30), -1);
  guest_intr bad{nullptr, 5, 999999};
  EXPECT_EQ(guest_intr_signal(&bad, GIS_ON), -1);
  EXPECT_EQ(guest_intr_signal(nullptr, GIS_ON), -1);
  guest_terminate(&fake, 33);  // ignored: not an instance
  vpci_ids ids{0x1c05, 0x7f01, 0, 0, 0xff0000, 0};
  EXPECT_EQ(vpci_set_ids(&fake, &ids), -1);
  EXPECT_EQ(vpci_add_bar(&fake, 0, 4096, VPCI_BAR_MEM), -1);
  qvm_state_block blk{0xd0010000, 0x1000, QST_MEMORY, 0};
  EXPECT_EQ(gasp_region_set_soft(&fake, &blk, GRF_VIRT_RD | GRF_VIRT_WR, 1), -1);
  EXPECT_EQ(errno, EINVAL);
  gasp_lock(nullptr);  // recursive
  gasp_lock(nullptr);
  gasp_unlock(nullptr);
  gasp_unlock(nullptr);
  vio_description d{};
  d.device_type = 63;
  d.num_queues = 1;
  d.queue_size[0] = 64;
  vio_ops ops{};
  EXPECT_EQ(vio_init(&fake, &d, &ops), -1);
  vio_chain chain{};
  EXPECT_EQ(vio_queue_pop(&fake, 0, &chain), -1);  // outside notify(): refused
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(vio_queue_push(&fake, 0, 0, 0), -1);
}

TEST(VdevCApi, RegistrationOutsideALoadIsRefused) {
  vdev_factory f{};
  f.name = "late";
  EXPECT_EQ(vdev_register_factory(&f, QVM_VDEV_ABI), EPERM);
}

TEST(VdevLoader, NamesThatAreNotTypesAreNeverLookedUpAsFiles) {
  for (const char* t : {"../x", "a/b", "", ".hidden", "x y"}) {
    auto r = qvm::vdev::plugin::find_or_load(t, "/tmp");
    ASSERT_TRUE(r) << t;
    EXPECT_EQ(*r, nullptr) << t;
  }
  auto none = qvm::vdev::plugin::find_or_load("no-such-type-here", "/nonexistent");
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, nullptr);
  EXPECT_EQ(qvm::vdev::plugin::factory_for("no-such-type-here"), nullptr);
}

}  // namespace
