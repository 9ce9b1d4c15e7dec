/* Multiboot v1 boot of the kit's flat image (qvm-test-guest-mb.bin, multiboot.S), under qvm
 * (`load` + `module load`) and under QEMU (-kernel + -initrd). Checks the boot information a
 * multiboot kernel (a QNX x86 IFS, Xen) relies on (Multiboot Specification 0.6.96, 3.3):
 *   multiboot  entered with EAX = 0x2BADB002; flags carry memory, command line, modules and the
 *              memory map; mem_lower/mem_upper agree with the memory map; the command line starts
 *              with the image's name (GRUB's convention) and then carries ours; mb_mods=N modules,
 *              the first page-aligned with mb_mod_size bytes of FNV-1a mb_mod_fnv and a string
 *              that ends in "mbarg=<mb_mod_arg>". The loader's name is reported. */
#include "guest.h"
#include "virtio.h"

extern char __image_end[]; /* guest.ld */

static const char *find(const char *s, const char *w)
{
    size_t n = strlen(w);
    for (size_t guard = 0; *s && guard < 4096; s++, guard++)
        if (!strncmp(s, w, n)) return s;
    return NULL;
}

static void test_multiboot(void)
{
    const struct multiboot_info *mi = multiboot_info();
    if (!mi) return test_fail("not entered through multiboot (EAX was not 0x2BADB002)");
    uint32_t need = MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MODS | MB_INFO_MMAP;
    if ((mi->flags & need) != need) return test_fail("info flags %x lack some of %x", mi->flags, need);
    const char *name = (mi->flags & MB_INFO_LOADER_NAME) && mi->boot_loader_name
                           ? (const char *)(uintptr_t)mi->boot_loader_name : "(none)";
    printk("INFO multiboot loader=\"%s\" flags=%x mem_lower=%u mem_upper=%u mods=%u\n", name,
           mi->flags, mi->mem_lower, mi->mem_upper, mi->mods_count);

    /* mem_lower/mem_upper against the memory map (converted by start_info()) */
    const struct hvm_start_info *si = start_info();
    const struct hvm_memmap_entry *m = (const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
    uint64_t lower_end = 0, upper_end = 0x100000;
    for (int pass = 0; pass < 8; pass++) {
        for (unsigned i = 0; i < si->memmap_entries; i++) {
            if (m[i].type != 1) continue;
            if (m[i].addr <= lower_end && m[i].addr + m[i].size > lower_end) lower_end = m[i].addr + m[i].size;
            if (m[i].addr <= upper_end && m[i].addr + m[i].size > upper_end) upper_end = m[i].addr + m[i].size;
        }
    }
    if (lower_end > 640 * 1024) lower_end = 640 * 1024;
    if (mi->mem_lower != lower_end / 1024 || mi->mem_upper != (upper_end - 0x100000) / 1024)
        return test_fail("mem_lower %u mem_upper %u KiB, the memory map says %lu and %lu", mi->mem_lower,
                         mi->mem_upper, lower_end / 1024, (upper_end - 0x100000) / 1024);

    const char *cl = (const char *)(uintptr_t)mi->cmdline;
    if (!strncmp(cl, "tests=", 6) || !find(cl, " tests="))
        return test_fail("command line \"%s\": want the image's name first, then ours", cl);

    uint64_t want_mods = 0, want_size = 0, want_fnv = 0, want_arg = 0;
    cmdline_u64("mb_mods", &want_mods);
    if (mi->mods_count != want_mods) return test_fail("%u modules, want %lu", mi->mods_count, want_mods);
    if (want_mods) {
        const struct multiboot_module *mod = (const struct multiboot_module *)(uintptr_t)mi->mods_addr;
        uint32_t size = mod->mod_end - mod->mod_start;
        uint32_t h = fnv1a32((const void *)(uintptr_t)mod->mod_start, size);
        const char *str = mod->string ? (const char *)(uintptr_t)mod->string : "";
        const char *arg = find(str, "mbarg=");
        cmdline_u64("mb_mod_size", &want_size);
        cmdline_u64("mb_mod_fnv", &want_fnv);
        cmdline_u64("mb_mod_arg", &want_arg);
        if (mod->mod_start & 0xfff) return test_fail("module at %x is not page-aligned", mod->mod_start);
        if (mod->mod_start < (uint32_t)(uintptr_t)__image_end)
            return test_fail("module at %x overlaps the image (ends %p)", mod->mod_start, (void *)__image_end);
        if (size != want_size || h != want_fnv)
            return test_fail("module: %u bytes fnv %x, want %lu bytes fnv %lx", size, h, want_size, want_fnv);
        uint64_t got_arg = 0;
        for (arg = arg ? arg + 6 : ""; *arg >= '0' && *arg <= '9'; arg++) got_arg = got_arg * 10 + (uint64_t)(*arg - '0');
        if (got_arg != want_arg) return test_fail("module string \"%s\": want mbarg=%lu", str, want_arg);
        printk("INFO multiboot module 0 at %x, %u bytes, \"%s\"\n", mod->mod_start, size, str);
    }
    test_pass("loader=%s mem_lower=%u mem_upper=%u mods=%u", name, mi->mem_lower, mi->mem_upper, mi->mods_count);
}
GUEST_TEST(multiboot, test_multiboot, TEST_NORMAL, "multiboot v1 entry, boot information and modules");
