// Where a piece of configuration came from, and how configuration files are read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace qvm::config {

// file:line:column of a token (1-based). Command-line entries use file "<command line>",
// line = argument index (1 = first argument after the program name), column within it.
struct SrcLoc {
  std::shared_ptr<const std::string> file;
  uint32_t line = 0;
  uint32_t col = 0;

  std::string str() const;  // "file:line:col"
  bool valid() const { return file != nullptr; }
};

// Reads configuration files. The real one reads the file system; tests and the fuzzer supply
// an in-memory map.
class SourceLoader {
 public:
  virtual ~SourceLoader() = default;
  // Canonical identity of `path` (for include-cycle detection), or an error if it cannot be read.
  virtual Result<std::string> canonical(const std::string& path) = 0;
  virtual Result<std::string> read(const std::string& canonical_path) = 0;
};

class FileSourceLoader final : public SourceLoader {
 public:
  Result<std::string> canonical(const std::string& path) override;
  Result<std::string> read(const std::string& canonical_path) override;
};

// Environment lookup used by ${NAME} substitution.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup process_environment();

// Limits that keep any input bounded (design: never a crash, hang or unbounded memory).
inline constexpr size_t kMaxFileBytes = 16u << 20;
inline constexpr size_t kMaxTokenBytes = 1u << 20;
inline constexpr size_t kMaxTokens = 1u << 20;
inline constexpr int kMaxIncludeDepth = 32;
// Across all files of one configuration: an include graph that fans out (each file including the
// next twice) would otherwise read 2^depth files.
inline constexpr size_t kMaxIncludes = 1024;
inline constexpr size_t kMaxTotalBytes = 64u << 20;
inline constexpr size_t kMaxTotalTokens = 4u << 20;
inline constexpr size_t kMaxErrors = 50;

}  // namespace qvm::config
