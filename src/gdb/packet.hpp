// GDB remote serial protocol framing (GDB manual, "Remote Protocol", "Overview"): packets are
// `$payload#cc` with a two-hex-digit modulo-256 checksum, acknowledged by `+` or `-`; a lone 0x03
// byte outside a packet is an interrupt request. The bytes come from a socket anyone with access
// to it can write: the decoder is incremental, bounded (kMaxPacket) and never fails hard — a bad
// packet is answered with `-` and forgotten.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qvm::gdb {

// The largest payload accepted (and advertised as PacketSize): enough for a `g` reply of every
// x86-64 register in hex, and for 8 KiB `m`/`X` transfers.
inline constexpr size_t kMaxPacket = 0x4000;

struct Input {
  enum class Kind { kPacket, kInterrupt, kAck, kNack, kBadPacket };
  Kind kind;
  std::string payload;  // kPacket: the bytes between `$` and `#`, still escaped
};

class PacketDecoder {
 public:
  // Consumes `bytes`; complete inputs are appended to `out`.
  void feed(std::span<const uint8_t> bytes, std::vector<Input>& out);

 private:
  enum class State { kIdle, kPayload, kSum1, kSum2 };
  State state_ = State::kIdle;
  std::string buf_;
  bool overflow_ = false;
  uint8_t sum_ = 0;
  int want_ = 0;  // the received checksum, high digit first
};

// `$payload#cc`, with `#`, `$`, `}` and `*` escaped (`}` then the byte XOR 0x20) so binary
// payloads (qXfer, m of arbitrary memory never is: it is hex) pass unharmed.
std::string frame(std::string_view payload);

// Binary data of an `X` packet: `}` escapes undone. nullopt on a dangling escape.
std::optional<std::vector<uint8_t>> unescape(std::string_view s);

// Hex helpers: strict (only [0-9a-fA-F]); nullopt on anything else.
int hex_digit(char c);
std::optional<uint64_t> parse_hex(std::string_view s);  // 1-16 digits
std::optional<std::vector<uint8_t>> parse_hex_bytes(std::string_view s);
std::string to_hex(std::span<const uint8_t> bytes);
std::string to_hex(std::string_view bytes);
std::string hex_u64(uint64_t v);  // minimal digits, lower case

}  // namespace qvm::gdb
