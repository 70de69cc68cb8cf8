/*
 * auth/users.c — the user table (`users_file`) and its atomic edits.
 *
 * Owns: parsing "address hash [quota=SIZE] [cram-md5=HEX]
 * [scram-sha-256=I:S:K:K]" lines (errors as FILE:LINE),
 * the in-memory hash table (open addressing on lower-cased addresses, so a
 * lookup costs O(1) for 100k users), and `hatoctl user add|del`: read the
 * file, change only the line(s) of one address, keep every other byte,
 * write tmp + fsync + rename + fsync of the directory, keep the file mode;
 * `hatoctl user passwd` replaces a line's hash and secrets, keeping its
 * other options.
 *
 * Never checks passwords (that is auth/ password code) and never logs.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base64.h"
#include "lib/fsutil.h"
#include "lib/hash.h"
#include "auth/users.h"

#define USERS_ADDR_MAX    320                 /* octets of an address */
#define USERS_FILE_MAX    (256L * 1024 * 1024) /* refuse bigger files */
#define USERS_NEW_MODE    0640
#define USERS_MIN_SLOTS   16
#define USERS_PATH_MAX    4096
#define USERS_FIELDS_MAX  6                   /* address, hash, 4 options */

struct usertab {
    struct user *v;
    size_t n, cap;
    size_t *slot;       /* index + 1 into v; 0 = empty */
    size_t nslot;       /* power of two, > 2 * n */
};

/* ---- helpers --------------------------------------------------------- */

