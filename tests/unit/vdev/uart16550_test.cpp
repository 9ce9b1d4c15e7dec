#include "vdev/uart/uart16550.hpp"

#include <gtest/gtest.h>

#include <string>

namespace qvm::vdev {
namespace {

struct UartTest : ::testing::Test {
  RecordingIrqLine irq;
  std::string out;
  Uart16550 u{irq, [this](uint8_t c) { out += static_cast<char>(c); }};
};

TEST_F(UartTest, TransmitsAndReportsThrEmpty) {
  u.write(0, 'h');
  u.write(0, 'i');
  EXPECT_EQ(out, "hi");
  EXPECT_EQ(u.read(5) & 0x60, 0x60);  // THRE and TEMT
  EXPECT_FALSE(irq.level);            // no interrupts enabled
}

TEST_F(UartTest, ReceiveRaisesDataAvailableInterrupt) {
  u.write(1, 0x01);  // IER: received data
  EXPECT_FALSE(irq.level);
  const uint8_t in[] = {'a', 'b'};
  EXPECT_EQ(u.receive(in), 2u);
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(u.read(2) & 0x0f, 0x04);  // IIR: received data available
  EXPECT_EQ(u.read(5) & 0x01, 0x01);  // LSR.DR
  EXPECT_EQ(u.read(0), 'a');
  EXPECT_EQ(u.read(0), 'b');
  EXPECT_FALSE(irq.level);
  EXPECT_EQ(u.read(5) & 0x01, 0x00);
  EXPECT_EQ(u.read(2) & 0x0f, 0x01);  // nothing pending
}

TEST_F(UartTest, ThrEmptyInterruptClearedByIirRead) {
  u.write(1, 0x02);  // enabling ETBEI with THR empty raises it
  EXPECT_TRUE(irq.level);
  EXPECT_EQ(u.read(2) & 0x0f, 0x02);
  EXPECT_FALSE(irq.level);
  u.write(0, 'x');  // transmitted: empty again
  EXPECT_TRUE(irq.level);
}

TEST_F(UartTest, DivisorLatch) {
  u.write(3, 0x80);  // DLAB
  u.write(0, 0x01);
  u.write(1, 0x00);
  EXPECT_EQ(u.read(0), 0x01);
  u.write(3, 0x03);  // 8N1, DLAB off
  EXPECT_EQ(u.read(3), 0x03);
  EXPECT_EQ(out, "");  // divisor writes are not data
}

TEST_F(UartTest, LoopbackEchoesToReceiver) {
  u.write(4, 0x10);
  u.write(0, 'z');
  EXPECT_EQ(out, "");
  EXPECT_EQ(u.read(0), 'z');
}

TEST_F(UartTest, InputIsBoundedAndOverrunReported) {
  std::vector<uint8_t> big(Uart16550::kMaxQueued + 10, 'q');
  EXPECT_EQ(u.receive(big), Uart16550::kMaxQueued);
  EXPECT_EQ(u.read(5) & 0x02, 0x02);  // overrun
  EXPECT_EQ(u.read(5) & 0x02, 0x00);  // cleared by reading LSR
}

TEST_F(UartTest, ScratchAndUnknownRegisters) {
  u.write(7, 0x42);
  EXPECT_EQ(u.read(7), 0x42);
  EXPECT_EQ(u.read(8), 0xff);
  u.write(5, 0);  // LSR is read-only: no crash, no effect
  EXPECT_EQ(u.read(6), 0xb0);
}

}  // namespace
}  // namespace qvm::vdev
