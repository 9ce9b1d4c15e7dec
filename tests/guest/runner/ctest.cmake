# CTest entries of the guest kit: one VM boot per (VMM, group). A missing QEMU or /dev/kvm makes
# them FAIL with a message (never skip). Needs the qvm-test-guest target built first.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
set(QVMTEST ${CMAKE_CURRENT_SOURCE_DIR}/runner/qvmtest.py)

# virtio groups: the machine's device set in runner/qvmtest.py decides which virtio tests run
set(QVM_KIT_GROUPS_qemu_microvm serial timers irq platform smp poweroff reset_acpi virtio virtio_legacy
    virtio_durable virtio_net virtio_rate)
set(QVM_KIT_GROUPS_qemu_q35 serial timers irq platform smp pci poweroff reset_i8042 reset_acpi virtio_pci
    virtio_pci_durable virtio_pci_net virtio_pci_rate watchdog watchdog_reset hpet multiboot)

foreach(vmm qemu_microvm qemu_q35)
  string(REPLACE "_" "-" vmm_arg ${vmm})
  foreach(group ${QVM_KIT_GROUPS_${vmm}})
    add_test(NAME guest.${vmm}.${group}
      COMMAND ${Python3_EXECUTABLE} ${QVMTEST} --vmm ${vmm_arg} --guest ${QVM_TEST_GUEST}
              --group ${group} --timeout 60)
    set(labels "guest;system;${vmm}")
    if(group MATCHES "^virtio")
      list(APPEND labels virtio)
    endif()
    if(group MATCHES "net$")
      # netns + TAP + UDP echo server in a namespace the runner creates and deletes (needs root)
      list(APPEND labels net)
    endif()
    set_tests_properties(guest.${vmm}.${group} PROPERTIES
      TIMEOUT 90 LABELS "${labels}" RESOURCE_LOCK kvm_cpus)
  endforeach()
endforeach()

# The runner's own unit tests, including a live boot with a deliberately wrong expectation.
add_test(NAME guest.runner.selftest
  COMMAND ${Python3_EXECUTABLE} -m unittest -v test_qvmtest
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/runner)
set_tests_properties(guest.runner.selftest PROPERTIES
  TIMEOUT 90 LABELS "guest" ENVIRONMENT "QVM_TEST_GUEST=${QVM_TEST_GUEST};PYTHONDONTWRITEBYTECODE=1")

# The same groups under qvm itself (configs in tests/guest/configs; the runner's device sets in
# runner/qvmtest.py decide which tests of a group run on qvm).
# virtio_net / virtio_pci_net: qvm's virtio-net on a TAP the runner creates in its own netns.
# virtio_rate / virtio_pci_rate: a `rate`-limited virtio-entropy must keep serving after its burst.
set(QVM_KIT_GROUPS_qvm serial timers irq platform smp pci poweroff reset_i8042 reset_acpi virtio virtio_legacy
    virtio_pci virtio_durable virtio_pci_durable virtio_net virtio_pci_net virtio_uring virtio_uring_durable
    virtio_rate virtio_pci_rate vdev_sample watchdog watchdog_reset shmem msr_ignore hpet multiboot insn)
if(TARGET qvm)
  foreach(group ${QVM_KIT_GROUPS_qvm})
    add_test(NAME guest.qvm.${group}
      COMMAND ${Python3_EXECUTABLE} ${QVMTEST} --vmm qvm --qvm $<TARGET_FILE:qvm> --guest ${QVM_TEST_GUEST}
              --group ${group} --timeout 60)
    set(labels "guest;system;qvm")
    if(group MATCHES "^virtio")
      list(APPEND labels virtio)
    endif()
    if(group MATCHES "net$")
      list(APPEND labels net)
    endif()
    set_tests_properties(guest.qvm.${group} PROPERTIES
      TIMEOUT 90 LABELS "${labels}" RESOURCE_LOCK kvm_cpus)
  endforeach()
  # vdev_sample loads examples/vdev/regbank, built out of tree by tests/vdev (fixture vdev_samples).
  set_tests_properties(guest.qvm.vdev_sample PROPERTIES FIXTURES_REQUIRED vdev_samples
    ENVIRONMENT "QVM_VDEV_SAMPLES=${QVM_VDEV_SAMPLES}")
