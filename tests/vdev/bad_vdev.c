/* Deliberately broken loadable vdevs for the loader's error tests (tests/vdev/CMakeLists.txt).
 * One source, one case per BAD_* definition; each must give a clear configuration error. */
#include <errno.h>
#include <stddef.h>

#include <qvm/vdev-core.h>

static int ok_control(vdev_t* vdp, vdev_ctrl_options_t ctrl, const char* arg) {
  (void)arg;
  if (ctrl == VDEV_CTRL_OPTIONS_START) vdp->v_block.length = 16;
#ifdef BAD_OPTIONS_END
  if (ctrl == VDEV_CTRL_OPTIONS_END) return ENODEV;
#endif
  return 0;
}

static struct vdev_factory factory = {
    .control = ok_control,
    .name = BAD_NAME,
    .factory_flags = VFF_VDEV_MEM | VFF_INTR_NO,
};
#ifdef BAD_TWICE
static struct vdev_factory factory2 = {
    .control = ok_control,
    .name = BAD_NAME,
    .factory_flags = VFF_VDEV_MEM | VFF_INTR_NO,
};
#endif

#ifdef BAD_MISSING_SYMBOL
void qvm_no_such_function(void);
#endif

__attribute__((constructor)) static void reg(void) {
#ifdef BAD_MISSING_SYMBOL
  qvm_no_such_function();
#endif
#ifdef BAD_ABI
  vdev_register_factory(&factory, 2018092701u); /* an older ABI number */
#else
  vdev_register_factory(&factory, QVM_VDEV_ABI);
#endif
#ifdef BAD_TWICE
  vdev_register_factory(&factory2, QVM_VDEV_ABI);
#endif
}
