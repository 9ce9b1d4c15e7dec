// MAC addresses for virtio-net: parsing `mac xx:xx:xx:xx:xx:xx` and the stable default derived
// from the system and vdev names (locally administered, unicast: IEEE 802 U/L bit set, I/G clear).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace qvm::net {

using Mac = std::array<uint8_t, 6>;

Result<Mac> parse_mac(std::string_view s);
std::string format_mac(const Mac& m);
// FNV-1a of "system/vdev", folded to 6 bytes; first byte (x & 0xfc) | 0x02.
Mac generate_mac(std::string_view system, std::string_view vdev);

}  // namespace qvm::net
