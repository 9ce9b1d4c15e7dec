/* qvm vdev API: option parsing helpers (docs/vdev-api.md; spec §2.4, §2.6, §9.12). */
#ifndef QVM_UTILS_H
#define QVM_UTILS_H

#include <stdint.h>

#include <qvm/vdev-core.h>

#ifdef __cplusplus
extern "C" {
#endif

/* qvm_parse_num flags. */
enum {
  QPNF_SIZE_SUFFIX = 0x1, /* accept k/m/g (x1024) suffixes, either case */
  QPNF_NEGATIVE = 0x2,    /* accept a leading '-' (the value is two's complement) */
  QPNF_TRAILING = 0x4,    /* stop at the first character that is not part of the number */
};

/* Parses a number as the configuration language does (spec §2.4: decimal, 0x hex, 0d decimal).
 * Returns 0 and sets *value (and *end, if given, to the first unparsed character), or -1 with
 * errno EINVAL (not a number, or trailing text without QPNF_TRAILING) or ERANGE. */
int qvm_parse_num(const char* str, unsigned flags, uint64_t* value, const char** end);

/* Resolves an interrupt reference "pic:line" (spec §2.6) of the VM into *gip, for
 * guest_intr_signal. Only during option callbacks and OPTIONS_END. Returns 0 or -1/errno. */
int qvm_parse_intr(vdev_t* vdp, const char* str, struct guest_intr* gip);

#ifdef __cplusplus
}
#endif

#endif
