/*
 * lib/conf.c — the `key = value` reader behind lib/conf.h (Postfix main.cf
 * semantics).  Owns: reading the file within its limits, joining
 * continuation lines, checking keys against the caller's schema (last
 * occurrence wins), `$name` / `${name}` / `$(name)` expansion (order
 * independent, memoised, cycles and deep nesting are errors, `$$` is a
 * literal `$`), and the typed parsers (size, time, int, bool, choice, list).
 * It knows nothing of mail and never logs: every error is text in `err`
 * naming FILE:LINE and the key.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/conf.h"

#define CONF_FILE_MAX     (4 * 1024 * 1024)  /* octets of a whole file */
#define CONF_LINE_MAX     (64 * 1024)        /* octets of one physical line */
#define CONF_VALUE_MAX    (1024 * 1024)      /* octets of a value after expansion */
#define CONF_EXPAND_DEPTH 20                 /* nested $name references */
#define CONF_NAME_MAX     128                /* octets of a parameter name */
#define CONF_QUOTE_MAX    200                /* octets of a value quoted in an error */
#define CONF_READ_CHUNK   65536
#define CONF_NOFILE       "(defaults)"       /* FILE in errors when path is NULL */

enum conf_state { CS_TODO = 0, CS_BUSY, CS_DONE };

struct conf_entry {
    const struct conf_def *def;
    char *raw;                 /* configured text, NULL = use the default */
    int line;                  /* line of the key in the file, 0 = default */
    enum conf_state state;     /* expansion progress */
    char *text;                /* expanded text */
    struct conf_value val;
};

struct conf {
    char *path;                /* NULL when loaded from defaults only */
    struct conf_entry *e;
    size_t n;
};

struct conf_buf {
    char *p;
    size_t len, cap;
    size_t max;                /* octets it may hold */
};

/* Parse state shared by the expansion helpers: where to report errors. */
struct conf_ctx {
    struct conf *c;
    char *err;
    size_t errlen;
};

/* ---- small helpers ---------------------------------------------------- */

