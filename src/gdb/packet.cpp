#include "gdb/packet.hpp"

#include "base/log.hpp"

namespace qvm::gdb {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void PacketDecoder::feed(std::span<const uint8_t> bytes, std::vector<Input>& out) {
  for (uint8_t b : bytes) {
    switch (state_) {
      case State::kIdle:
        // Between packets only `$`, acks and the interrupt byte mean something; anything else
        // (line noise, a client's stray bytes) is skipped.
        if (b == '$') {
          state_ = State::kPayload;
          buf_.clear();
          overflow_ = false;
          sum_ = 0;
        } else if (b == 0x03) {
          out.push_back({Input::Kind::kInterrupt, {}});
        } else if (b == '+') {
          out.push_back({Input::Kind::kAck, {}});
        } else if (b == '-') {
          out.push_back({Input::Kind::kNack, {}});
        }
        break;
      case State::kPayload:
        if (b == '#') {
          state_ = State::kSum1;
        } else if (b == '$') {
          // A new packet inside a packet: the first was cut short. Start over.
          out.push_back({Input::Kind::kBadPacket, {}});
          buf_.clear();
          overflow_ = false;
          sum_ = 0;
        } else {
          sum_ = static_cast<uint8_t>(sum_ + b);
          if (buf_.size() < kMaxPacket)
            buf_.push_back(static_cast<char>(b));
          else
            overflow_ = true;
        }
        break;
      case State::kSum1: {
        int d = hex_digit(static_cast<char>(b));
        want_ = d < 0 ? -1 : d << 4;
        state_ = State::kSum2;
        break;
      }
      case State::kSum2: {
        int d = hex_digit(static_cast<char>(b));
        state_ = State::kIdle;
        if (want_ < 0 || d < 0 || (want_ | d) != sum_ || overflow_) {
          out.push_back({Input::Kind::kBadPacket, {}});
        } else {
          out.push_back({Input::Kind::kPacket, std::move(buf_)});
        }
        buf_.clear();
        break;
      }
    }
  }
}

std::string frame(std::string_view payload) {
  std::string s;
  s.reserve(payload.size() + 4);
  s.push_back('$');
  uint8_t sum = 0;
  auto put = [&](char c) {
    s.push_back(c);
    sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  };
  for (char c : payload) {
    if (c == '#' || c == '$' || c == '}' || c == '*') {
      put('}');
      put(static_cast<char>(c ^ 0x20));
    } else {
      put(c);
    }
  }
  static const char* kHex = "0123456789abcdef";
  s.push_back('#');
  s.push_back(kHex[sum >> 4]);
  s.push_back(kHex[sum & 15]);
  return s;
}

std::optional<std::vector<uint8_t>> unescape(std::string_view s) {
  std::vector<uint8_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '}') {
      if (++i == s.size()) return std::nullopt;
      out.push_back(static_cast<uint8_t>(s[i] ^ 0x20));
    } else {
      out.push_back(static_cast<uint8_t>(s[i]));
    }
  }
  return out;
}

std::optional<uint64_t> parse_hex(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d = hex_digit(c);
    if (d < 0) return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

std::optional<std::vector<uint8_t>> parse_hex_bytes(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

std::string to_hex(std::string_view bytes) {
  return to_hex(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),  // NOLINT
                                         bytes.size()));
}

std::string hex_u64(uint64_t v) {
  return strprintf("%llx", static_cast<unsigned long long>(v));
}

}  // namespace qvm::gdb
