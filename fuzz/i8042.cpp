// Fuzz target: the legacy platform ports a guest pokes early and often: the i8042 keyboard
// controller's data/status/command ports 0x60-0x64 (IBM PC/AT Technical Reference, "Keyboard
// Controller": status register, commands 0x20/0x60/0xAA/0xAB/0xD1/0xFE), PS/2 System Control
// Port A 0x92 (IBM PS/2 Technical Reference), the reset control register 0xCF9 (Intel ICH
// datasheet, "Reset Control Register"), the test device, and the ACPI PM1a event/control blocks
// (ACPI 6.5 §4.8.3: PM1_STS write-1-to-clear, PM1_EN, PM1_CNT SLP_TYP/SLP_EN). Each is reached as
// the machine wires it: a ByteRegisterDevice over the range the machine inserts, with 1/2/4/8-byte
// accesses that fit in it (the bus drops others).
// Input: operations {op, offset, value le32 for writes}. op & 7: 0 i8042 (5 ports), 1 port 0x92,
// 2 port 0xCF9, 3 test device (4 ports), 4 ACPI PM (6 ports), 5 the host presses the power
// button; op & 8: write; (op >> 4) & 3: size 1/2/4/8.
// Properties: no crash, hang or sanitizer report; the i8042 status register always has the
// system flag, its output-buffer-full bit says whether a data read returns a byte, and data
// reads return the command's reply (command byte, 0x55 self-test, 0x00 interface test, 0xFA
// keyboard ACK); resets are requested exactly by command 0xFE, 0xD1 with output port bit 0 low,
// port 0x92 bit 0 and 0xCF9 bit 2 (each callback just counts); 0x92 reads A20 on, 0xCF9 reads
// back bits 3:1; the test device exits only on a write to its first port, with 32 + value
// clamped to 63; the SCI level is (PM1_STS & PM1_EN) != 0 after every access, PWRBTN_STS is set
// only by the button and cleared only by writing 1, SLP_EN reads 0, and the VM is powered off
// exactly when SLP_EN is written with SLP_TYP = 5.
#include "vdev/platform/i8042.hpp"

#include <cstdint>
#include <mutex>

#include "fuzz_input.hpp"
#include "vdev/common/register_device.hpp"
#include "vdev/platform/acpi_pm.hpp"

namespace {

using qvm::fuzz::check;
using qvm::fuzz::Input;
namespace vdev = qvm::vdev;

struct FakeIrq final : vdev::IrqLine {
  bool level = false;
  void set_level(bool high) override { level = high; }
};

// The i8042 as the PC/AT reference describes it, one byte access at a time.
struct KbcShadow {
  uint8_t command_byte = 0x45;
  uint8_t pending = 0;  // command waiting for its data byte
  int out = -1;         // output buffer, -1 if empty
  uint64_t resets = 0;

  void write(uint64_t offset, uint8_t v) {
    if (offset == 4) {
      pending = 0;
      switch (v) {
        case 0x20:
          out = command_byte;
          break;
        case 0x60:
        case 0xd1:
          pending = v;
          break;
        case 0xaa:
          out = 0x55;
          break;
        case 0xab:
          out = 0x00;
          break;
        case 0xfe:
          ++resets;
          break;
        default:
          break;
      }
      return;
    }
    if (offset != 0) return;
    if (pending == 0x60) {
      command_byte = v;
    } else if (pending == 0xd1) {
      if (!(v & 0x01)) ++resets;
    } else {
      out = 0xfa;
    }
    pending = 0;
  }

