/*
 * store/layout.c — a mailbox's folders and subscriptions (store/layout.h).
 * Owns the list of special folders and the subscriptions file's format.
 * Never removes or renames anything, never rewrites a file that exists.
 * The folders are not fsynced: losing them to a power cut loses no mail,
 * and the next login makes them again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "store/layout.h"
#include "store/maildir.h"

#define LAYOUT_MODE      0700
#define LAYOUT_FILE_MODE 0600

const char *const store_special_folders[STORE_NSPECIAL] = { "Sent", "Drafts", "Trash", "Junk" };

/* Tmp names for the subscriptions file: unique across threads. */
static atomic_ulong layout_counter;

/* An empty file, made if missing. */
static int touch(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, LAYOUT_FILE_MODE);

    if (fd < 0)
        return -1;
    return close(fd);
}

/* root/.NAME with cur/ new/ tmp/ and maildirfolder (Maildir++). */
static int folder_ensure(const char *root, const char *name)
{
    static const char *const subs[] = { "cur", "new", "tmp" };
    char dir[PATH_MAX], leaf[16], path[PATH_MAX];

    snprintf(leaf, sizeof(leaf), ".%s", name);
    if (fs_join(dir, sizeof(dir), root, leaf) != 0 ||
        fs_join(path, sizeof(path), dir, "tmp") != 0)
        return -1;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;                       /* there: one stat per folder */
    if (fs_mkdir(dir, LAYOUT_MODE) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (fs_join(path, sizeof(path), dir, subs[i]) != 0 || fs_mkdir(path, LAYOUT_MODE) != 0)
            return -1;
    if (fs_join(path, sizeof(path), dir, "maildirfolder") != 0)
        return -1;
    return touch(path);
}

/* The subscriptions file, unless one exists: written whole to a tmp name
 * and linked into place, so a reader sees all of it or none, and a file
 * the user (or a concurrent call) made first wins. */
static int subscriptions_ensure(const char *root)
{
    char path[PATH_MAX], tmp[PATH_MAX], text[128];
    size_t n = 0;
    int fd, r, saved;

    if (fs_join(path, sizeof(path), root, STORE_SUBSCRIPTIONS) != 0)
        return -1;
    if (access(path, F_OK) == 0)
        return 0;
    for (size_t i = 0; i < STORE_NSPECIAL; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\n", store_special_folders[i]);
    r = snprintf(tmp, sizeof(tmp), "%s/tmp/%s.%ld.%lu", root, STORE_SUBSCRIPTIONS,
                 (long)getpid(), atomic_fetch_add(&layout_counter, 1));
    if (r < 0 || (size_t)r >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, LAYOUT_FILE_MODE);
    if (fd < 0)
        return -1;
    r = fs_write_all(fd, text, n);
    if (close(fd) != 0)
        r = -1;
    if (r == 0 && link(tmp, path) != 0 && errno != EEXIST)
        r = -1;
    saved = errno;
    (void)unlink(tmp);
    errno = saved;
    return r;
}

int store_layout_ensure(const char *root)
{
    const char *base = strrchr(root, '/');

    base = base ? base + 1 : root;
    if (base[0] == '.')
        return 0;
    char tmp[PATH_MAX];
    struct stat st;
    if (fs_join(tmp, sizeof(tmp), root, "tmp") != 0)
        return -1;
    if ((stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) && maildir_create(root) != 0)
        return -1;
    for (size_t i = 0; i < STORE_NSPECIAL; i++)
        if (folder_ensure(root, store_special_folders[i]) != 0)
            return -1;
    return subscriptions_ensure(root);
}
