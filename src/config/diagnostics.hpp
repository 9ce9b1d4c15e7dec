// Configuration errors and warnings, each tied to file:line:column.
#pragma once

#include <string>
#include <vector>

#include "config/source.hpp"

namespace qvm::config {

struct Diagnostic {
  enum class Severity { kError, kWarning } severity;
  SrcLoc loc;
  std::string message;

  std::string str() const;  // "file:line:col: error: message"
};

class Diagnostics {
 public:
  void error(const SrcLoc& loc, std::string message);
  void warning(const SrcLoc& loc, std::string message);

  bool has_errors() const { return errors_ > 0; }
  // True once kMaxErrors errors were recorded: the parser stops there.
  bool saturated() const { return errors_ >= kMaxErrors; }
  size_t error_count() const { return errors_; }
  const std::vector<Diagnostic>& all() const { return items_; }
  std::string first_error() const;

 private:
  std::vector<Diagnostic> items_;
  size_t errors_ = 0;
};

}  // namespace qvm::config
