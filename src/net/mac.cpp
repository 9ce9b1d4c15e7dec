#include "net/mac.hpp"

#include <cstdio>

namespace qvm::net {

Result<Mac> parse_mac(std::string_view s) {
  Mac m{};
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (s.size() != 17)
    return make_error("MAC address '" + std::string(s) + "': want xx:xx:xx:xx:xx:xx");
  for (size_t i = 0; i < 6; ++i) {
    int hi = hex(s[3 * i]), lo = hex(s[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':' && s[3 * i + 2] != '-'))
      return make_error("MAC address '" + std::string(s) + "': want xx:xx:xx:xx:xx:xx");
    m[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return m;
}

std::string format_mac(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

Mac generate_mac(std::string_view system, std::string_view vdev) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](std::string_view s) {
    for (char c : s) {
      h ^= static_cast<uint8_t>(c);
      h *= 0x100000001b3ull;
    }
  };
  mix(system);
  mix("/");
  mix(vdev);
  Mac m{};
  for (size_t i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>((h >> (8 * i)) ^ (h >> (8 * i + 16)));
  m[0] = static_cast<uint8_t>((m[0] & 0xfc) | 0x02);
  return m;
}

}  // namespace qvm::net
