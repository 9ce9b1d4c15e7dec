/* qvm vdev API: logging (docs/vdev-api.md; spec §3.11, §9.12). */
#ifndef QVM_LOG_H
#define QVM_LOG_H

#include <qvm/vdev-core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The message classes of `logger` (spec §3.11). */
enum vdev_log_class {
  VDEV_LOG_FATAL = 0,
  VDEV_LOG_INTERNAL = 1,
  VDEV_LOG_ERROR = 2,
  VDEV_LOG_WARN = 3,
  VDEV_LOG_INFO = 4,
  VDEV_LOG_DEBUG = 5,
  VDEV_LOG_VERBOSE = 6,
};

/* One line, prefixed with the vdev's name (vdp may be NULL), routed like qvm's own messages.
 * Rate-limited per vdev (a guest can provoke these): suppressed lines are counted and the count is
 * reported with the next line that passes. During VDEV_CTRL_STATUS the lines go to the status
 * report instead. */
void vdev_logf(unsigned cls, vdev_t* vdp, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif
