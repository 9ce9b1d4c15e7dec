// ChainReader / ChainWriter: byte streams across a chain's buffers, and the iovec view.
#include "virtio/queue/chain.hpp"

#include <gtest/gtest.h>

#include <numeric>

#include "virtio/queue/testing/mock_driver.hpp"

namespace qvm::virtio {
namespace {

using testing::MockDriver;
using Seg = MockDriver::Seg;

struct ChainTest : ::testing::Test {
  memory::GuestMemory mem;
  Queue q{64};
  std::unique_ptr<MockDriver> drv;
  void SetUp() override {
    ASSERT_TRUE(mem.add_region(0, 0x100000, false).ok());
    drv = std::make_unique<MockDriver>(mem, 64);
    drv->configure(q);
  }
  DescriptorChain pop() {
    auto r = q.pop(mem);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? std::move(**r) : DescriptorChain{};
  }
};

TEST_F(ChainTest, ReaderCrossesBuffers) {
  const Seg segs[] = {{3, false, {1, 2, 3}}, {2, false, {4, 5}}, {4, true}};
  drv->add_and_publish(segs);
  DescriptorChain c = pop();
  ChainReader r(mem, c);
  EXPECT_EQ(r.remaining(), 5u);
  auto v = r.read_obj<uint32_t>();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 0x04030201u);
  uint8_t rest[4] = {};
  EXPECT_FALSE(r.read_exact(rest).ok());  // only 1 byte left; nothing consumed
  EXPECT_EQ(r.remaining(), 1u);
  auto n = r.read(rest);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(rest[0], 5);
  EXPECT_EQ(r.bytes_read(), 5u);
  EXPECT_FALSE(r.skip(1).ok());
}

TEST_F(ChainTest, WriterFillsWritableBuffersOnly) {
  const Seg segs[] = {{4, false}, {3, true}, {5, true}};
  drv->add_and_publish(segs);
  DescriptorChain c = pop();
  ChainWriter w(mem, c);
  std::vector<uint8_t> data(10);
  std::iota(data.begin(), data.end(), uint8_t{10});
  auto n = w.write(data);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 8u);  // capacity of the chain
  EXPECT_EQ(w.bytes_written(), 8u);
  EXPECT_EQ(w.remaining(), 0u);
  EXPECT_EQ(drv->read_bytes(drv->seg_addr(1), 3), (std::vector<uint8_t>{10, 11, 12}));
  EXPECT_EQ(drv->read_bytes(drv->seg_addr(2), 5), (std::vector<uint8_t>{13, 14, 15, 16, 17}));
  EXPECT_EQ(drv->read_bytes(drv->seg_addr(0), 4), (std::vector<uint8_t>{0, 0, 0, 0}));
  EXPECT_FALSE(w.write_obj<uint8_t>(1).ok());
}

TEST_F(ChainTest, IovecsSplitAtRegionBoundariesAndAdvance) {
  ASSERT_TRUE(mem.add_region(0x100000, 0x1000, false).ok());  // adjacent region
  drv->set_desc(0, VirtqDesc{0xff000, 0x1000, kDescFlagNext | kDescFlagWrite, 1});
  drv->set_desc(1, VirtqDesc{0xffff8, 0x10, kDescFlagWrite, 0});  // spans the boundary
  drv->publish(0);
  DescriptorChain c = pop();
  ChainWriter w(mem, c);
  std::vector<iovec> iov;
  auto n = w.iovecs(UINT64_MAX, iov);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0x1010u);
  ASSERT_EQ(iov.size(), 3u);
  EXPECT_EQ(iov[1].iov_len, 8u);
  EXPECT_EQ(iov[2].iov_len, 8u);
  w.advance(0x1004);
  iov.clear();
  n = w.iovecs(4, iov);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 4u);
  ASSERT_EQ(iov.size(), 1u);
  EXPECT_EQ(iov[0].iov_len, 4u);
  EXPECT_EQ(w.bytes_written(), 0x1004u);
}

TEST_F(ChainTest, ReaderIovecsAndConsume) {
  const Seg segs[] = {{6, false, {1, 2, 3, 4, 5, 6}}, {6, false}};
  drv->add_and_publish(segs);
  DescriptorChain c = pop();
  ChainReader r(mem, c);
  std::vector<iovec> iov;
  auto n = r.iovecs(8, iov);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 8u);
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t*>(iov[0].iov_base)[5], 6);
  r.consume(8);
  EXPECT_EQ(r.remaining(), 4u);
}

}  // namespace
}  // namespace qvm::virtio
