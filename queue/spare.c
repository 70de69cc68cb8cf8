/*
 * queue/spare.c — the pool of spare queue files: a directory of empty
 * files named by number and a stack of those numbers behind a mutex.  It
 * must never hand out a file that still holds mail, and never replace an
 * existing file when a spare is renamed into place.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/spare.h"

struct spares {
    char dir[PATH_MAX];
    pthread_mutex_t mu;
    unsigned long *stack;        /* numbers of the files in the pool */
    size_t n, max;
    unsigned long next;          /* next unused number */
};

static void spare_path(const struct spares *s, unsigned long num, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%lu", s->dir, num);
}

static int parse_num(const char *name, unsigned long *out)
{
    char *end;
    if (name[0] < '0' || name[0] > '9')
        return -1;
    errno = 0;
    *out = strtoul(name, &end, 10);
    return errno || *end ? -1 : 0;
}

/* Adopt what a previous run left in the pool. */
static void adopt(struct spares *s)
{
    DIR *d = opendir(s->dir);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d))) {
        unsigned long num;
        if (de->d_name[0] == '.')
            continue;
        if (parse_num(de->d_name, &num) < 0 || s->n == s->max) {
            unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        s->stack[s->n++] = num;
        if (num >= s->next)
            s->next = num + 1;
    }
    closedir(d);
}

struct spares *spares_open(const char *dir, size_t max)
{
    struct spares *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->stack = calloc(max ? max : 1, sizeof *s->stack);
    if (!s->stack) {
        free(s);
        return NULL;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->max = max;
    pthread_mutex_init(&s->mu, NULL);
    adopt(s);
    return s;
}

static int pop(struct spares *s, unsigned long *num)
{
    int ok = 0;
    pthread_mutex_lock(&s->mu);
    if (s->n > 0) {
        *num = s->stack[--s->n];
        ok = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int spares_take(struct spares *s, const char *path)
{
    unsigned long num;
    char from[PATH_MAX];
    while (pop(s, &num)) {
        spare_path(s, num, from, sizeof from);
        if (renameat2(AT_FDCWD, from, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
            if (errno == EEXIST) {
                spares_put(s, from);     /* give it back; the caller picks a new name */
                errno = EEXIST;
                return -1;
            }
            continue;                    /* gone (ENOENT): try the next one */
        }
        return open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    }
    errno = ENOENT;
    return -1;
}

int spares_put(struct spares *s, const char *path)
{
    unsigned long num;
    char to[PATH_MAX];
    pthread_mutex_lock(&s->mu);
    if (s->n == s->max) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    num = s->next++;
    pthread_mutex_unlock(&s->mu);
    spare_path(s, num, to, sizeof to);
    if (rename(path, to) < 0)
        return -1;
    if (truncate(to, 0) < 0) {       /* a spare must never hold mail */
        unlink(to);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    if (s->n < s->max)
        s->stack[s->n++] = num;
    else
        unlink(to);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

size_t spares_count(struct spares *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void spares_close(struct spares *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    free(s->stack);
    free(s);
}
