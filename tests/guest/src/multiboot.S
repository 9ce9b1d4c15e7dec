/* qvm test guest, multiboot v1 entry (Multiboot Specification 0.6.96): linked only into the
 * multiboot build (qvm-test-guest-mb.bin, a flat image of the same guest). The header uses its
 * address fields (flag 16), so a loader copies the file to __image_start without reading ELF, as
 * QNX x86 IFS images are loaded. The loader enters mb_entry in 32-bit protected mode, paging off,
 * EAX = 0x2BADB002, EBX = struct multiboot_info; the PVH path then runs as usual, and start_info()
 * (lib.c) converts the multiboot information into the PVH start info the rest of the kit reads. */
        .section .multiboot, "ax"
        .code32
        .p2align 2
        .globl mb_header
mb_header:
        .long 0x1badb002                          /* magic */
        .long 0x00010003                          /* page-aligned modules, memory info, address fields */
        .long -(0x1badb002 + 0x00010003)          /* checksum */
        .long mb_header                           /* header_addr */
        .long __image_start                       /* load_addr */
        .long 0                                   /* load_end_addr: the whole file */
        .long __bss_end                           /* bss_end_addr */
        .long mb_entry                            /* entry_addr */

        .globl mb_entry
mb_entry:
        cmpl $0x2badb002, %eax
        jne 1f
        movl %ebx, mb_info      /* in .data: pvh_entry clears .bss */
1:      xorl %ebx, %ebx         /* no PVH start info */
        jmp pvh_entry
