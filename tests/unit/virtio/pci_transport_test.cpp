// virtio-pci modern transport (virtio 1.2 §4.1): identity, capabilities, BAR sizing, the common
// configuration state machine and every malformed access, with a fake device.
#include <gtest/gtest.h>

#include <array>

#include "pci_test_util.hpp"
#include "virtio/queue/testing/mock_driver.hpp"
#include "virtio/virtio_defs.hpp"

namespace qvm::virtio {
namespace {

using testing::MockDriver;
using testing::PciGuest;

class FakeDevice final : public VirtioDevice {
 public:
  uint16_t sizes[2] = {64, 16};
  std::array<uint8_t, 8> config{1, 2, 3, 4, 5, 6, 7, 8};
  int activations = 0, resets = 0;
  VirtioInterrupt* irq = nullptr;

  uint32_t device_type() const override { return kDeviceIdBlock; }
  uint64_t device_features() const override { return feature_bit(0) | feature_bit(40); }
  std::span<const uint16_t> queue_max_sizes() const override { return sizes; }
  uint32_t config_size() const override { return static_cast<uint32_t>(config.size()); }
  void read_config(uint32_t off, std::span<uint8_t> d) const override {
    for (size_t i = 0; i < d.size(); ++i) d[i] = config[off + i];
  }
  void write_config(uint32_t off, std::span<const uint8_t> d) override {
    for (size_t i = 0; i < d.size(); ++i) config[off + i] = d[i];
  }
  Status activate(ActivationContext& c) override {
    ++activations;
    irq = &c.interrupt;
    return {};
  }
  void reset() override {
    ++resets;
    irq = nullptr;
  }
  void process_queue(uint16_t) override {}
};

// Common configuration offsets (§4.1.4.3).
constexpr uint64_t kDfSel = 0x00, kDf = 0x04, kGfSel = 0x08, kGf = 0x0c, kMsixCfg = 0x10,
                   kNumQ = 0x12, kStatus = 0x14, kGen = 0x15, kQSel = 0x16, kQSize = 0x18,
                   kQMsix = 0x1a, kQEnable = 0x1c, kQNotifyOff = 0x1e, kQDesc = 0x20,
                   kQDriver = 0x28, kQDevice = 0x30;
constexpr uint8_t kBar = PciTransport::kVirtioBar;
constexpr uint32_t kOkAll = kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk;

struct PciTransportTest : ::testing::Test {
  memory::GuestMemory mem;
  std::shared_ptr<FakeDevice> dev = std::make_shared<FakeDevice>();
  std::vector<bool> intx;
  std::vector<std::pair<uint16_t, bool>> hook_calls;
  std::shared_ptr<PciTransport> t;
  pci::PciRoot root;
  std::unique_ptr<PciGuest> g;
  std::unique_ptr<MockDriver> drv;

  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
    drv = std::make_unique<MockDriver>(mem, 64);
    t = std::make_shared<PciTransport>(
        mem, dev, nullptr, [this](bool l) { intx.push_back(l); }, PciOptions{});
    t->set_queue_ready_hook([this](uint16_t q, bool r) { hook_calls.emplace_back(q, r); });
    g = std::make_unique<PciGuest>(root, t);
    g->enable_memory();
  }
  void negotiate(uint64_t f) {
    g->set_common(kStatus, 1, kStatusAcknowledge);
    g->set_common(kStatus, 1, kStatusAcknowledge | kStatusDriver);
    g->set_common(kGfSel, 4, 0);
    g->set_common(kGf, 4, static_cast<uint32_t>(f));
    g->set_common(kGfSel, 4, 1);
    g->set_common(kGf, 4, static_cast<uint32_t>(f >> 32));
    g->set_common(kStatus, 1, kOkAll);
  }
  void setup_queue0() {
    g->set_common(kQSel, 2, 0);
    g->set_common(kQSize, 2, 64);
    g->set_common(kQDesc, 8, drv->desc_addr());
    g->set_common(kQDriver, 4, drv->avail_addr());  // 32-bit halves
    g->set_common(kQDriver + 4, 4, 0);
    g->set_common(kQDevice, 8, drv->used_addr());
    g->set_common(kQEnable, 2, 1);
  }
};

TEST_F(PciTransportTest, IdentityAndHeader) {
  EXPECT_EQ(g->cfg_read(0x00, 4), 0x10421af4u);   // 1AF4:1040+2
  EXPECT_EQ(g->cfg_read(0x08, 1), 1u);            // revision 1 (§4.1.2.1)
  EXPECT_EQ(g->cfg_read(0x09, 4) >> 8, 0x0100u);  // mass storage / SCSI
  EXPECT_EQ(g->cfg_read(0x2c, 2), 0x1c05u);       // QNX subsystem vendor
  EXPECT_EQ(g->cfg_read(0x2e, 2), 0x1042u);
  EXPECT_EQ(g->cfg_read(0x3d, 1), 1u);  // INTA#
  EXPECT_NE(g->cfg_read(0x06, 2) & 0x10, 0u);
  auto custom =
      std::make_shared<PciTransport>(mem, dev, nullptr, nullptr, PciOptions{0x1af4, 0x0c0330});
  EXPECT_EQ(custom->config().read(0x09, 4) >> 8, 0x0c03u);
  EXPECT_EQ(custom->config().read(0x2c, 2), 0x1af4u);
}

TEST_F(PciTransportTest, CapabilityWalkFindsEveryStructure) {
  g->walk();
  const auto& caps = g->caps();
  ASSERT_EQ(caps.size(), 5u);
  EXPECT_EQ(caps.at(1).bar, kBar);
  EXPECT_EQ(caps.at(1).offset, 0x0000u);
  EXPECT_GE(caps.at(1).length, 0x38u);
  EXPECT_EQ(caps.at(2).offset, 0x3000u);
  EXPECT_EQ(caps.at(2).length, 8u);  // two queues × multiplier 4
  EXPECT_EQ(g->cfg_read(static_cast<uint16_t>(caps.at(2).at + 16), 4), 4u);
  EXPECT_EQ(g->cfg_read(static_cast<uint16_t>(caps.at(2).at + 2), 1), 20u);  // cap_len
  EXPECT_EQ(caps.at(3).offset, 0x1000u);
  EXPECT_EQ(caps.at(3).length, 1u);
  EXPECT_EQ(caps.at(4).offset, 0x2000u);
  EXPECT_EQ(caps.at(4).length, 8u);
  EXPECT_EQ(g->cfg_read(static_cast<uint16_t>(caps.at(5).at + 2), 1), 20u);
  ASSERT_EQ(g->other_caps().count(0x11), 1u);  // MSI-X
  const uint16_t msix = g->other_caps().at(0x11);
  EXPECT_EQ(g->cfg_read(static_cast<uint16_t>(msix + 2), 2), 2u);  // 3 vectors
  EXPECT_EQ(g->cfg_read(static_cast<uint16_t>(msix + 4), 4) & 7, PciTransport::kMsixBar);
  // Read-only capability bytes.
  g->cfg_write(static_cast<uint16_t>(caps.at(1).at + 8), 4, 0x1234);
  EXPECT_EQ(g->cfg_read(static_cast<uint16_t>(caps.at(1).at + 8), 4), 0u);
}

TEST_F(PciTransportTest, BarSizingAndLayoutQuery) {
  const auto bars = t->bars();
  ASSERT_EQ(bars.size(), 2u);
  g->cfg_write(0x20, 4, 0xffffffff);
  g->cfg_write(0x24, 4, 0xffffffff);
  EXPECT_EQ(g->cfg_read(0x20, 4), 0xffffc004u);  // 16 KiB, 64-bit, not prefetchable
  EXPECT_EQ(g->cfg_read(0x24, 4), 0xffffffffu);
  g->cfg_write(0x18, 4, 0xffffffff);
  EXPECT_EQ(g->cfg_read(0x18, 4), 0xfffff000u);  // 4 KiB, 32-bit
  for (const auto& b : bars) {
    EXPECT_FALSE(b.io);
    EXPECT_NE(t->bar_device(b.index), nullptr);
  }
  EXPECT_EQ(t->bar_device(0), nullptr);
  t->config().set_bar_address(kBar, 0x800000000ull);
  EXPECT_EQ(t->config().bar(kBar)->addr, 0x800000000ull);
  EXPECT_EQ(t->notify_match(1).offset, 0x3004u);
  EXPECT_EQ(t->notify_match(1).bar, kBar);
  EXPECT_EQ(t->num_queues(), 2u);
  // The bar device keeps the transport alive.
  auto region = t->bar_device(kBar);
  EXPECT_GE(t.use_count(), 3);
}

TEST_F(PciTransportTest, BarHookReportsDecodedAddresses) {
  std::vector<std::pair<uint8_t, std::optional<uint64_t>>> seen;
  t->set_bar_hook([&](uint8_t i, std::optional<uint64_t> a) { seen.emplace_back(i, a); });
  g->cfg_write(0x04, 2, 0);  // decoding off: both BARs unmapped
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_FALSE(seen[1].second.has_value());
  // Sizing and moving with decoding off reports nothing.
  g->cfg_write(0x20, 4, 0xffffffff);
  g->cfg_write(0x24, 4, 0xffffffff);
  g->cfg_write(0x20, 4, 0xe0000000);
  g->cfg_write(0x24, 4, 0);
  EXPECT_EQ(seen.size(), 2u);
  g->enable_memory();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[3], std::make_pair(uint8_t{kBar}, std::optional<uint64_t>(0xe0000000)));
  g->cfg_write(0x20, 4, 0xe0004000);  // moved while decoding
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[4].second, std::optional<uint64_t>(0xe0004000));
}

