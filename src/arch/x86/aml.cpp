#include "arch/x86/aml.hpp"

namespace qvm::arch::x86::aml {

namespace {

constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kNameOp = 0x08, kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b, kDWordPrefix = 0x0c, kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e, kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12;
constexpr uint8_t kExtOpPrefix = 0x5b, kDeviceOp = 0x82, kRootChar = 0x5c;
constexpr uint8_t kDualNamePrefix = 0x2e, kMultiNamePrefix = 0x2f;

void append(Bytes& out, const Bytes& b) {
  out.insert(out.end(), b.begin(), b.end());
}

void le(Bytes& out, uint64_t v, int n) {
  for (int i = 0; i < n; i++) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// opcode(s) PkgLength body
Bytes with_pkg(std::initializer_list<uint8_t> ops, const Bytes& body) {
  Bytes out(ops);
  append(out, pkg_length(body.size()));
  append(out, body);
  return out;
}

}  // namespace

Bytes pkg_length(size_t body_len) {
  // One byte holds lengths up to 63; n+1 bytes hold 4 + 8n bits (§20.2.4).
  if (body_len + 1 <= 0x3f) return {static_cast<uint8_t>(body_len + 1)};
  for (int extra = 1; extra <= 3; extra++) {
    size_t total = body_len + 1 + static_cast<size_t>(extra);
    if (total < (size_t{1} << (4 + 8 * extra))) {
      Bytes out{static_cast<uint8_t>((static_cast<size_t>(extra) << 6) | (total & 0xf))};
      for (int i = 0; i < extra; i++) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
      return out;
    }
  }
  return {};  // > 256 MiB: not representable; callers never build such objects
}

bool is_name_seg(std::string_view seg) {
  if (seg.empty() || seg.size() > 4 || (seg[0] >= '0' && seg[0] <= '9')) return false;
  for (char c : seg)
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

Bytes name_string(std::string_view path) {
  Bytes out;
  if (!path.empty() && path[0] == '\\') {
    out.push_back(kRootChar);
    path.remove_prefix(1);
  }
  std::vector<std::string_view> segs;
  while (!path.empty()) {
    size_t dot = path.find('.');
    segs.push_back(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  if (segs.size() == 2) out.push_back(kDualNamePrefix);
  if (segs.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  if (segs.empty()) out.push_back(0);  // NullName
  for (auto s : segs)
    for (size_t i = 0; i < 4; i++) out.push_back(static_cast<uint8_t>(i < s.size() ? s[i] : '_'));
  return out;
}

Bytes integer(uint64_t v) {
  Bytes out;
  if (v == 0) return {kZeroOp};
  if (v == 1) return {kOneOp};
  if (v <= 0xff) {
    out.push_back(kBytePrefix);
    le(out, v, 1);
  } else if (v <= 0xffff) {
    out.push_back(kWordPrefix);
    le(out, v, 2);
  } else if (v <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    le(out, v, 4);
  } else {
    out.push_back(kQWordPrefix);
    le(out, v, 8);
  }
  return out;
}

Bytes string(std::string_view s) {
  Bytes out{kStringPrefix};
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
  return out;
}

bool is_eisa_id(std::string_view id) {
  if (id.size() != 7) return false;
  for (size_t i = 0; i < 3; i++)
    if (id[i] < 'A' || id[i] > 'Z') return false;
  for (size_t i = 3; i < 7; i++) {
    char c = id[i];
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

Bytes eisa_id(std::string_view id) {
  auto hex = [](char c) -> uint32_t {
    return c <= '9' ? static_cast<uint32_t>(c - '0') : static_cast<uint32_t>(c - 'A' + 10);
  };
  auto letter = [&](size_t i) { return static_cast<uint32_t>(id[i] - 0x40) & 0x1f; };
  uint32_t vendor = (letter(0) << 10) | (letter(1) << 5) | letter(2);
  // Byte order in memory: vendor high, vendor low, product high, product low.
  uint32_t v = (vendor >> 8) | ((vendor & 0xff) << 8) | (((hex(id[3]) << 4) | hex(id[4])) << 16) |
               (((hex(id[5]) << 4) | hex(id[6])) << 24);
  Bytes out{kDWordPrefix};
  le(out, v, 4);
  return out;
}

Bytes name(std::string_view n, const Bytes& object) {
  Bytes out{kNameOp};
  append(out, name_string(n));
  append(out, object);
  return out;
}

Bytes package(std::span<const Bytes> elements) {
  Bytes body{static_cast<uint8_t>(elements.size())};
  for (const auto& e : elements) append(body, e);
  return with_pkg({kPackageOp}, body);
}

Bytes buffer(std::span<const uint8_t> data) {
  Bytes body = integer(data.size());
  body.insert(body.end(), data.begin(), data.end());
  return with_pkg({kBufferOp}, body);
}

Bytes scope(std::string_view n, std::span<const Bytes> children) {
  Bytes body = name_string(n);
  for (const auto& c : children) append(body, c);
  return with_pkg({kScopeOp}, body);
}

Bytes device(std::string_view n, std::span<const Bytes> children) {
  Bytes body = name_string(n);
  for (const auto& c : children) append(body, c);
  return with_pkg({kExtOpPrefix, kDeviceOp}, body);
}

ResourceTemplate& ResourceTemplate::io(uint16_t base, uint8_t len) {
  d_.push_back(0x47);  // small item, type 8, length 7
  d_.push_back(0x01);  // decodes 16 bits
  le(d_, base, 2);     // range minimum
  le(d_, base, 2);     // range maximum
  d_.push_back(0x01);  // alignment
  d_.push_back(len);
  return *this;
}

ResourceTemplate& ResourceTemplate::irq_no_flags(uint8_t irq) {
  d_.push_back(0x22);  // small item, type 4, length 2
  le(d_, uint32_t{1} << (irq & 0xf), 2);
  return *this;
}

ResourceTemplate& ResourceTemplate::interrupt(uint32_t gsi, bool edge, bool active_low,
                                              bool shared) {
  d_.push_back(0x89);  // large item 0x09
  le(d_, 6, 2);        // flags, count, one DWORD
  d_.push_back(static_cast<uint8_t>(0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0) |
                                    (shared ? 0x08 : 0)));  // bit0: consumer
  d_.push_back(1);
  le(d_, gsi, 4);
  return *this;
}

ResourceTemplate& ResourceTemplate::memory32_fixed(uint32_t base, uint32_t len, bool writable) {
  d_.push_back(0x86);  // large item 0x06
  le(d_, 9, 2);
  d_.push_back(writable ? 1 : 0);
  le(d_, base, 4);
  le(d_, len, 4);
  return *this;
}

namespace {
// Word (0x88) / DWord (0x87) Address Space Descriptor: type, general flags (MinFixed | MaxFixed,
// producer, positive decode), type-specific flags, granularity, min, max, translation, length.
void address_space(Bytes& d, uint8_t tag, int width, uint8_t type, uint8_t type_flags, uint64_t min,
                   uint64_t max) {
  d.push_back(tag);
  le(d, static_cast<uint64_t>(3 + 5 * width), 2);
  d.push_back(type);
  d.push_back(0x0c);
  d.push_back(type_flags);
  le(d, 0, width);  // granularity
  le(d, min, width);
  le(d, max, width);
  le(d, 0, width);  // translation offset
  le(d, max - min + 1, width);
}
}  // namespace

ResourceTemplate& ResourceTemplate::word_bus_number(uint16_t min, uint16_t max) {
  address_space(d_, 0x88, 2, 2, 0, min, max);
  return *this;
}

ResourceTemplate& ResourceTemplate::word_io(uint16_t min, uint16_t max) {
  address_space(d_, 0x88, 2, 1, 0x03, min, max);  // ISA and non-ISA ranges
  return *this;
}

ResourceTemplate& ResourceTemplate::dword_memory(uint32_t min, uint32_t max) {
  address_space(d_, 0x87, 4, 0, 0x01, min, max);  // read-write, non-cacheable
  return *this;
}

Bytes ResourceTemplate::build() const {
  Bytes d = d_;
  d.push_back(0x79);  // End Tag (§6.4.2.9)
  uint8_t sum = 0;
  for (uint8_t b : d) sum = static_cast<uint8_t>(sum + b);
  d.push_back(static_cast<uint8_t>(-sum));  // whole template sums to zero
  return buffer(d);
}

}  // namespace qvm::arch::x86::aml