static void err_fmt(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_fmt(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* "100", "512K", "10M", "1G" (1024-based, either case). */
static int parse_size(const char *s, size_t len, long long *out)
{
    long long v = 0, mul = 1;
    size_t i;

    if (len > 0) {
        switch (s[len - 1]) {
        case 'k': case 'K': mul = 1024LL; len--; break;
        case 'm': case 'M': mul = 1024LL * 1024; len--; break;
        case 'g': case 'G': mul = 1024LL * 1024 * 1024; len--; break;
        default: break;
        }
    }
    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > INT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

/* Exactly one '@', something on each side, no blanks, <= 320 octets. */
static const char *check_address(const char *a, size_t len)
{
    const char *at;
    size_t i;

    if (len == 0 || len > USERS_ADDR_MAX)
        return "bad address length";
    for (i = 0; i < len; i++) {
        if ((unsigned char)a[i] <= ' ' || a[i] == 0x7f)
            return "bad character in address";
    }
    at = memchr(a, '@', len);
    if (at == NULL || memchr(at + 1, '@', len - (size_t)(at - a) - 1) != NULL)
        return "address needs exactly one '@'";
    if (at == a || at == a + len - 1)
        return "address needs a local part and a domain";
    return NULL;
}

static char *dup_lower(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    size_t i;

    if (d == NULL)
        return NULL;
    for (i = 0; i < len; i++)
        d[i] = (char)tolower((unsigned char)s[i]);
    d[len] = '\0';
    return d;
}

/* ---- whole-file read and atomic write --------------------------------- */


/* ---- the table ------------------------------------------------------- */

static size_t *slot_find(const struct usertab *t, const char *addr, size_t len)
{
    size_t mask = t->nslot - 1;
    size_t i = (size_t)hash_lower(addr, len) & mask;

    for (;; i = (i + 1) & mask) {
        const struct user *u;
        if (t->slot[i] == 0)
            return &t->slot[i];
        u = &t->v[t->slot[i] - 1];
        if (strlen(u->address) == len && strncasecmp(u->address, addr, len) == 0)
            return &t->slot[i];
    }
}

static int table_grow(struct usertab *t)
{
    size_t i, nslot = t->nslot ? t->nslot * 2 : USERS_MIN_SLOTS;
    size_t *slot = calloc(nslot, sizeof(*slot));
    size_t *old = t->slot;

    if (slot == NULL)
        return -1;
    t->slot = slot;
    t->nslot = nslot;
    for (i = 0; i < t->n; i++) {
        const char *a = t->v[i].address;
        *slot_find(t, a, strlen(a)) = i + 1;
    }
    free(old);
    return 0;
}

/* Add a user (address already lower-case); 1 if it exists, -1 on ENOMEM.
 * Takes ownership of address, hash and secrets on success. */
static int table_add(struct usertab *t, char *address, char *hash, long long quota,
                     struct user_secrets *secrets)
{
    size_t *s;

    if ((t->n + 1) * 2 >= t->nslot && table_grow(t) != 0)
        return -1;
    s = slot_find(t, address, strlen(address));
    if (*s != 0)
        return 1;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : USERS_MIN_SLOTS;
        struct user *v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n].address = address;
    t->v[t->n].hash = hash;
    t->v[t->n].quota = quota;
    t->v[t->n].secrets = secrets;
    *s = ++t->n;
    return 0;
}

/* ---- parsing --------------------------------------------------------- */

struct field {
    const char *p;
    size_t len;
};

/* Split a line into at most `max` blank-separated fields; returns the
 * count, or max + 1 when there are more. */
static size_t split_fields(const char *line, size_t len, struct field *f, size_t max)
{
    size_t i = 0, n = 0;

    while (i < len) {
        size_t start;
        while (i < len && is_space(line[i]))
            i++;
        if (i >= len)
            break;
        if (n == max)
            return max + 1;
        start = i;
        while (i < len && !is_space(line[i]))
            i++;
        f[n].p = line + start;
        f[n].len = i - start;
        n++;
    }
    return n;
}

/* Blank, or first non-blank octet is '#'. */
static int is_comment_or_blank(const char *line, size_t len)
{
    size_t i = 0;

    while (i < len && is_space(line[i]))
        i++;
    return i == len || line[i] == '#';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* cram-md5=: exactly 2 * USERS_CRAM_LEN hex digits. */
static const char *parse_cram(const char *p, size_t len, struct user_secrets *s)
{
    if (len != 2 * USERS_CRAM_LEN)
        return "cram-md5 wants 64 hex digits";
    for (size_t i = 0; i < USERS_CRAM_LEN; i++) {
        int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return "cram-md5 wants 64 hex digits";
        s->cram_md5[i] = (unsigned char)(hi << 4 | lo);
    }
    s->has_cram = 1;
    return NULL;
}

/* The next ':'-separated part of [*p, end) as base64 of min..max octets. */
static int scram_part(const char **p, const char *end, unsigned char *out, size_t min,
                      size_t max, size_t *outlen)
{
    const char *colon = memchr(*p, ':', (size_t)(end - *p));
    const char *stop = colon ? colon : end;
    size_t n;

    if (b64_decode(*p, (size_t)(stop - *p), out, max, &n) != B64_OK || n < min)
        return -1;
    *outlen = n;
    *p = colon ? colon + 1 : end;
    return 0;
}

/* scram-sha-256=ITER:SALT:STOREDKEY:SERVERKEY */
static const char *parse_scram(const char *p, size_t len, struct user_secrets *s)
{
    const char *end = p + len;
    long iter = 0;
    size_t n;

    while (p < end && *p >= '0' && *p <= '9' && iter <= USERS_SCRAM_ITER_MAX)
        iter = iter * 10 + (*p++ - '0');
    if (p == end || *p != ':' || iter < USERS_SCRAM_ITER_MIN || iter > USERS_SCRAM_ITER_MAX)
        return "scram-sha-256 iteration count must be 4096..10000000";
    p++;
    if (memchr(p, ':', (size_t)(end - p)) == NULL
        || scram_part(&p, end, s->scram_salt, USERS_SCRAM_SALT_MIN, USERS_SCRAM_SALT_MAX,
                      &s->scram_salt_len) != 0)
        return "scram-sha-256 salt must be base64 of 8..64 octets";
    if (memchr(p, ':', (size_t)(end - p)) == NULL
        || scram_part(&p, end, s->scram_stored_key, USERS_SCRAM_KEY_LEN, USERS_SCRAM_KEY_LEN,
                      &n) != 0
        || memchr(p, ':', (size_t)(end - p)) != NULL
        || scram_part(&p, end, s->scram_server_key, USERS_SCRAM_KEY_LEN, USERS_SCRAM_KEY_LEN,
                      &n) != 0)
        return "scram-sha-256 wants ITER:SALT:STOREDKEY:SERVERKEY (keys base64 of 32 octets)";
    s->scram_iter = iter;
    s->has_scram = 1;
    return NULL;
}

static int opt_is(const struct field *f, const char *name)
{
    size_t n = strlen(name);

    return f->len > n && strncmp(f->p, name, n) == 0 && f->p[n] == '=';
}

/* apop=: base64 of 1..USERS_APOP_MAX octets without NUL. */
static const char *parse_apop(const char *p, size_t len, struct user_secrets *s)
{
    size_t n;

    if (b64_decode(p, len, (unsigned char *)s->apop, USERS_APOP_MAX, &n) != B64_OK || n == 0
        || memchr(s->apop, '\0', n) != NULL)
        return "apop wants base64 of a password (1..256 octets)";
    s->apop[n] = '\0';
    s->has_apop = 1;
    return NULL;
}

/* One key=value option after the hash; *seen tracks duplicates. */
static const char *parse_opt(const struct field *f, long long *quota, struct user_secrets *s,
                             unsigned *seen)
{
    static const char *const names[] = { "quota", "cram-md5", "scram-sha-256", "apop" };
    unsigned i;

    for (i = 0; i < 4 && !opt_is(f, names[i]); i++)
        ;
    if (i == 4)
        return "unknown option (want quota=SIZE, cram-md5=HEX, scram-sha-256=I:S:K:K or apop=B64)";
    if (*seen & (1u << i))
        return "option given twice";
    *seen |= 1u << i;
    if (i == 0 && f->len == 15 && memcmp(f->p + 6, "unlimited", 9) == 0) {
        *quota = USERS_QUOTA_UNLIMITED;
        return NULL;
    }
    if (i == 0)
        return parse_size(f->p + 6, f->len - 6, quota) != 0 ? "bad quota size" : NULL;
    if (i == 1)
        return parse_cram(f->p + 9, f->len - 9, s);
    if (i == 3)
        return parse_apop(f->p + 5, f->len - 5, s);
    return parse_scram(f->p + 14, f->len - 14, s);
}

/* The options of a line into quota and a new secrets (or NULL). */
static const char *parse_opts(const struct field *f, size_t nf, long long *quota,
                              struct user_secrets **secrets)
{
    struct user_secrets s;
    const char *why = NULL;
    unsigned seen = 0;

    memset(&s, 0, sizeof(s));
    *quota = 0;
    *secrets = NULL;
    for (size_t i = 2; i < nf && why == NULL; i++)
        why = parse_opt(&f[i], quota, &s, &seen);
    if (why == NULL && (s.has_cram || s.has_scram || s.has_apop)) {
        *secrets = malloc(sizeof(s));
        if (*secrets == NULL)
            why = "out of memory";
        else
            memcpy(*secrets, &s, sizeof(s));
    }
    explicit_bzero(&s, sizeof(s));
    return why;
}

static void secrets_free(struct user_secrets *s)
{
    if (s != NULL) {
        explicit_bzero(s, sizeof(*s));
        free(s);
    }
}

/* One non-comment line into t.  NULL or the reason. */
static const char *parse_line(struct usertab *t, const struct field *f, size_t nf)
{
    struct user_secrets *secrets = NULL;
    const char *why;
    char *address, *hash;
    long long quota = 0;
    int r;

    if (nf > USERS_FIELDS_MAX)
        return "too many fields";
    why = check_address(f[0].p, f[0].len);
    if (why != NULL)
        return why;
    if (nf < 2)
        return "missing password hash";
    if ((why = parse_opts(f, nf, &quota, &secrets)) != NULL)
        return why;
    address = dup_lower(f[0].p, f[0].len);
    hash = strndup(f[1].p, f[1].len);
    if (address == NULL || hash == NULL
        || (r = table_add(t, address, hash, quota, secrets)) < 0) {
        free(address);
        free(hash);
        secrets_free(secrets);
        return "out of memory";
    }
    if (r > 0) {
        free(address);
        free(hash);
        secrets_free(secrets);
        return "duplicate address";
    }
    return NULL;
}

static struct usertab *table_new(void)
{
    struct usertab *t = calloc(1, sizeof(*t));

    if (t != NULL && table_grow(t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

struct usertab *users_load(const char *path, char *err, size_t errlen)
{
    struct usertab *t;
    char *text;
    size_t len, lineno = 0;
    const char *p, *end;

    if (fs_read_file_or_empty(path, USERS_FILE_MAX, &text, &len) != 0) {
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    t = table_new();
    if (t == NULL) {
        err_fmt(err, errlen, "%s: out of memory", path);
        free(text);
        return NULL;
    }
    for (p = text, end = text + len; p < end; ) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct field f[USERS_FIELDS_MAX];
        const char *why = NULL;
        lineno++;
        if (memchr(p, '\0', l) != NULL)
            why = "NUL byte in line";
        else if (!is_comment_or_blank(p, l))
            why = parse_line(t, f, split_fields(p, l, f, USERS_FIELDS_MAX));
        if (why != NULL) {
            err_fmt(err, errlen, "%s:%zu: %s", path, lineno, why);
            users_free(t);
            free(text);
            return NULL;
        }
        p = nl ? nl + 1 : end;
    }
    free(text);
    return t;
}

const struct user *users_find(const struct usertab *t, const char *address)
{
    size_t len, s;

    if (t == NULL || address == NULL)
        return NULL;
    len = strlen(address);
    if (len > USERS_ADDR_MAX)
        return NULL;
    s = *slot_find(t, address, len);
    return s ? &t->v[s - 1] : NULL;
}

size_t users_count(const struct usertab *t)
{
    return t ? t->n : 0;
}

const struct user *users_at(const struct usertab *t, size_t i)
{
    return t && i < t->n ? &t->v[i] : NULL;
}

void users_free(struct usertab *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->n; i++) {
        free(t->v[i].address);
        free(t->v[i].hash);
        secrets_free(t->v[i].secrets);
    }
    free(t->v);
    free(t->slot);
    free(t);
}

/* ---- edits ------------------------------------------------------------ */

/* Does this line define `address` (case-insensitive)? */
static int line_is(const char *line, size_t len, const char *address)
{
    struct field f[1];

    if (is_comment_or_blank(line, len) || split_fields(line, len, f, 1) == 0)
        return 0;
    return f[0].len == strlen(address) && strncasecmp(f[0].p, address, f[0].len) == 0;
}

/* Copy text without the lines defining address into out; count removed. */
static size_t drop_lines(const char *text, size_t len, const char *address,
                         char *out, size_t *outlen)
{
    const char *p = text, *end = text + len;
    size_t removed = 0, o = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t full = nl ? l + 1 : l;
        if (line_is(p, l, address)) {
            removed++;
        } else {
            memcpy(out + o, p, full);
            o += full;
        }
        p += full;
    }
    *outlen = o;
    return removed;
}

static void format_size(char *buf, size_t len, long long v)
{
    static const char sfx[] = "GMK";
    long long unit = 1024LL * 1024 * 1024;
    int i;

    for (i = 0; i < 3; i++, unit /= 1024) {
        if (v >= unit && v % unit == 0) {
            snprintf(buf, len, "%lld%c", v / unit, sfx[i]);
            return;
        }
    }
    snprintf(buf, len, "%lld", v);
}

static const char *check_hash(const char *hash)
{
    const char *p;

    if (hash == NULL || hash[0] == '\0')
        return "empty password hash";
    if (hash[0] == '#')
        return "password hash may not start with '#'";
    for (p = hash; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "bad character in password hash";
    }
    return NULL;
}

int users_file_add(const char *path, const char *address, const char *hash,
                   long long quota, char *err, size_t errlen)
{
    char qbuf[32], *text, *addr, *out;
    const char *why;
    size_t len, o;
    int r;

    why = address ? check_address(address, strlen(address)) : "no address";
    if (why == NULL)
        why = check_hash(hash);
    if (why == NULL && quota < 0)
        why = "negative quota";
    if (why != NULL) {
        err_fmt(err, errlen, "%s: %s", address ? address : "", why);
        return -1;
    }
    if (fs_read_file_or_empty(path, USERS_FILE_MAX, &text, &len) != 0) {
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    addr = dup_lower(address, strlen(address));
    out = malloc(len + strlen(address) + strlen(hash) + 64);
    if (addr == NULL || out == NULL) {
        err_fmt(err, errlen, "%s: out of memory", path);
        free(text); free(addr); free(out);
        return -1;
    }
    if (drop_lines(text, len, addr, out, &o) > 0) {
        err_fmt(err, errlen, "%s: user %s already exists", path, addr);
        free(text); free(addr); free(out);
        return -1;
    }
    if (o > 0 && out[o - 1] != '\n')
        out[o++] = '\n';
    qbuf[0] = '\0';
    if (quota > 0) {
        memcpy(qbuf, " quota=", 8);
        format_size(qbuf + 7, sizeof(qbuf) - 7, quota);
    }
    o += (size_t)sprintf(out + o, "%s %s%s\n", addr, hash, qbuf);
    r = fs_replace(path, out, o, USERS_NEW_MODE);
    if (r != 0)
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
    free(text); free(addr); free(out);
    return r;
}

int users_file_del(const char *path, const char *address, char *err, size_t errlen)
{
    char *text, *out;
    size_t len, o;
    int r;

    if (address == NULL || address[0] == '\0') {
        err_fmt(err, errlen, "%s: no address", path);
        return -1;
    }
    if (fs_read_file_or_empty(path, USERS_FILE_MAX, &text, &len) != 0) {
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    out = malloc(len + 1);
    if (out == NULL) {
        err_fmt(err, errlen, "%s: out of memory", path);
        free(text);
        return -1;
    }
    if (drop_lines(text, len, address, out, &o) == 0) {
        err_fmt(err, errlen, "%s: no such user %s", path, address);
        free(text); free(out);
        return -1;
    }
    r = fs_replace(path, out, o, USERS_NEW_MODE);
    if (r != 0)
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
    free(text); free(out);
    return r;
}

/* The line for `address` with its hash and secrets replaced, into a new
 * malloc'd string (no newline); NULL + reason. */
static char *passwd_line(const char *line, size_t len, const char *hash, const char *secrets,
                         const char **why)
{
    struct field f[USERS_FIELDS_MAX];
    size_t nf = split_fields(line, len, f, USERS_FIELDS_MAX), cap, o;
    char *out;

    if (nf > USERS_FIELDS_MAX) {
        *why = "too many fields on the existing line";
        return NULL;
    }
    cap = len + strlen(hash) + (secrets ? strlen(secrets) : 0) + 4;
    if ((out = malloc(cap)) == NULL) {
        *why = "out of memory";
        return NULL;
    }
    o = (size_t)snprintf(out, cap, "%.*s %s", (int)f[0].len, f[0].p, hash);
    for (size_t i = 2; i < nf; i++) {
        if (opt_is(&f[i], "cram-md5") || opt_is(&f[i], "scram-sha-256") || opt_is(&f[i], "apop"))
            continue;
        o += (size_t)snprintf(out + o, cap - o, " %.*s", (int)f[i].len, f[i].p);
    }
    if (secrets)
        snprintf(out + o, cap - o, "%s", secrets);
    return out;
}

/* Would users_load take this line?  NULL or the reason. */
static const char *check_line(const char *line)
{
    struct field f[USERS_FIELDS_MAX];
    struct usertab *t = table_new();
    const char *why;

    if (t == NULL)
        return "out of memory";
    why = parse_line(t, f, split_fields(line, strlen(line), f, USERS_FIELDS_MAX));
    users_free(t);
    return why;
}

/* Find the one line defining address: its start and length (no newline). */
static int find_line(const char *text, size_t len, const char *address, size_t *start,
                     size_t *llen)
{
    const char *p = text, *end = text + len;
    int found = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (line_is(p, l, address)) {
            *start = (size_t)(p - text);
            *llen = l > 0 && p[l - 1] == '\r' ? l - 1 : l;
            found++;
        }
        p = nl ? nl + 1 : end;
    }
    return found;
}

/* Replace the one line of address by what build() makes of it (checked as
 * users_load would), atomically.  0, or -1 + message. */
static int replace_line(const char *path, const char *address,
                        char *(*build)(const char *line, size_t len, const void *arg,
                                       const char **why),
                        const void *arg, char *err, size_t errlen)
{
    char *text, *line = NULL, *out = NULL;
    const char *why = NULL;
    size_t len, start = 0, llen = 0, o = 0;
    int r = -1, n;

    if (fs_read_file_or_empty(path, USERS_FILE_MAX, &text, &len) != 0) {
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if ((n = find_line(text, len, address, &start, &llen)) != 1)
        why = n == 0 ? "no such user" : "address on more than one line";
    else if ((line = build(text + start, llen, arg, &why)) != NULL)
        why = check_line(line);
    if (why == NULL && (out = malloc(len + strlen(line) + 1)) == NULL)
        why = "out of memory";
    if (why != NULL) {
        err_fmt(err, errlen, "%s: %s: %s", path, address, why);
    } else {
        memcpy(out, text, start);
        o = start + (size_t)sprintf(out + start, "%s", line);
        memcpy(out + o, text + start + llen, len - start - llen);
        o += len - start - llen;
        r = fs_replace(path, out, o, USERS_NEW_MODE);
        if (r != 0)
            err_fmt(err, errlen, "%s: %s", path, strerror(errno));
    }
    if (line)
        explicit_bzero(line, strlen(line));
    if (out)
        explicit_bzero(out, o);
    explicit_bzero(text, len);
    free(text); free(line); free(out);
    return r;
}

struct passwd_arg {
    const char *hash, *secrets;
};

static char *passwd_build(const char *line, size_t len, const void *arg, const char **why)
{
    const struct passwd_arg *a = arg;

    return passwd_line(line, len, a->hash, a->secrets, why);
}

int users_file_passwd(const char *path, const char *address, const char *hash,
                      const char *secrets, char *err, size_t errlen)
{
    const char *why = check_hash(hash);
    struct passwd_arg a = { hash, secrets };

    if (why != NULL || address == NULL || address[0] == '\0') {
        err_fmt(err, errlen, "%s: %s", address ? address : "", why ? why : "no address");
        return -1;
    }
    return replace_line(path, address, passwd_build, &a, err, errlen);
}

/* The line with its quota= option replaced (dropped for 0). */
static char *quota_build(const char *line, size_t len, const void *arg, const char **why)
{
    long long quota = *(const long long *)arg;
    struct field f[USERS_FIELDS_MAX];
    size_t nf = split_fields(line, len, f, USERS_FIELDS_MAX), cap = len + 40, o = 0;
    char *out;

    if (nf > USERS_FIELDS_MAX || nf < 2) {
        *why = nf < 2 ? "no hash on the existing line" : "too many fields on the existing line";
        return NULL;
    }
    if ((out = malloc(cap)) == NULL) {
        *why = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < nf; i++) {
        if (i >= 2 && opt_is(&f[i], "quota"))
            continue;
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? " " : "", (int)f[i].len, f[i].p);
    }
    if (quota == USERS_QUOTA_UNLIMITED) {
        snprintf(out + o, cap - o, " quota=unlimited");
    } else if (quota > 0) {
        o += (size_t)snprintf(out + o, cap - o, " quota=");
        format_size(out + o, cap - o, quota);
    }
    return out;
}

int users_file_quota(const char *path, const char *address, long long quota, char *err,
                     size_t errlen)
{
    if (address == NULL || address[0] == '\0' || (quota < 0 && quota != USERS_QUOTA_UNLIMITED)) {
        err_fmt(err, errlen, "%s: %s", address ? address : "", "no address or a negative quota");
        return -1;
    }
    return replace_line(path, address, quota_build, &quota, err, errlen);
}
