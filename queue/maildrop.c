/*
 * queue/maildrop.c — the maildrop file (format in maildrop.h): writing one
 * durably for hato-sendmail, and parsing its header for hatod's pickup.
 *
 * Owns the file name scheme "QUEUEID.RANDOM" (the random part keeps names
 * unguessable in the world-writable directory) and the write protocol:
 * NAME.tmp with O_EXCL, write, fsync, rename to NAME, fsync the directory.
 * Blocking I/O: call it from a command-line tool or a worker, never from
 * the event loop.  Parsing is pure and must survive any input.
 * The %-encoding itself lives in envelope.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/pctenc.h"
#include "queue/maildrop.h"
#include "queue/qid.h"

#define MD_HEADER      "hato-maildrop 1"
#define MD_TMP_SUFFIX  ".tmp"
#define MD_MAX_LINE    8192     /* octets in a header line, without '\n' */
#define MD_MAX_RCPT    100000   /* recipients in one file */
#define MD_NAME_TRIES  8        /* O_EXCL collisions before giving up */
#define MD_COPY_BUF    65536    /* read size when copying the content */
#define MD_FILE_MODE   0644     /* readable by hatod's run_user */
#define MD_RCPT_CAP0   4        /* first recipient array size */
#define MD_UID_MAX     4294967294LL   /* (uid_t)-1 is no uid */

/* ------------------------------------------------------------------ */
/* writing                                                             */

static int md_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* "key VALUE\n" (or "key\n" for an empty value). */
static int md_put_line(FILE *f, const char *key, const char *val)
{
    char enc[MD_MAX_LINE + 1];

    if (pct_encode(val, enc, sizeof(enc) - strlen(key) - 1, 0) < 0) {
        errno = EINVAL;
        return -1;
    }
    return fprintf(f, "%s%s%s\n", key, enc[0] ? " " : "", enc) < 0 ? -1 : 0;
}