TEST_F(PciTransportTest, MemoryDecodingOffReadsAllOnes) {
  g->cfg_write(0x04, 2, 0);
  EXPECT_EQ(g->common(kNumQ, 2), 0xffffu);
  g->set_common(kStatus, 1, kStatusAcknowledge);
  g->enable_memory();
  EXPECT_EQ(g->common(kStatus, 1), 0u);
  EXPECT_EQ(g->common(kNumQ, 2), 2u);
}

TEST_F(PciTransportTest, FeatureNegotiation) {
  g->set_common(kDfSel, 4, 0);
  EXPECT_EQ(g->common(kDf, 4), (1u << 0) | (1u << kFeatureIndirectDesc) | (1u << kFeatureEventIdx));
  g->set_common(kDfSel, 4, 1);
  EXPECT_EQ(g->common(kDf, 4), (1u << (kFeatureVersion1 - 32)) | (1u << 8));
  g->set_common(kDfSel, 4, 7);  // out of range
  EXPECT_EQ(g->common(kDf, 4), 0u);
  negotiate(feature_bit(0) | feature_bit(3) | feature_bit(kFeatureVersion1));  // 3: unoffered
  EXPECT_EQ(g->common(kStatus, 1) & kStatusFeaturesOk, 0u);
  g->set_common(kStatus, 1, 0);
  negotiate(feature_bit(0));  // no VERSION_1
  EXPECT_EQ(g->common(kStatus, 1) & kStatusFeaturesOk, 0u);
  g->set_common(kStatus, 1, 0);
  g->set_common(kGfSel, 4, 5);  // out of range: write ignored
  g->set_common(kGf, 4, 0xffffffff);
  EXPECT_EQ(g->common(kGf, 4), 0u);
  negotiate(feature_bit(40) | feature_bit(kFeatureVersion1));
  EXPECT_EQ(g->common(kStatus, 1), kOkAll);
  g->set_common(kGfSel, 4, 1);
  EXPECT_EQ(g->common(kGf, 4), (1u << 8) | 1u);
  g->set_common(kGf, 4, 0);  // after FEATURES_OK: frozen
  EXPECT_EQ(t->driver_features(), feature_bit(40) | feature_bit(kFeatureVersion1));
}