  void read(uint64_t offset, uint8_t v) {
    if (offset == 4) {
      check((v & 0x04) != 0);                  // system flag: POST passed
      check(((v & 0x01) != 0) == (out >= 0));  // output buffer full
    } else if (offset == 0) {
      if (out >= 0) check(v == out);
      out = -1;
    }
  }
};

template <typename Model>
struct Port {
  Model model;
  std::mutex mu;
  vdev::ByteRegisterDevice<Model> dev{model, mu};
  uint64_t len;
  template <typename... Args>
  explicit Port(uint64_t n, Args&&... args) : model(std::forward<Args>(args)...), len(n) {}
};

uint16_t pm_reg(vdev::AcpiPm& pm, uint64_t offset) {
  return static_cast<uint16_t>(pm.read(offset) | (pm.read(offset + 1) << 8));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t kbc_resets = 0, a_resets = 0, rc_resets = 0, power_offs = 0;
  int exit_code = -1;
  uint64_t exits = 0;
  FakeIrq sci;
  Port<vdev::I8042> kbc(5, [&] { ++kbc_resets; });
  Port<vdev::SystemControlA> port_a(1, [&] { ++a_resets; });
  Port<vdev::ResetControl> rc(1, [&] { ++rc_resets; });
  Port<vdev::TestDev> testdev(4, [&](int code) {
    exit_code = code;
    ++exits;
  });
  Port<vdev::AcpiPm> pm(6, sci, [&] { ++power_offs; });

  KbcShadow kbc_shadow;
  uint64_t a_expected = 0, rc_expected = 0, exits_expected = 0, power_offs_expected = 0;
  int rc_value = 0;
  bool pwrbtn = false;

  static constexpr size_t kSizes[4] = {1, 2, 4, 8};
  Input in(data, size);
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const unsigned dev = op & 7u;
    const bool write = (op & 8) != 0;
    const size_t n = kSizes[(op >> 4) & 3];
    if (dev == 5) {
      pm.model.press_power_button();
      pwrbtn = true;
    } else if (dev < 5) {
      const uint8_t off8 = in.u8();
      uint8_t bytes[8] = {};
      if (write) {
        const uint32_t v = in.u32();
        for (size_t i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(v >> (8 * (i % 4)));
      }
      std::span<uint8_t> access(bytes, n);
      const uint64_t lens[5] = {kbc.len, port_a.len, rc.len, testdev.len, pm.len};
      const uint64_t offset = off8 % lens[dev];
      if (offset + n > lens[dev]) continue;  // the bus does not deliver it
      qvm::bus::BusDevice* targets[5] = {&kbc.dev, &port_a.dev, &rc.dev, &testdev.dev, &pm.dev};
      if (write) {
        targets[dev]->write(offset, access);
      } else {
        targets[dev]->read(offset, access);
      }
      for (size_t i = 0; i < n; ++i) {
        const uint64_t at = offset + i;
        const uint8_t b = bytes[i];
        switch (dev) {
          case 0:
            write ? kbc_shadow.write(at, b) : kbc_shadow.read(at, b);
            break;
          case 1:
            if (write) {
              a_expected += b & 1u;
            } else {
              check(b == 0x02);  // A20 on
            }
            break;
          case 2:
            if (write) {
              rc_value = b & 0x0e;
              rc_expected += (b >> 2) & 1u;
            } else {
              check(b == rc_value);
            }
            break;
          case 3:
            if (write && at == 0) {
              ++exits_expected;
              check(exit_code == 32 + (b > 31 ? 31 : b));
            }
            break;
          default:
            if (write && at == 1 && (b & 0x01)) pwrbtn = false;  // write 1 to clear
            if (write && at == 5 && (b & 0x20) && ((b >> 2) & 7) == vdev::AcpiPm::kS5SlpTyp)
              ++power_offs_expected;
            break;
        }
      }
    }
    // Invariants after every access.
    check(kbc_resets == kbc_shadow.resets);
    check(a_resets == a_expected);
    check(rc_resets == rc_expected);
    check(exits == exits_expected);
    check(exit_code == -1 || (exit_code >= 32 && exit_code <= 63));
    check(power_offs == power_offs_expected);
    const uint16_t sts = pm_reg(pm.model, 0), en = pm_reg(pm.model, 2), cnt = pm_reg(pm.model, 4);
    check(sci.level == ((sts & en) != 0));
    check((sts & ~vdev::AcpiPm::kPwrBtnSts) == 0);  // the only status bit modelled
    check(((sts & vdev::AcpiPm::kPwrBtnSts) != 0) == pwrbtn);
    check((cnt & (1u << 13)) == 0);  // SLP_EN is write-only
    check(pm.model.sci_enabled() == ((cnt & vdev::AcpiPm::kSciEn) != 0));
  }
  return 0;
}
