/*
 * t/integ/shims/gate_queue_drop.c — LD_PRELOAD shim for hatod: unlink() and
 * truncate() of a file in a queue's tmp/ or free/ directory (dropping an
 * unfinished message frees its blocks there) first create
 * $HATO_SHIM_GATE/entered-loop or .../entered-worker (which thread: the
 * loop is hatod's main thread), then wait until $HATO_SHIM_GATE/release
 * exists, then do the call.  So a test can hold a drop for as long as it
 * likes and see what the rest of hatod does meanwhile.  Every other call
 * goes straight through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static int is_queue_drop(const char *path)
{
    return path && (strstr(path, "/queue/tmp/") || strstr(path, "/queue/free/"));
}

static void gate(void)
{
    const char *dir = getenv("HATO_SHIM_GATE");
    char p[PATH_MAX];
    struct stat st;
    if (!dir)
        return;
    int loop = syscall(SYS_gettid) == getpid();
    snprintf(p, sizeof p, "%s/entered-%s", dir, loop ? "loop" : "worker");
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    snprintf(p, sizeof p, "%s/release", dir);
    while (stat(p, &st) < 0)
        usleep(10000);
}

int unlink(const char *path)
{
    static int (*real)(const char *);
    if (!real)
        real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    if (is_queue_drop(path))
        gate();
    return real(path);
}

int truncate(const char *path, off_t len)
{
    static int (*real)(const char *, off_t);
    if (!real)
        real = (int (*)(const char *, off_t))dlsym(RTLD_NEXT, "truncate");
    if (is_queue_drop(path))
        gate();
    return real(path, len);
}