TEST_F(PciTransportTest, QueueSetupRulesAndSelectOutOfRange) {
  negotiate(feature_bit(kFeatureVersion1));
  EXPECT_EQ(g->common(kNumQ, 2), 2u);
  g->set_common(kQSel, 2, 1);
  EXPECT_EQ(g->common(kQSize, 2), 16u);  // max size until written
  EXPECT_EQ(g->common(kQNotifyOff, 2), 1u);
  EXPECT_EQ(g->common(kQMsix, 2), PciTransport::kNoVector);
  g->set_common(kQSel, 2, 9);  // no such queue
  EXPECT_EQ(g->common(kQSize, 2), 0u);
  EXPECT_EQ(g->common(kQMsix, 2), PciTransport::kNoVector);
  g->set_common(kQSize, 2, 8);
  g->set_common(kQDesc, 8, 0x1000);
  g->set_common(kQEnable, 2, 1);
  EXPECT_EQ(g->common(kQEnable, 2), 0u);
  EXPECT_EQ(g->common(kQSel, 2), 9u);
  // Zero and non-power-of-two sizes are refused at enable time.
  g->set_common(kQSel, 2, 0);
  g->set_common(kQSize, 2, 0);
  g->set_common(kQDesc, 8, drv->desc_addr());
  g->set_common(kQDriver, 8, drv->avail_addr());
  g->set_common(kQDevice, 8, drv->used_addr());
  g->set_common(kQEnable, 2, 1);
  EXPECT_EQ(g->common(kQEnable, 2), 0u);
  g->set_common(kQSize, 2, 48);
  g->set_common(kQEnable, 2, 1);
  EXPECT_EQ(g->common(kQEnable, 2), 0u);
  g->set_common(kQSize, 2, 128);  // above the maximum
  g->set_common(kQEnable, 2, 1);
  EXPECT_EQ(g->common(kQEnable, 2), 0u);
  g->set_common(kQSize, 2, 64);
  g->set_common(kQDriver, 8, 0xfffff000);  // outside guest memory
  g->set_common(kQEnable, 2, 1);
  EXPECT_EQ(g->common(kQEnable, 2), 0u);
  EXPECT_TRUE(hook_calls.empty());
  setup_queue0();
  EXPECT_EQ(g->common(kQEnable, 2), 1u);
  ASSERT_EQ(hook_calls.size(), 1u);
  EXPECT_EQ(hook_calls[0], std::make_pair(uint16_t{0}, true));
  EXPECT_EQ(g->common(kQDriver, 8), drv->avail_addr());
  EXPECT_EQ(g->common(kQDriver + 4, 4), 0u);
  // Locked while enabled; queue_enable 0 is not allowed (§4.1.4.3.2).
  g->set_common(kQDesc, 4, 0x8000);
  g->set_common(kQSize, 2, 16);
  EXPECT_EQ(g->common(kQDesc, 8), drv->desc_addr());
  EXPECT_EQ(g->common(kQSize, 2), 64u);
  g->set_common(kQEnable, 2, 0);
  EXPECT_EQ(g->common(kQEnable, 2), 1u);
}