static int conf_is_ws(int ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

static int conf_is_name(int ch)
{
    return isalnum((unsigned char)ch) || ch == '_';
}

static const char *conf_file(const struct conf *c)
{
    return c->path ? c->path : CONF_NOFILE;
}

/* "FILE:LINE: " or "FILE: " (line 0: a default) followed by the message. */
static void conf_err(const struct conf_ctx *x, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conf_err(const struct conf_ctx *x, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (x->err == NULL || x->errlen == 0)
        return;
    if (line > 0)
        n = snprintf(x->err, x->errlen, "%s:%d: ", conf_file(x->c), line);
    else
        n = snprintf(x->err, x->errlen, "%s: default: ", conf_file(x->c));
    if (n < 0 || (size_t)n >= x->errlen)
        return;
    va_start(ap, fmt);
    (void)vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Trim white space at both ends of [*s, *s + *len). */
static void conf_trim(const char **s, size_t *len)
{
    while (*len > 0 && conf_is_ws((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && conf_is_ws((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int conf_buf_add(struct conf_buf *b, const char *s, size_t len)
{
    size_t ncap;
    char *np;

    if (len > b->max || b->len + len > b->max)
        return -1;
    if (b->len + len + 1 > b->cap) {
        ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + len + 1)
            ncap *= 2;
        np = realloc(b->p, ncap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

static struct conf_entry *conf_find(const struct conf *c, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < c->n; i++) {
        if (strncmp(c->e[i].def->name, name, len) == 0 && c->e[i].def->name[len] == '\0')
            return &c->e[i];
    }
    return NULL;
}

/* ---- typed parsers ---------------------------------------------------- */

/* Leading decimal digits of s into *out (overflow checked); returns the
 * first non-digit, or NULL when there is no digit or the number overflows. */
static const char *conf_decimal(const char *s, long long *out)
{
    long long v = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        int d = *p - '0';
        if (v > (LLONG_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
        p++;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

/* n * unit into *out, overflow checked. */
static int conf_scale(long long n, long long unit, long long *out)
{
    if (n > LLONG_MAX / unit)
        return -1;
    *out = n * unit;
    return 0;
}

int conf_parse_size(const char *s, long long *out)
{
    long long n, unit = 1;
    const char *p;

    if (s == NULL || (p = conf_decimal(s, &n)) == NULL)
        return -1;
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': unit = 1024LL; p++; break;
    case 'm': case 'M': unit = 1024LL * 1024; p++; break;
    case 'g': case 'G': unit = 1024LL * 1024 * 1024; p++; break;
    default: return -1;
    }
    if (*p != '\0')
        return -1;
    return conf_scale(n, unit, out);
}

int conf_parse_time(const char *s, long long *out)
{
    long long n, unit = 1;
    const char *p;

    if (s == NULL || (p = conf_decimal(s, &n)) == NULL)
        return -1;
    switch (*p) {
    case '\0': break;
    case 's': case 'S': unit = 1; p++; break;
    case 'm': case 'M': unit = 60; p++; break;
    case 'h': case 'H': unit = 3600; p++; break;
    case 'd': case 'D': unit = 86400; p++; break;
    case 'w': case 'W': unit = 7 * 86400; p++; break;
    default: return -1;
    }
    if (*p != '\0')
        return -1;
    return conf_scale(n, unit, out);
}

static int conf_parse_int(const char *s, long long *out)
{
    const char *p = conf_decimal(s, out);

    return p != NULL && *p == '\0' ? 0 : -1;
}

int conf_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };
    size_t i;

    if (s == NULL)
        return -1;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Index of s among the comma-separated `choices` (case-insensitive). */
static int conf_parse_choice(const char *s, const char *choices, long long *out)
{
    const char *p = choices;
    long long idx = 0;
    size_t slen = strlen(s), n;

    if (p == NULL || slen == 0)
        return -1;
    for (;;) {
        n = strcspn(p, ",");
        if (n == slen && strncasecmp(p, s, n) == 0) {
            *out = idx;
            return 0;
        }
        if (p[n] == '\0')
            return -1;
        p += n + 1;
        idx++;
    }
}

static int conf_is_sep(int ch)
{
    return ch == ',' || conf_is_ws(ch) || ch == '\n';
}

void conf_free_list(char **list, size_t n)
{
    size_t i;

    if (list == NULL)
        return;
    for (i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

int conf_split_list(const char *s, char ***out, size_t *n)
{
    char **list;
    size_t count = 0, i = 0, len;
    const char *p;

    *out = NULL;
    *n = 0;
    for (p = s ? s : ""; *p; p += len) {
        while (*p && conf_is_sep((unsigned char)*p))
            p++;
        for (len = 0; p[len] && !conf_is_sep((unsigned char)p[len]); len++)
            ;
        if (len > 0)
            count++;
    }
    list = calloc(count + 1, sizeof(*list));   /* NULL-terminated as a bonus */
    if (list == NULL)
        return -1;
    for (p = s ? s : ""; *p; p += len) {
        while (*p && conf_is_sep((unsigned char)*p))
            p++;
        for (len = 0; p[len] && !conf_is_sep((unsigned char)p[len]); len++)
            ;
        if (len == 0)
            continue;
        list[i] = strndup(p, len);
        if (list[i] == NULL) {
            conf_free_list(list, i);
            return -1;
        }
        i++;
    }
    *out = list;
    *n = count;
    return 0;
}

/* ---- reading the file ------------------------------------------------- */

/* Whole file into a NUL-terminated buffer, at most CONF_FILE_MAX octets. */
static int conf_read(struct conf_ctx *x, char **out, size_t *outlen)
{
    struct conf_buf b = { NULL, 0, 0, CONF_FILE_MAX };
    char chunk[CONF_READ_CHUNK];
    ssize_t r;
    int fd, saved;

    fd = open(x->c->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(x->err, x->errlen, "%s: %s", x->c->path, strerror(errno));
        return -1;
    }
    if (conf_buf_add(&b, "", 0) < 0)
        goto nomem;
    for (;;) {
        r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            saved = errno;
            snprintf(x->err, x->errlen, "%s: %s", x->c->path, strerror(saved));
            goto fail;
        }
        if (r == 0)
            break;
        if (b.len + (size_t)r > CONF_FILE_MAX) {
            snprintf(x->err, x->errlen, "%s: file too large (over %d octets)",
                     x->c->path, CONF_FILE_MAX);
            goto fail;
        }
        if (conf_buf_add(&b, chunk, (size_t)r) < 0)
            goto nomem;
    }
    close(fd);
    *out = b.p;
    *outlen = b.len;
    return 0;
nomem:
    snprintf(x->err, x->errlen, "%s: out of memory", x->c->path);
fail:
    close(fd);
    free(b.p);
    return -1;
}

/* Append a continuation line's text to the entry's raw value. */
static int conf_continue(struct conf_ctx *x, struct conf_entry *e, const char *s,
                         size_t len, int line)
{
    size_t old = strlen(e->raw);
    char *np;

    if (len == 0)
        return 0;
    if (old + 1 + len > CONF_VALUE_MAX) {
        conf_err(x, line, "value of '%s' too long", e->def->name);
        return -1;
    }
    np = realloc(e->raw, old + len + 2);
    if (np == NULL) {
        conf_err(x, line, "out of memory");
        return -1;
    }
    e->raw = np;
    if (old > 0)
        np[old++] = ' ';
    memcpy(np + old, s, len);
    np[old + len] = '\0';
    return 0;
}

/* A `key = value` line: set the entry (last occurrence wins). */
static struct conf_entry *conf_assign(struct conf_ctx *x, const char *s, size_t len,
                                      int line)
{
    const char *eq = memchr(s, '=', len), *key = s, *val;
    size_t klen, vlen, i;
    struct conf_entry *e;

    if (eq == NULL) {
        conf_err(x, line, "missing '=' in '%.*s'", (int)(len > CONF_QUOTE_MAX ?
                 CONF_QUOTE_MAX : len), s);
        return NULL;
    }
    klen = (size_t)(eq - s);
    conf_trim(&key, &klen);
    for (i = 0; i < klen && conf_is_name((unsigned char)key[i]); i++)
        ;
    if (klen == 0 || i < klen || klen > CONF_NAME_MAX) {
        conf_err(x, line, "bad parameter name '%.*s'",
                 (int)(klen > CONF_QUOTE_MAX ? CONF_QUOTE_MAX : klen), key);
        return NULL;
    }
    e = conf_find(x->c, key, klen);
    if (e == NULL) {
        conf_err(x, line, "unknown parameter '%.*s'", (int)klen, key);
        return NULL;
    }
    val = eq + 1;
    vlen = len - (size_t)(val - s);
    conf_trim(&val, &vlen);
    free(e->raw);
    e->raw = strndup(val, vlen);
    if (e->raw == NULL) {
        conf_err(x, line, "out of memory");
        return NULL;
    }
    e->line = line;
    return e;
}

/* One physical line.  *cur is the entry a continuation line would extend. */
static int conf_line(struct conf_ctx *x, const char *s, size_t len, int line,
                     struct conf_entry **cur)
{
    const char *t = s;
    size_t tlen = len;

    if (len > CONF_LINE_MAX) {
        conf_err(x, line, "line too long (over %d octets)", CONF_LINE_MAX);
        return -1;
    }
    if (memchr(s, '\0', len) != NULL) {
        conf_err(x, line, "NUL byte in line");
        return -1;
    }
    conf_trim(&t, &tlen);
    if (tlen == 0 || t[0] == '#')
        return 0;                      /* blank or comment: does not end a value */
    if (conf_is_ws((unsigned char)s[0])) {
        if (*cur == NULL) {
            conf_err(x, line, "continuation line without a parameter");
            return -1;
        }
        return conf_continue(x, *cur, t, tlen, line);
    }
    *cur = conf_assign(x, t, tlen, line);
    return *cur ? 0 : -1;
}

static int conf_parse_text(struct conf_ctx *x, const char *buf, size_t len)
{
    struct conf_entry *cur = NULL;
    size_t pos = 0, n;
    const char *nl;
    int line = 0;

    while (pos < len) {
        nl = memchr(buf + pos, '\n', len - pos);
        n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        line++;
        if (conf_line(x, buf + pos, n, line, &cur) < 0)
            return -1;
        pos += n + (nl ? 1 : 0);
    }
    return 0;
}

/* ---- expansion -------------------------------------------------------- */

static int conf_expand(struct conf_ctx *x, struct conf_entry *e, int depth);

static int conf_too_long(struct conf_ctx *x, const struct conf_entry *e)
{
    conf_err(x, e->line, "value of '%s' too long after expansion (over %d octets)",
             e->def->name, CONF_VALUE_MAX);
    return -1;
}

/* Parse the name after '$' at s[0] ('$' already skipped).  Sets the name
 * span and returns the octets used, or -1 on bad syntax. */
static int conf_ref_name(const char *s, const char **name, size_t *nlen)
{
    char close;
    size_t i;

    if (s[0] == '{' || s[0] == '(') {
        close = s[0] == '{' ? '}' : ')';
        for (i = 1; conf_is_name((unsigned char)s[i]); i++)
            ;
        if (i == 1 || s[i] != close)
            return -1;
        *name = s + 1;
        *nlen = i - 1;
        return (int)i + 1;
    }
    for (i = 0; conf_is_name((unsigned char)s[i]); i++)
        ;
    if (i == 0)
        return -1;
    *name = s;
    *nlen = i;
    return (int)i;
}

/* Append the expansion of `$name` (referenced from entry e) to b. */
static int conf_expand_ref(struct conf_ctx *x, struct conf_entry *e, const char *name,
                           size_t nlen, int depth, struct conf_buf *b)
{
    struct conf_entry *ref = conf_find(x->c, name, nlen);

    if (ref == NULL) {
        conf_err(x, e->line, "unknown parameter '$%.*s' in value of '%s'",
                 (int)(nlen > CONF_NAME_MAX ? CONF_NAME_MAX : nlen), name, e->def->name);
        return -1;
    }
    if (ref->state == CS_BUSY) {
        conf_err(x, e->line, "expansion loop: '$%s' in value of '%s' refers back to itself",
                 ref->def->name, e->def->name);
        return -1;
    }
    if (depth + 1 > CONF_EXPAND_DEPTH) {
        conf_err(x, e->line, "expansion of '$%s' in value of '%s' nested deeper than %d",
                 ref->def->name, e->def->name, CONF_EXPAND_DEPTH);
        return -1;
    }
    if (conf_expand(x, ref, depth + 1) < 0)
        return -1;
    if (conf_buf_add(b, ref->text, strlen(ref->text)) < 0)
        return conf_too_long(x, e);
    return 0;
}

/* The text of e with every $reference replaced, into b. */
static int conf_expand_text(struct conf_ctx *x, struct conf_entry *e, const char *s,
                            int depth, struct conf_buf *b)
{
    const char *name;
    size_t lit, nlen;
    int used;

    while (*s) {
        lit = strcspn(s, "$");
        if (conf_buf_add(b, s, lit) < 0)
            return conf_too_long(x, e);
        s += lit;
        if (*s == '\0')
            break;
        if (s[1] == '$') {
            if (conf_buf_add(b, "$", 1) < 0)
                return conf_too_long(x, e);
            s += 2;
            continue;
        }
        used = conf_ref_name(s + 1, &name, &nlen);
        if (used < 0) {
            conf_err(x, e->line, "bad '$' in value of '%s' (write $$ for a literal $)",
                     e->def->name);
            return -1;
        }
        if (conf_expand_ref(x, e, name, nlen, depth, b) < 0)
            return -1;
        s += 1 + used;
    }
    return 0;
}

static int conf_expand(struct conf_ctx *x, struct conf_entry *e, int depth)
{
    struct conf_buf b = { NULL, 0, 0, CONF_VALUE_MAX };
    const char *src;

    if (e->state == CS_DONE)
        return 0;
    e->state = CS_BUSY;
    src = e->raw ? e->raw : (e->def->defval ? e->def->defval : "");
    if (conf_buf_add(&b, "", 0) < 0 || conf_expand_text(x, e, src, depth, &b) < 0) {
        free(b.p);
        e->state = CS_TODO;
        return -1;
    }
    e->text = b.p;
    e->state = CS_DONE;
    return 0;
}

/* ---- typing ----------------------------------------------------------- */

static const char *conf_expect(const struct conf_def *d)
{
    switch (d->type) {
    case CT_SIZE: return "expected a size like 10M";
    case CT_TIME: return "expected a time like 300s, 5m, 4h, 5d or 1w";
    case CT_INT: return "expected a non-negative integer";
    case CT_BOOL: return "expected yes or no";
    case CT_CHOICE: return "expected one of: ";
    default: return "bad value";
    }
}

static int conf_typed(const struct conf_def *d, const char *s, long long *num)
{
    int b;

    switch (d->type) {
    case CT_SIZE: return conf_parse_size(s, num);
    case CT_TIME: return conf_parse_time(s, num);
    case CT_INT: return conf_parse_int(s, num);
    case CT_CHOICE: return conf_parse_choice(s, d->choices, num);
    case CT_BOOL:
        if (conf_parse_bool(s, &b) < 0)
            return -1;
        *num = b;
        return 0;
    default:
        *num = 0;
        return 0;
    }
}

/* Set e->val from the expanded text.  An empty default of a typed key
 * means 0 (so a NULL defval works); an empty configured value is an error. */
static int conf_finish(struct conf_ctx *x, struct conf_entry *e)
{
    const struct conf_def *d = e->def;

    e->val.str = e->text;
    e->val.line = e->line;
    if (d->type == CT_LIST) {
        if (conf_split_list(e->text, &e->val.list, &e->val.nlist) < 0) {
            conf_err(x, e->line, "out of memory");
            return -1;
        }
        return 0;
    }
    if (d->type == CT_STR || (e->raw == NULL && e->text[0] == '\0'))
        return 0;
    if (conf_typed(d, e->text, &e->val.num) == 0)
        return 0;
    conf_err(x, e->line, "bad value for '%s': '%.*s' (%s%s)", d->name, CONF_QUOTE_MAX,
             e->text, conf_expect(d), d->type == CT_CHOICE && d->choices ? d->choices : "");
    return -1;
}

/* ---- the public face -------------------------------------------------- */

static struct conf *conf_new(const char *path, const struct conf_def *defs, size_t ndefs,
                             struct conf_ctx *x)
{
    struct conf *c = calloc(1, sizeof(*c));
    size_t i;

    x->c = c;
    if (c == NULL || (path && (c->path = strdup(path)) == NULL) ||
        (c->e = calloc(ndefs ? ndefs : 1, sizeof(*c->e))) == NULL) {
        snprintf(x->err, x->errlen, "%s: out of memory", path ? path : CONF_NOFILE);
        return NULL;
    }
    for (i = 0; i < ndefs; i++) {
        c->e[i].def = &defs[i];
        c->n = i + 1;
        if (defs[i].name == NULL || conf_find(c, defs[i].name, strlen(defs[i].name)) !=
            &c->e[i]) {
            conf_err(x, 0, "bad or duplicate schema entry '%s'",
                     defs[i].name ? defs[i].name : "(null)");
            return NULL;
        }
    }
    return c;
}

struct conf *conf_load(const char *path, const struct conf_def *defs, size_t ndefs,
                       char *err, size_t errlen)
{
    struct conf_ctx x = { NULL, err, errlen };
    char *buf = NULL;
    size_t len, i;
    char dummy[1];

    if (err == NULL || errlen == 0) {
        x.err = dummy;
        x.errlen = sizeof(dummy);
    }
    x.err[0] = '\0';
    if (conf_new(path, defs, ndefs, &x) == NULL)
        goto fail;
    if (path) {
        if (conf_read(&x, &buf, &len) < 0 || conf_parse_text(&x, buf, len) < 0)
            goto fail;
        free(buf);
        buf = NULL;
    }
    for (i = 0; i < ndefs; i++) {
        if (conf_expand(&x, &x.c->e[i], 0) < 0 || conf_finish(&x, &x.c->e[i]) < 0)
            goto fail;
    }
    return x.c;
fail:
    free(buf);
    conf_free(x.c);
    return NULL;
}

const struct conf_value *conf_get(const struct conf *c, const char *name)
{
    const struct conf_entry *e;

    if (c == NULL || name == NULL)
        return NULL;
    e = conf_find(c, name, strlen(name));
    return e && e->state == CS_DONE ? &e->val : NULL;
}

const char *conf_path(const struct conf *c)
{
    return c && c->path ? c->path : "";
}

void conf_free(struct conf *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; c->e && i < c->n; i++) {
        free(c->e[i].raw);
        free(c->e[i].text);
        conf_free_list(c->e[i].val.list, c->e[i].val.nlist);
    }
    free(c->e);
    free(c->path);
    free(c);
}