endif()

# virtio-net guest to guest over qvm peer links and restart robustness (runner/pair.py; two qvm
# processes, private runtime directory per run). net_pair: both start orders, MMIO and PCI;
# net_restart: guest B stopped/started 20 times while A keeps the link (fd and socket checks);
# net_tap_restart: one guest restarted 20 times on the same TAP in a private netns + 3 runs on a TAP
# qvm creates (must disappear). The 100-restart soak: `ninja guest-net-soak`, or configure with
# -DQVM_KIT_SOAK=ON to get the CTest entry guest.qvm.net_soak (label soak; `ctest -L soak`).
set(QVM_PAIR ${CMAKE_CURRENT_SOURCE_DIR}/runner/pair.py)
option(QVM_KIT_SOAK "register the long guest soak tests (label soak) in CTest" OFF)
if(TARGET qvm)
  foreach(t pair restart tap_restart)
    string(REPLACE "_" "-" mode ${t})
    set(extra)
    if(NOT t STREQUAL "pair")
      set(extra -n 20)
    endif()
    add_test(NAME guest.qvm.net_${t}
      COMMAND ${Python3_EXECUTABLE} ${QVM_PAIR} --qvm $<TARGET_FILE:qvm> --guest ${QVM_TEST_GUEST} ${mode} ${extra})
    set_tests_properties(guest.qvm.net_${t} PROPERTIES
      TIMEOUT 120 LABELS "guest;system;qvm;virtio;net" RESOURCE_LOCK kvm_cpus ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
  endforeach()
  set(QVM_SOAK_CMD ${Python3_EXECUTABLE} ${QVM_PAIR} --qvm $<TARGET_FILE:qvm> --guest ${QVM_TEST_GUEST} restart -n 100)
  add_custom_target(guest-net-soak
    COMMAND ${QVM_SOAK_CMD}
    COMMAND ${Python3_EXECUTABLE} ${QVM_PAIR} --qvm $<TARGET_FILE:qvm> --guest ${QVM_TEST_GUEST} restart -n 100 --transport pci --mixed
    COMMAND ${Python3_EXECUTABLE} ${QVM_PAIR} --qvm $<TARGET_FILE:qvm> --guest ${QVM_TEST_GUEST} tap-restart -n 100
    DEPENDS qvm qvm-test-guest USES_TERMINAL
    COMMENT "virtio-net soak: 100 peer restarts (MMIO, PCI/MMIO mixed) and 100 TAP restarts")
  if(QVM_KIT_SOAK)
    add_test(NAME guest.qvm.net_soak COMMAND ${QVM_SOAK_CMD})
    set_tests_properties(guest.qvm.net_soak PROPERTIES
      TIMEOUT 600 LABELS "guest;system;qvm;virtio;net;soak" RESOURCE_LOCK kvm_cpus ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
  endif()
endif()

# Shared memory across processes (runner/shm.py; docs/shmem.md): two qvm (PCI and memory-mapped
# factory) and qvm-shm on one region: data and notifications all ways, a killed qvm restarting,
# 16 clients then GSS_CLIENT_MAX, nothing left behind.
if(TARGET qvm AND TARGET qvm-shm)
  add_test(NAME guest.qvm.shmem_pair
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/runner/shm.py --qvm $<TARGET_FILE:qvm>
            --qvm-shm $<TARGET_FILE:qvm-shm> --guest ${QVM_TEST_GUEST})
  set_tests_properties(guest.qvm.shmem_pair PROPERTIES
    TIMEOUT 120 LABELS "guest;system;qvm" RESOURCE_LOCK kvm_cpus ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