TEST_F(PciTransportTest, MalformedAccessesAreIgnored) {
  // Wrong widths and misaligned accesses to common configuration.
  g->set_common(kStatus, 4, kStatusAcknowledge);  // 32-bit write to an 8-bit field
  EXPECT_EQ(g->common(kStatus, 1), 0u);
  EXPECT_EQ(g->common(kNumQ, 4), 0u);       // 32-bit read over num_queues + status
  EXPECT_EQ(g->common(kNumQ + 1, 1), 0u);   // inside a field
  EXPECT_EQ(g->common(kQDesc + 2, 4), 0u);  // misaligned half
  EXPECT_EQ(g->common(0x100, 4), 0u);       // past the structure
  // Read-only fields.
  g->set_common(kNumQ, 2, 7);
  EXPECT_EQ(g->common(kNumQ, 2), 2u);
  g->set_common(kDf, 4, 0);
  g->set_common(kDfSel, 4, 0);
  EXPECT_NE(g->common(kDf, 4), 0u);
  g->set_common(kQNotifyOff, 2, 5);
  EXPECT_EQ(g->common(kQNotifyOff, 2), 0u);
  const uint32_t gen = static_cast<uint32_t>(g->common(kGen, 1));
  g->set_common(kGen, 1, gen + 1);
  EXPECT_EQ(g->common(kGen, 1), gen);
  // Vectors beyond the MSI-X table read back NO_VECTOR.
  g->set_common(kMsixCfg, 2, 3);
  EXPECT_EQ(g->common(kMsixCfg, 2), PciTransport::kNoVector);
  g->set_common(kMsixCfg, 2, 2);
  EXPECT_EQ(g->common(kMsixCfg, 2), 2u);
  g->set_common(kQMsix, 2, 0x7fff);
  EXPECT_EQ(g->common(kQMsix, 2), PciTransport::kNoVector);
  // ISR is read-only; the notify area is write-only and per slot.
  g->bar_write(kBar, 0x1000, 1, 0xff);
  EXPECT_EQ(t->isr(), 0u);
  EXPECT_EQ(g->bar_read(kBar, 0x3000, 2), 0u);
  g->bar_write(kBar, 0x3002, 2, 0);  // inside a slot
  g->bar_write(kBar, 0x3100, 2, 0);  // no such queue
  g->bar_write(kBar, 0x3000, 8, 0);  // too wide
  // Status: DEVICE_NEEDS_RESET cannot be set by the driver, bits cannot be cleared.
  negotiate(feature_bit(kFeatureVersion1));
  g->set_common(kStatus, 1, kOkAll | kStatusDeviceNeedsReset);
  EXPECT_EQ(g->common(kStatus, 1), kOkAll);
  g->set_common(kStatus, 1, kStatusAcknowledge);
  EXPECT_EQ(g->common(kStatus, 1), kOkAll);
  EXPECT_EQ(dev->activations, 0);
}

