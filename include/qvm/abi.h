/* qvm vdev API: the ABI number (docs/vdev-api.md; spec §9.1).
 *
 * A vdev passes QVM_VDEV_ABI to vdev_register_factory(); qvm refuses a factory registered with any
 * other number. The number changes whenever a structure layout or a function signature of these
 * headers changes. It is qvm's own: these headers are written for qvm from the public description
 * of the QNX API (names, codes and semantics), not binary-compatible with QNX's. */
#ifndef QVM_ABI_H
#define QVM_ABI_H

#define QVM_VDEV_ABI 2026120701u

#endif
