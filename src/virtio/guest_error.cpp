#include "virtio/guest_error.hpp"

#include <cstdarg>
#include <cstdio>

#include "base/log.hpp"

namespace qvm::virtio {

void log_guest_error(const char* fmt, ...) {
  static RateLimit limit(5.0, 20.0);
  uint64_t suppressed = 0;
  if (!limit.allow(std::chrono::steady_clock::now(), &suppressed)) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (suppressed > 0)
    log_warn("%s (%llu similar messages suppressed)", buf,
             static_cast<unsigned long long>(suppressed));
  else
    log_warn("%s", buf);
}

}  // namespace qvm::virtio