TEST_F(PciTransportTest, DeviceConfigurationIsBoundsChecked) {
  EXPECT_EQ(g->bar_read(kBar, 0x2003, 1), 4u);
  EXPECT_EQ(g->bar_read(kBar, 0x2000, 8), 0x0807060504030201ull);
  EXPECT_EQ(g->bar_read(kBar, 0x2006, 4), 0u);  // crosses the end
  g->bar_write(kBar, 0x2001, 1, 0xaa);
  EXPECT_EQ(dev->config[1], 0xaa);
  g->bar_write(kBar, 0x2007, 2, 0xbbbb);
  EXPECT_EQ(dev->config[7], 8);
}

TEST_F(PciTransportTest, ResetRestoresDefaults) {
  negotiate(feature_bit(kFeatureVersion1));
  g->set_common(kMsixCfg, 2, 0);
  setup_queue0();
  g->set_common(kQMsix, 2, 1);
  g->set_common(kStatus, 1, kOkAll | kStatusDriverOk);
  EXPECT_TRUE(t->activated());
  EXPECT_EQ(dev->activations, 1);
  g->set_common(kStatus, 1, 0);
  EXPECT_EQ(dev->resets, 1);
  EXPECT_FALSE(t->activated());
  EXPECT_EQ(g->common(kStatus, 1), 0u);
  EXPECT_EQ(g->common(kMsixCfg, 2), PciTransport::kNoVector);
  EXPECT_EQ(g->common(kQSel, 2), 0u);
  EXPECT_EQ(g->common(kQEnable, 2), 0u);
  EXPECT_EQ(g->common(kQMsix, 2), PciTransport::kNoVector);
  EXPECT_EQ(g->common(kQSize, 2), 64u);
  EXPECT_EQ(g->common(kQDesc, 8), 0u);
  EXPECT_EQ(t->driver_features(), 0u);
  EXPECT_EQ(hook_calls.back(), std::make_pair(uint16_t{0}, false));
}

TEST_F(PciTransportTest, PciCfgWindowReachesTheBar) {
  g->walk();
  const uint16_t cap = g->caps().at(5).at;
  const auto at = [&](unsigned d) { return static_cast<uint16_t>(cap + d); };
  // Read num_queues through the window (bar, offset, length, then data).
  g->cfg_write(at(4), 1, kBar);
  g->cfg_write(at(8), 4, 0x12);
  g->cfg_write(at(12), 4, 2);
  EXPECT_EQ(g->cfg_read(at(16), 2), 2u);
  // Write device_status through the window.
  g->cfg_write(at(8), 4, 0x14);
  g->cfg_write(at(12), 4, 1);
  g->cfg_write(at(16), 4, kStatusAcknowledge);
  EXPECT_EQ(t->status(), kStatusAcknowledge);
  // Bad windows: wrong BAR, misaligned, bad length, past the BAR: nothing happens.
  g->cfg_write(at(4), 1, 0);
  g->cfg_write(at(16), 1, 0);
  g->cfg_write(at(4), 1, kBar);
  g->cfg_write(at(8), 4, 0x15);
  g->cfg_write(at(12), 4, 2);
  g->cfg_write(at(16), 4, 0);
  g->cfg_write(at(12), 4, 3);
  g->cfg_write(at(16), 4, 0);
  g->cfg_write(at(8), 4, 0xfffffff0);
  g->cfg_write(at(12), 4, 4);
  EXPECT_EQ(g->cfg_read(at(16), 4), 0u);
  g->cfg_write(at(16), 4, 0);
  EXPECT_EQ(t->status(), kStatusAcknowledge);
  // Works without memory decoding (that is what the window is for).
  g->cfg_write(0x04, 2, 0);
  g->cfg_write(at(8), 4, 0x12);
  g->cfg_write(at(12), 4, 2);
  EXPECT_EQ(g->cfg_read(at(16), 2), 2u);
}

}  // namespace
}  // namespace qvm::virtio
