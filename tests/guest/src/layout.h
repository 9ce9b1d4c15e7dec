/* Shared constants of the qvm test guest (included by C and assembly). */
#ifndef QVM_GUEST_LAYOUT_H
#define QVM_GUEST_LAYOUT_H

#define SEL_KCODE64 0x08
#define SEL_KDATA 0x10
#define SEL_KCODE32 0x18
#define SEL_UDATA 0x23
#define SEL_UCODE64 0x2b
#define SEL_TSS 0x30

#define KSTACK_SIZE 0x4000
#define USTACK_SIZE 0x10000
#define MAX_CPUS 16
#define AP_STACK_SHIFT 12
#define TRAMPOLINE_ADDR 0x8000

/* interrupt vectors */
#define VEC_PIC_BASE 0x20    /* 8259 master 0x20-0x27, slave 0x28-0x2f */
#define VEC_ISA_BASE 0x30    /* ISA IRQ n through the IOAPIC -> 0x30 + n */
#define VEC_GSI_BASE 0x50    /* other IOAPIC pins (PCI INTx etc.) -> 0x50 + (gsi - 16) */
#define VEC_SYSCALL 0x80
#define VEC_VIRTIO_BASE 0x90 /* virtio-mmio slot n -> 0x90 + n (16 slots) */
#define VEC_VPCI_MSIX_BASE 0xa0 /* virtio-pci MSI-X: 0xa0-0xcf (tests/virtio_pci.c assigns) */
#define VEC_VPCI_INTX 0xd0      /* virtio-pci INTx through the IOAPIC */
#define VEC_REGBANK 0x70        /* the sample loadable vdev regbank (tests/vdev_sample.c) */
#define VEC_SHM_PCI 0x71        /* qvm shmem on PCI, INTA# (tests/shmem.c) */
#define VEC_SHM_MMIO 0x72       /* qvm shmem with a memory-mapped factory page */
#define VEC_SHM_MSI 0x73        /* qvm shmem on PCI with MSI-X enabled */
#define VEC_HPET 0x74           /* HPET timers routed to an IOAPIC input (tests/hpet.c) */
#define VEC_LAPIC_TIMER 0xe0
#define VEC_IPI 0xe1
#define VEC_SPURIOUS 0xff

#endif
