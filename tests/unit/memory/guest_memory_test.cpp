#include "memory/guest_memory.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace qvm::memory {
namespace {

TEST(GuestMemory, ReadWriteInsideAndAcrossAdjacentRegions) {
  GuestMemory m;
  ASSERT_TRUE(m.add_region(0, 0x1000, false).ok());
  ASSERT_TRUE(m.add_region(0x1000, 0x1000, true).ok());
  std::vector<uint8_t> in{1, 2, 3, 4};
  ASSERT_TRUE(m.write(0xffe, in).ok());  // spans both regions
  std::vector<uint8_t> out(4);
  ASSERT_TRUE(m.read(0xffe, out).ok());
  EXPECT_EQ(in, out);
  ASSERT_TRUE(m.write_obj<uint32_t>(0x10, 0xdeadbeef).ok());
  EXPECT_EQ(*m.read_obj<uint32_t>(0x10), 0xdeadbeefu);
  EXPECT_EQ(m.total_size(), 0x2000u);
}

TEST(GuestMemory, OutOfRangeIsAnErrorNotACrash) {
  GuestMemory m;
  ASSERT_TRUE(m.add_region(0x100000, 0x1000, false).ok());
  std::vector<uint8_t> buf(16);
  EXPECT_FALSE(m.read(0, buf).ok());
  EXPECT_FALSE(m.read(0x100ff8, buf).ok());         // runs off the end
  EXPECT_FALSE(m.write(UINT64_MAX - 4, buf).ok());  // wraps
  EXPECT_FALSE(m.read_obj<uint64_t>(0x101000).ok());
  EXPECT_FALSE(m.host_range(0x100800, 0x1000).ok());
  EXPECT_FALSE(m.contains(0x100000, 0x1001));
  EXPECT_TRUE(m.contains(0x100000, 0x1000));
  EXPECT_FALSE(m.fill(0x100000, 0, 0x2000).ok());
}

TEST(GuestMemory, RegionsMustBeAlignedAndDisjoint) {
  GuestMemory m;
  EXPECT_FALSE(m.add_region(0x10, 0x1000, false).ok());
  EXPECT_FALSE(m.add_region(0, 0x10, false).ok());
  ASSERT_TRUE(m.add_region(0, 0x2000, false).ok());
  EXPECT_FALSE(m.add_region(0x1000, 0x1000, false).ok());
}

TEST(GuestMemory, StartsZeroed) {
  GuestMemory m;
  ASSERT_TRUE(m.add_region(0, 0x10000, false).ok());
  EXPECT_EQ(*m.read_obj<uint64_t>(0x8000), 0u);
}

// RAM of 2 MiB or more is mapped congruent with its guest address modulo 2 MiB (so a 2 MiB
// guest range is one transparent huge page on the host) and still reads and writes across its
// whole range, ends included.
TEST(GuestMemory, LargeRegionsAreHugePageCongruent) {
  GuestMemory m;
  ASSERT_TRUE(m.add_region(0x100000, 0x600000, false).ok());
  ASSERT_TRUE(m.add_region(0x40000000, 0x400000, false).ok());
  auto r = m.host_range(0x100000, 0x600000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r->data()) % (2u << 20), 0x100000u);
  auto r2 = m.host_range(0x40000000, 0x400000);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r2->data()) % (2u << 20), 0u);
  ASSERT_TRUE(m.write_obj<uint64_t>(0x100000, 1).ok());
  ASSERT_TRUE(m.write_obj<uint64_t>(0x6ffff8, 2).ok());
  EXPECT_EQ(*m.read_obj<uint64_t>(0x100000), 1u);
  EXPECT_EQ(*m.read_obj<uint64_t>(0x6ffff8), 2u);
}

// A ring index the guest updates concurrently must never be seen half old, half new (virtio 1.2
// §2.7.13): 0x00ff -> 0x0100 read bytewise can yield 0x01ff or 0x0000.
TEST(GuestMemory, AlignedWordsAreSingleCopyAtomic) {
  GuestMemory m;
  ASSERT_TRUE(m.add_region(0, 0x1000, false).ok());
  auto h = m.host_range(0x10, 2);
  ASSERT_TRUE(h.ok());
  auto* word = reinterpret_cast<uint16_t*>(h->data());         // SAFETY: aligned, inside the region
  __atomic_store_n(word, uint16_t{0x00ff}, __ATOMIC_RELAXED);  // before the reader starts
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint32_t i = 0; !stop.load(std::memory_order_relaxed); ++i)
      __atomic_store_n(word, static_cast<uint16_t>((i & 1) ? 0x0100 : 0x00ff), __ATOMIC_RELAXED);
  });
  uint32_t torn = 0;
  for (int i = 0; i < 500000; ++i) {
    const uint16_t v = *m.read_obj<uint16_t>(0x10);
    torn += v != 0x00ff && v != 0x0100;
  }
  stop = true;
  writer.join();
  EXPECT_EQ(torn, 0u);
  // Writes: one store, and the same value read back.
  ASSERT_TRUE(m.write_obj<uint32_t>(0x20, 0xa1b2c3d4u).ok());
  EXPECT_EQ(*m.read_obj<uint32_t>(0x20), 0xa1b2c3d4u);
  EXPECT_FALSE(m.read_obj<uint64_t>(0x1000).ok());
  EXPECT_FALSE(m.write_obj<uint16_t>(0xfff, uint16_t{1}).ok());  // unaligned, crosses the end
}

}  // namespace
}  // namespace qvm::memory
