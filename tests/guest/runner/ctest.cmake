# CTest entries of the guest kit: one VM boot per (VMM, group). A missing QEMU or /dev/kvm makes
# them FAIL with a message (never skip). Needs the qvm-test-guest target built first.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
set(QVMTEST ${CMAKE_CURRENT_SOURCE_DIR}/runner/qvmtest.py)

# virtio groups: the machine's device set in runner/qvmtest.py decides which virtio tests run
set(QVM_KIT_GROUPS_qemu_microvm serial timers irq platform smp poweroff reset_acpi virtio virtio_legacy
    virtio_durable virtio_net)
set(QVM_KIT_GROUPS_qemu_q35 serial timers irq platform smp pci poweroff reset_i8042 reset_acpi virtio_pci
    virtio_pci_durable virtio_pci_net)

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
# runner/qvmtest.py decide which tests of a group run on qvm: no PCI INTx test yet).
# virtio_net / virtio_pci_net: qvm's virtio-net on a TAP the runner creates in its own netns.
set(QVM_KIT_GROUPS_qvm serial timers irq platform smp pci poweroff reset_i8042 reset_acpi virtio virtio_legacy
    virtio_pci virtio_durable virtio_pci_durable virtio_net virtio_pci_net)
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
endif()
