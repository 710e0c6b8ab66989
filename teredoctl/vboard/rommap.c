/* Preloaded (LD_PRELOAD) into a standalone MicroPython unix-port binary (the
 * 32-bit build that stands for a board) by the virtual board: before main()
 * it maps each ROMFS image named in VBOARD_MAP_<NAME>=PATH read-only into
 * memory, outside the MicroPython heap, and sets VBOARD_<NAME>=ADDR:SIZE,
 * which vboard/rom/_boot.py mounts with vfs.VfsRom as a board mounts its
 * memory-mapped flash.  The same job teredoctl/vboard/romfs.py does for the
 * pip build, which runs inside CPython.  Names: SHIMS, ROMFS.
 * Built by the vboard with the host's cc (-m32 for a 32-bit binary). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void map_one(const char *name) {
    char var[64], val[64];
    snprintf(var, sizeof var, "VBOARD_MAP_%s", name);
    const char *path = getenv(var);
    if (path == NULL || *path == 0) {
        return;
    }
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "vboard rommap: cannot read %s\n", path);
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        fprintf(stderr, "vboard rommap: cannot map %s\n", path);
        return;
    }
    snprintf(var, sizeof var, "VBOARD_%s", name);
    snprintf(val, sizeof val, "%lu:%lu", (unsigned long)(uintptr_t)p, (unsigned long)st.st_size);
    setenv(var, val, 1);
}

__attribute__((constructor)) static void vboard_rommap(void) {
    map_one("SHIMS");
    map_one("ROMFS");
    unsetenv("LD_PRELOAD"); /* not for programs the board might start */
}
