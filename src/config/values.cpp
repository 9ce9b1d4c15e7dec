#include "config/values.hpp"

#include <cctype>

namespace qvm::config {
namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

Error expected(std::string_view what, std::string_view got) {
  return make_error("expected " + std::string(what) + ", found '" + std::string(got) + "'");
}

}  // namespace

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, p - start));
    start = p + 1;
  }
}

std::string hex(uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), digits[v & 0xf]);
    v >>= 4;
  } while (v != 0);
  return "0x" + s;
}

Result<uint64_t> parse_number(std::string_view s) {
  const std::string_view what = "a number (decimal, 0x hex, 0d decimal, optional K/M/G suffix)";
  std::string_view body = s;
  unsigned base = 10;
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
    base = 16;
    body.remove_prefix(2);
  } else if (body.size() > 2 && body[0] == '0' && (body[1] == 'd' || body[1] == 'D')) {
    body.remove_prefix(2);
  }
  uint64_t mult = 1;
  if (!body.empty()) {
    switch (lower(body.back())) {
      case 'k':
        mult = 1ull << 10;
        break;
      case 'm':
        mult = 1ull << 20;
        break;
      case 'g':
        mult = 1ull << 30;
        break;
      default:
        break;
    }
    if (mult != 1) body.remove_suffix(1);
  }
  if (body.empty()) return expected(what, s);
  uint64_t v = 0;
  for (char c : body) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (base == 16 && lower(c) >= 'a' && lower(c) <= 'f') {
      d = static_cast<unsigned>(lower(c) - 'a' + 10);
    } else {
      return expected(what, s);
    }
    if (v > (UINT64_MAX - d) / base)
      return make_error("number '" + std::string(s) + "' is too large");
    v = v * base + d;
  }
  if (mult != 1 && v > UINT64_MAX / mult)
    return make_error("number '" + std::string(s) + "' is too large");
  return v * mult;
}

Result<bool> parse_bool(std::string_view s) {
  for (auto t : {"on", "1", "yes", "true", "enable"})
    if (iequals(s, t)) return true;
  for (auto f : {"off", "0", "no", "false", "disable"})
    if (iequals(s, f)) return false;
  return expected("a boolean (on/off, yes/no, true/false, 1/0)", s);
}

Result<std::vector<uint64_t>> parse_number_list(std::string_view s) {
  std::vector<uint64_t> out;
  for (auto part : split(s, ',')) {
    if (out.size() >= 4096) return make_error("list is too long");
    out.push_back(QVM_TRY(parse_number(part)));
  }
  return out;
}

std::string GuestLoc::str() const {
  switch (space) {
    case AddrSpace::kMem:
      return "mem:" + hex(addr);
    case AddrSpace::kIo:
      return "io:" + hex(addr);
    case AddrSpace::kPci:
      if (pci_by_id) {
        std::string s = "pci:" + hex(vendor) + "/" + hex(device);
        if (index != 0) s += "/" + std::to_string(index);
        return s;
      }
      return "pci:" + std::to_string(bus) + ":" + std::to_string(dev) + "." + std::to_string(func);
  }
  return {};
}

Result<GuestLoc> parse_guest_loc(std::string_view s) {
  GuestLoc loc;
  std::string_view rest = s;
  if (rest.substr(0, 4) == "mem:") {
    rest.remove_prefix(4);
  } else if (rest.substr(0, 3) == "io:") {
    loc.space = AddrSpace::kIo;
    rest.remove_prefix(3);
  } else if (rest.substr(0, 4) == "pci:") {
    loc.space = AddrSpace::kPci;
    rest.remove_prefix(4);
    const char* form = "a PCI location pci:BUS:DEV[.FUNC] or pci:VENDOR/DEVICE[/INDEX]";
    if (rest.find('/') != std::string_view::npos) {
      auto parts = split(rest, '/');
      if (parts.size() < 2 || parts.size() > 3) return expected(form, s);
      auto v = parse_number(parts[0]);
      auto d = parse_number(parts[1]);
      if (!v || !d || *v > 0xffff || *d > 0xffff) return expected(form, s);
      loc.pci_by_id = true;
      loc.vendor = static_cast<uint16_t>(*v);
      loc.device = static_cast<uint16_t>(*d);
      if (parts.size() == 3) {
        auto i = parse_number(parts[2]);
        if (!i || *i > 0xffff) return expected(form, s);
        loc.index = static_cast<uint32_t>(*i);
      }
      return loc;
    }
    auto parts = split(rest, ':');
    if (parts.size() != 2) return expected(form, s);
    std::string_view devfn = parts[1];
    std::string_view fn = "0";
    if (auto dot = devfn.find('.'); dot != std::string_view::npos) {
      fn = devfn.substr(dot + 1);
      devfn = devfn.substr(0, dot);
    }
    auto b = parse_number(parts[0]);
    auto d = parse_number(devfn);
    auto f = parse_number(fn);
    if (!b || !d || !f) return expected(form, s);
    if (*b > 255) return make_error("PCI bus " + std::string(parts[0]) + " out of range (0-255)");
    if (*d > 31) return make_error("PCI device " + std::string(devfn) + " out of range (0-31)");
    if (*f > 7) return make_error("PCI function " + std::string(fn) + " out of range (0-7)");
    loc.bus = static_cast<uint8_t>(*b);
    loc.dev = static_cast<uint8_t>(*d);
    loc.func = static_cast<uint8_t>(*f);
    return loc;
  }
  auto a = parse_number(rest);
  if (!a) return expected("a location (ADDR, mem:ADDR, io:PORT or pci:...)", s);
  if (loc.space == AddrSpace::kIo && *a > 0xffff)
    return make_error("I/O port " + std::string(rest) + " out of range (0-0xffff)");
  loc.addr = *a;
  return loc;
}

std::string IntrRef::str() const {
  return apic ? "apic" : pic + ":" + std::to_string(line);
}

Result<IntrRef> parse_intr(std::string_view s) {
  IntrRef r;
  if (s == "apic") {
    r.apic = true;
    return r;
  }
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return expected("an interrupt 'picname:line' (or 'apic')", s);
  r.pic = std::string(s.substr(0, colon));
  auto line = parse_number(s.substr(colon + 1));
  if (!line) return expected("an interrupt 'picname:line' with a numeric line", s);
  if (*line > 0xffffffffu)
    return make_error("interrupt line out of range in '" + std::string(s) + "'");
  r.line = static_cast<uint32_t>(*line);
  return r;
}

Result<std::vector<IntrRef>> parse_intr_list(std::string_view s) {
  std::vector<IntrRef> out;
  for (auto part : split(s, ',')) {
    if (out.size() >= 256) return make_error("too many interrupts in list");
    out.push_back(QVM_TRY(parse_intr(part)));
  }
  return out;
}

}  // namespace qvm::config
