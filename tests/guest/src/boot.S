/* qvm test guest: PVH entry, long-mode switch, interrupt stubs, AP trampoline.
 *
 * Everything here runs at ring 0, which on PVM hosts means inside KVM's instruction emulator
 * (~1M instructions/s, no int3/SSE/popcnt/...). Keep it short and plain: the test code proper runs
 * in ring 3 (see user_start below and docs/testing.md).
 *
 * PVH boot protocol: entered in 32-bit protected mode, paging off, flat CS/DS, EBX = physical
 * address of struct hvm_start_info.
 */
#include "layout.h"

/* ---- PVH ELF note: XEN_ELFNOTE_PHYS32_ENTRY (type 18) ------------------------------------ */
        .section .note.pvh, "a"
        .p2align 2
        .long 4                 /* namesz: "Xen\0" */
        .long 8                 /* descsz: 64-bit entry (low 32 bits used) */
        .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .p2align 2
        .quad pvh_entry

/* ---- 32-bit entry ------------------------------------------------------------------------ */
        .section .text.boot, "ax"
        .code32
        .globl pvh_entry
pvh_entry:
        cli
        cld
        /* zero .bss (the loader may not); EBX (start info) survives */
        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        shrl $2, %ecx
        xorl %eax, %eax
        rep stosl
        movl %ebx, pvh_start_info

        lgdt gdt_desc
        ljmp $SEL_KCODE32, $1f
1:      movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        movl $kstack_top, %esp

        /* page tables: identity map 0..4 GiB with 2 MiB pages, user-accessible (U/S) so ring 3
         * reaches RAM, MMIO and ACPI tables directly. Top GiB (MMIO) is uncached. Also the
         * first 2 MiB of every 4 GiB from 4 to 64 GiB: qvm's shared-memory windows (a control
         * page and the start of a region, tests/shmem.c). */
        movl $pdpt, %eax
        orl $7, %eax
        movl %eax, pml4
        xorl %ecx, %ecx
2:      movl %ecx, %edx
        shll $12, %edx
        addl $pd, %edx
        orl $7, %edx
        movl %edx, pdpt(,%ecx,8)
        incl %ecx
        cmpl $4, %ecx
        jb 2b
        xorl %ecx, %ecx
3:      movl %ecx, %eax
        shll $21, %eax
        orl $0x87, %eax         /* P | RW | US | PS */
        cmpl $1536, %ecx
        jb 4f
        orl $0x18, %eax         /* PWT | PCD above 3 GiB */
4:      movl %eax, pd(,%ecx,8)
        incl %ecx
        cmpl $2048, %ecx
        jb 3b

        movl $1, %ecx
5:      leal -1(%ecx), %eax
        shll $12, %eax
        addl $pdhi, %eax        /* the page directory of window ECX */
        movl $0x87, (%eax)      /* its entry 0: P | RW | US | PS, 2 MiB at 4*ECX GiB */
        movl %ecx, 4(%eax)      /* bits 32+ of 4*ECX GiB */
        orl $7, %eax
        movl %ecx, %edx
        shll $2, %edx
        movl %eax, pdpt(,%edx,8)
        incl %ecx
        cmpl $17, %ecx
        jb 5b
        movl $pml4, %eax
        movl %eax, %cr3
        movl %cr4, %eax
        orl $0x20, %eax         /* PAE */
        movl %eax, %cr4
        movl $0xC0000080, %ecx  /* EFER.LME */
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax   /* PG | PE */
        movl %eax, %cr0
        ljmp $SEL_KCODE64, $long64

        .code64
long64:
        movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        movq $kstack_top, %rsp
        call kernel_init
        /* drop to ring 3 with IOPL 3, interrupts off (user code enables them) */
        pushq $SEL_UDATA
        pushq $ustack_top
        pushq $0x3002
        pushq $SEL_UCODE64
        pushq $user_start
        iretq

user_start:
        xorl %ebp, %ebp
        call user_main
5:      pause
        jmp 5b

/* ---- interrupt stubs: 256 x 16 bytes at isr_stubs -------------------------------------- */
        .p2align 4
        .globl isr_stubs
isr_stubs:
        .set vec, 0
        .rept 256
        .p2align 4
        .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
        .else
        pushq $0
        .endif
        pushq $vec
        jmp isr_common
        .set vec, vec + 1
        .endr

isr_common:
        pushq %rax
        pushq %rcx
        pushq %rdx
        pushq %rbx
        pushq %rbp
        pushq %rsi
        pushq %rdi
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        cld
        call isr_dispatch
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rdi
        popq %rsi
        popq %rbp
        popq %rbx
        popq %rdx
        popq %rcx
        popq %rax
        addq $16, %rsp
        iretq

/* ---- AP trampoline: copied to TRAMPOLINE_ADDR (4 KiB aligned, < 1 MiB) ------------------ */
#define T(x) ((x) - ap_trampoline + TRAMPOLINE_ADDR)
        .globl ap_trampoline, ap_trampoline_end
        .p2align 4
ap_trampoline:
        .code16
        cli
        xorw %ax, %ax
        movw %ax, %ds
        lgdtl T(tramp_gdt_desc)
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl $SEL_KCODE32, $T(tramp32)
        .code32
tramp32:
        movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %cr4, %eax
        orl $0x20, %eax
        movl %eax, %cr4
        movl $pml4, %eax
        movl %eax, %cr3
        movl $0xC0000080, %ecx
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax
        movl %eax, %cr0
        ljmp $SEL_KCODE64, $ap_long64
        .p2align 3
tramp_gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt
ap_trampoline_end:

        .code64
ap_long64:
        movl $SEL_KDATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        /* claim a stack slot */
        movl $1, %eax
        lock xaddl %eax, ap_slot
        cmpl $MAX_CPUS - 1, %eax
        jae 7f
        movl %eax, %ecx
        incl %ecx
        shlq $AP_STACK_SHIFT, %rcx
        leaq ap_stacks(%rcx), %rsp
        movl %eax, %edi
        call ap_main
7:      cli
        hlt
        jmp 7b

/* ---- data ------------------------------------------------------------------------------- */
        .section .data
        .p2align 4
        .globl gdt
gdt:
        .quad 0                         /* 0x00 null */
        .quad 0x00af9a000000ffff        /* 0x08 kernel code 64 */
        .quad 0x00cf92000000ffff        /* 0x10 kernel data */
        .quad 0x00cf9a000000ffff        /* 0x18 kernel code 32 */
        .quad 0x00cff2000000ffff        /* 0x20 user data (DPL 3) */
        .quad 0x00affa000000ffff        /* 0x28 user code 64 (DPL 3) */
        .globl gdt_tss
gdt_tss:
        .quad 0, 0                      /* 0x30 TSS (filled by kernel_init) */
gdt_end:
        .p2align 3
gdt_desc:
        .word gdt_end - gdt - 1
        .quad gdt

        .globl pvh_start_info
pvh_start_info:
        .long 0

        .section .bss
        .p2align 12
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4 * 4096
pdhi:   .skip 16 * 4096
        .p2align 4
        .skip KSTACK_SIZE
        .globl kstack_top
kstack_top:
        .skip USTACK_SIZE
ustack_top:
        .p2align 4
ap_stacks:
        .skip MAX_CPUS << AP_STACK_SHIFT
        .globl ap_slot
ap_slot:
        .long 0