static int md_header(const char *sender, char *const *rcpts, size_t nrcpt,
                     char **out, size_t *outlen)
{
    FILE *f = open_memstream(out, outlen);
    size_t i;
    int rc = 0;

    if (f == NULL)
        return -1;
    if (fprintf(f, "%s\n", MD_HEADER) < 0 || md_put_line(f, "sender", sender) < 0 ||
        fprintf(f, "uid %u\n", (unsigned)geteuid()) < 0)
        rc = -1;
    for (i = 0; rc == 0 && i < nrcpt; i++) {
        if (rcpts[i] == NULL || rcpts[i][0] == '\0') {
            errno = EINVAL;
            rc = -1;
        } else {
            rc = md_put_line(f, "rcpt", rcpts[i]);
        }
    }
    if (rc == 0 && fputc('\n', f) == EOF)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static int md_copy(int in, int out)
{
    char *buf = malloc(MD_COPY_BUF);
    int rc = 0;

    if (buf == NULL)
        return -1;
    for (;;) {
        ssize_t r = read(in, buf, MD_COPY_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r == 0)
            break;
        if (md_write_all(out, buf, (size_t)r) < 0) {
            rc = -1;
            break;
        }
    }
    free(buf);
    return rc;
}

/* Make the rename durable.  The maildrop (mode 1733) cannot be opened by
 * other users, so for them syncfs() through the new file does the job. */
static int md_fsync_dir(const char *dir, const char *final)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int whole_fs = fd < 0 && errno == EACCES;
    if (whole_fs)
        fd = open(final, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = whole_fs ? syncfs(fd) : fsync(fd);
    if (close(fd) != 0)
        rc = -1;
    return rc;
}

/* Create DIR/NAME.tmp under a fresh name.  fd or -1. */
static int md_create(const char *dir, char *name, size_t namelen, char *tmp,
                     size_t tmplen)
{
    int tries;

    for (tries = 0; tries < MD_NAME_TRIES; tries++) {
        char id[QID_LEN + 1];
        uint64_t rnd = 0;
        int fd, n;

        qid_new(id);
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            rnd = ((uint64_t)getpid() << 20) ^ (uint64_t)tries;
        n = snprintf(name, namelen, "%s.%016llX", id, (unsigned long long)rnd);
        if (n < 0 || (size_t)n >= namelen) {
            errno = ERANGE;
            return -1;
        }
        n = snprintf(tmp, tmplen, "%s/%s%s", dir, name, MD_TMP_SUFFIX);
        if (n < 0 || (size_t)n >= tmplen) {
            errno = ENAMETOOLONG;
            return -1;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  MD_FILE_MODE);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Header + content into fd, then fsync.  0 or -1. */
static int md_fill(int fd, const char *hdr, size_t hdrlen, int in)
{
    if (fchmod(fd, MD_FILE_MODE) < 0)
        return -1;
    if (md_write_all(fd, hdr, hdrlen) < 0 || md_copy(in, fd) < 0)
        return -1;
    return fsync(fd);
}

int maildrop_write(const char *dir, const char *sender, char *const *rcpts,
                   size_t nrcpt, int in, char *name, size_t namelen)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    char *hdr = NULL;
    size_t hdrlen = 0;
    int fd, rc, saved;

    if (nrcpt == 0 || nrcpt > MD_MAX_RCPT || rcpts == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (md_header(sender, rcpts, nrcpt, &hdr, &hdrlen) < 0)
        return -1;
    fd = md_create(dir, name, namelen, tmp, sizeof(tmp));
    if (fd < 0) {
        free(hdr);
        return -1;
    }
    rc = md_fill(fd, hdr, hdrlen, in);
    saved = errno;
    free(hdr);
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc == 0 && snprintf(final, sizeof(final), "%s/%s", dir, name) >= (int)sizeof(final)) {
        rc = -1;
        saved = ENAMETOOLONG;
    }
    if (rc == 0 && (rename(tmp, final) < 0 || md_fsync_dir(dir, final) < 0)) {
        rc = -1;
        saved = errno;
    }
    if (rc < 0) {
        (void)unlink(tmp);     /* debris; the error that matters is saved */
        errno = saved;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

static int md_fail(char *err, size_t errlen, const char *why)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", why);
    return -1;
}

/* Decode the value of "key" or "key VALUE" in line into *out. */
static int md_value(const char *line, const char *key, char **out)
{
    size_t k = strlen(key), n;
    const char *v;
    char *s;

    if (strncmp(line, key, k) != 0 || (line[k] != '\0' && line[k] != ' '))
        return -1;
    v = line[k] == ' ' ? line + k + 1 : line + k;
    if (strchr(v, ' ') != NULL)
        return -1;
    n = strlen(v);
    s = malloc(n + 1);
    if (s == NULL)
        return -1;
    if (pct_decode(v, s, n + 1, 0) < 0) {
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int md_add_rcpt(struct maildrop_hdr *h, char *r)
{
    char **n;

    if (h->nrcpt >= MD_MAX_RCPT)
        return -1;
    if ((h->nrcpt & (h->nrcpt - 1)) == 0) {   /* 0 or a power of two: double */
        size_t cap = h->nrcpt < MD_RCPT_CAP0 ? MD_RCPT_CAP0 : h->nrcpt * 2;
        n = realloc(h->rcpts, cap * sizeof(*n));
        if (n == NULL)
            return -1;
        h->rcpts = n;
    }
    h->rcpts[h->nrcpt++] = r;
    return 0;
}

static int md_line_chars_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* "uid N": decimal digits only, no sign, no leading zero. */
static int md_uid(const char *line, long long *uid)
{
    const char *v = line + 4;
    long long n = 0;

    if (strncmp(line, "uid ", 4) != 0 || v[0] < '0' || v[0] > '9' ||
        (v[0] == '0' && v[1] != '\0'))
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        n = n * 10 + (*v - '0');
        if (n > MD_UID_MAX)
            return -1;
    }
    *uid = n;
    return 0;
}

/* One header line (lineno from 1).  0, 1 at the blank line, or -1. */
static int md_parse_line(struct maildrop_hdr *h, size_t lineno, const char *line,
                         char *err, size_t errlen)
{
    char *v = NULL;

    if (lineno == 1)
        return strcmp(line, MD_HEADER) == 0 ? 0 :
               md_fail(err, errlen, "not a version 1 maildrop file");
    if (lineno == 2)
        return md_value(line, "sender", &h->sender) == 0 ? 0 :
               md_fail(err, errlen, "bad sender line");
    if (lineno == 3 && strncmp(line, "uid", 3) == 0)
        return md_uid(line, &h->uid) == 0 ? 0 : md_fail(err, errlen, "bad uid line");
    if (line[0] == '\0')
        return h->nrcpt > 0 ? 1 : md_fail(err, errlen, "no recipients");
    if (md_value(line, "rcpt", &v) < 0 || v[0] == '\0') {
        free(v);
        return md_fail(err, errlen, "bad recipient line");
    }
    if (md_add_rcpt(h, v) < 0) {
        free(v);
        return md_fail(err, errlen, "too many recipients");
    }
    return 0;
}

static int md_parse_lines(const char *buf, size_t len, struct maildrop_hdr *h,
                          char *err, size_t errlen)
{
    char line[MD_MAX_LINE + 1];
    size_t pos = 0, lineno = 0;

    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n;
        int rc;
        if (nl == NULL)
            break;
        n = (size_t)(nl - (buf + pos));
        if (n > MD_MAX_LINE)
            return md_fail(err, errlen, "line too long");
        if (!md_line_chars_ok(buf + pos, n))
            return md_fail(err, errlen, "bad character in header");
        memcpy(line, buf + pos, n);
        line[n] = '\0';
        pos += n + 1;
        rc = md_parse_line(h, ++lineno, line, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            h->body_offset = pos;
            return 0;
        }
    }
    return md_fail(err, errlen, "truncated header");
}

size_t maildrop_header_end(const char *buf, size_t len)
{
    const char *p = len >= 2 ? memmem(buf, len, "\n\n", 2) : NULL;

    return p == NULL ? 0 : (size_t)(p - buf) + 2;
}

int maildrop_parse(const char *buf, size_t len, struct maildrop_hdr *h,
                   char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    h->uid = -1;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (buf == NULL)
        len = 0;
    if (md_parse_lines(buf, len, h, err, errlen) < 0) {
        maildrop_hdr_free(h);
        return -1;
    }
    return 0;
}

void maildrop_hdr_free(struct maildrop_hdr *h)
{
    size_t i;

    for (i = 0; i < h->nrcpt; i++)
        free(h->rcpts[i]);
    free(h->rcpts);
    free(h->sender);
    memset(h, 0, sizeof(*h));
    h->uid = -1;
}
