// Rate-limited logging of guest-provoked errors (malformed chains, bad register values). A
// hostile guest can trigger these at will, so they pass one shared token bucket.
#pragma once

namespace qvm::virtio {

void log_guest_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace qvm::virtio
