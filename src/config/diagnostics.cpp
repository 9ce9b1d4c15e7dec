#include "config/diagnostics.hpp"

namespace qvm::config {

std::string Diagnostic::str() const {
  std::string s = loc.valid() ? loc.str() + ": " : std::string();
  s += severity == Severity::kError ? "error: " : "warning: ";
  s += message;
  return s;
}

void Diagnostics::error(const SrcLoc& loc, std::string message) {
  if (saturated()) return;
  items_.push_back({Diagnostic::Severity::kError, loc, std::move(message)});
  ++errors_;
}

void Diagnostics::warning(const SrcLoc& loc, std::string message) {
  if (items_.size() > 4 * kMaxErrors) return;
  items_.push_back({Diagnostic::Severity::kWarning, loc, std::move(message)});
}

std::string Diagnostics::first_error() const {
  for (const auto& d : items_)
    if (d.severity == Diagnostic::Severity::kError) return d.str();
  return {};
}

}  // namespace qvm::config
