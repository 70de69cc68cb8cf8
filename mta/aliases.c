/*
 * mta/aliases.c — the alias table (/etc/aliases format) and its atomic
 * edits (`hatoctl alias set|del`).
 *
 * Owns: the line grammar — an entry line "name: target, target", its
 * continuation lines (leading blank), comment lines ('#' first non-blank)
 * and blank lines; a comment or blank line ends an entry.  Targets are
 * split on commas and white space; "quoted targets" keep their blanks and
 * lose their quotes (\" and \\ escape inside).  Pipes, files and :include:
 * are refused at load with FILE:LINE.  Names are lower-cased; targets are
 * kept as written.  Lookup is a hash table on the lower-cased name.
 *
 * Edits change only the lines of one entry and keep every other byte;
 * tmp file + fsync + rename + fsync of the directory; the mode is kept.
 * Expanding aliases (recursion, loops) is mta/router.c, not here.
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

#include "lib/fsutil.h"
#include "lib/hash.h"
#include "mta/aliases.h"

#define ALIAS_ADDR_MAX   320                  /* octets of a name or target */
#define ALIAS_FILE_MAX   (64L * 1024 * 1024)  /* refuse bigger files */
#define ALIAS_NEW_MODE   0644
#define ALIAS_MIN_SLOTS  16
#define ALIAS_PATH_MAX   4096

struct alias {
    char *name;         /* lower-case */
    char **targets;
    size_t n, cap;
};

struct aliastab {
    struct alias *v;
    size_t n, cap;
    size_t *slot;       /* index + 1 into v; 0 = empty */
    size_t nslot;       /* power of two, > 2 * n */
};

enum line_kind { LK_BLANK, LK_COMMENT, LK_CONT, LK_ENTRY };

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

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
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

static enum line_kind line_kind(const char *line, size_t len)
{
    size_t i = 0;

    while (i < len && is_blank(line[i]))
        i++;
    if (i == len)
        return LK_BLANK;
    if (line[i] == '#')
        return LK_COMMENT;
    return i > 0 ? LK_CONT : LK_ENTRY;
}

/* "local" or "local@domain": no blanks, quotes or ':', <= 320 octets. */
static const char *check_name(const char *s, size_t len)
{
    const char *at;
    size_t i;

    if (len == 0)
        return "empty alias name";
    if (len > ALIAS_ADDR_MAX)
        return "alias name too long";
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || c == '"' || c == ':' || c == ',' || c == '#')
            return "bad character in alias name";
    }
    at = memchr(s, '@', len);
    if (at != NULL && (at == s || at == s + len - 1
                       || memchr(at + 1, '@', len - (size_t)(at - s) - 1) != NULL))
        return "bad alias name";
    return NULL;
}

/* A target after unquoting. */
static const char *check_target(const char *s, size_t len)
{
    const char *at = NULL;
    size_t i;

    if (len == 0)
        return "empty alias target";
    if (len > ALIAS_ADDR_MAX)
        return "alias target too long";
    if (s[0] == '|' || s[0] == '/' || (len >= 9 && strncasecmp(s, ":include:", 9) == 0))
        return "unsupported alias target";
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < ' ' || c == 0x7f)
            return "bad character in alias target";
        if (c == '@')
            at = s + i;
    }
    if (at != NULL && (at == s || at == s + len - 1))
        return "bad alias target";
    return NULL;
}


/* ---- the table ------------------------------------------------------- */

static size_t *slot_find(const struct aliastab *t, const char *name, size_t len)
{
    size_t mask = t->nslot - 1;
    size_t i = (size_t)hash_lower(name, len) & mask;

    for (;; i = (i + 1) & mask) {
        const char *n;
        if (t->slot[i] == 0)
            return &t->slot[i];
        n = t->v[t->slot[i] - 1].name;
        if (strlen(n) == len && strncasecmp(n, name, len) == 0)
            return &t->slot[i];
    }
}

static int table_grow(struct aliastab *t)
{
    size_t i, nslot = t->nslot ? t->nslot * 2 : ALIAS_MIN_SLOTS;
    size_t *slot = calloc(nslot, sizeof(*slot));
    size_t *old = t->slot;

    if (slot == NULL)
        return -1;
    t->slot = slot;
    t->nslot = nslot;
    for (i = 0; i < t->n; i++)
        *slot_find(t, t->v[i].name, strlen(t->v[i].name)) = i + 1;
    free(old);
    return 0;
}

/* New entry `name` (taken over); NULL + *dup=1 if it exists. */
static struct alias *table_add(struct aliastab *t, char *name, int *dup)
{
    size_t *s;

    *dup = 0;
    if ((t->n + 1) * 2 >= t->nslot && table_grow(t) != 0)
        return NULL;
    s = slot_find(t, name, strlen(name));
    if (*s != 0) {
        *dup = 1;
        return NULL;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : ALIAS_MIN_SLOTS;
        struct alias *v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    memset(&t->v[t->n], 0, sizeof(t->v[t->n]));
    t->v[t->n].name = name;
    *s = ++t->n;
    return &t->v[t->n - 1];
}

static int alias_push(struct alias *a, char *target)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4;
        char **v = realloc(a->targets, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        a->targets = v;
        a->cap = cap;
    }
    a->targets[a->n++] = target;
    return 0;
}

/* ---- parsing --------------------------------------------------------- */

/* Next target in s[*i..len): unquoted copy in *out (malloc'd), or NULL at
 * the end.  Returns NULL or the reason. */
static const char *next_target(const char *s, size_t len, size_t *i, char **out)
{
    size_t j = *i, o = 0;
    char *buf;

    *out = NULL;
    while (j < len && (is_blank(s[j]) || s[j] == ','))
        j++;
    if (j == len) {
        *i = j;
        return NULL;
    }
    buf = malloc(len - j + 1);
    if (buf == NULL)
        return "out of memory";
    if (s[j] == '"') {
        for (j++; j < len && s[j] != '"'; j++) {
            if (s[j] == '\\' && j + 1 < len)
                j++;
            buf[o++] = s[j];
        }
        if (j == len) {
            free(buf);
            return "unterminated quoted target";
        }
        j++;
    } else {
        while (j < len && !is_blank(s[j]) && s[j] != ',')
            buf[o++] = s[j++];
    }
    buf[o] = '\0';
    *i = j;
    *out = buf;
    return NULL;
}

/* Every target of one line fragment into a. */
static const char *parse_targets(struct alias *a, const char *s, size_t len)
{
    size_t i = 0;

    for (;;) {
        char *tg;
        const char *why = next_target(s, len, &i, &tg);
        if (why != NULL)
            return why;
        if (tg == NULL)
            return NULL;
        why = check_target(tg, strlen(tg));
        if (why == NULL && alias_push(a, tg) != 0)
            why = "out of memory";
        if (why != NULL) {
            free(tg);
            return why;
        }
    }
}

/* Name part of an entry line: [start, *len) before ':'; trims blanks. */
static const char *entry_name(const char *line, size_t len, size_t *nlen,
                              size_t *colon)
{
    const char *c = memchr(line, ':', len);
    size_t n;

    if (c == NULL)
        return "missing ':' after alias name";
    n = (size_t)(c - line);
    while (n > 0 && is_blank(line[n - 1]))
        n--;
    *nlen = n;
    *colon = (size_t)(c - line);
    return check_name(line, n);
}

static const char *parse_entry(struct aliastab *t, const char *line, size_t len,
                               struct alias **cur)
{
    size_t nlen, colon;
    const char *why = entry_name(line, len, &nlen, &colon);
    char *name;
    int dup;

    if (why != NULL)
        return why;
    name = dup_lower(line, nlen);
    if (name == NULL)
        return "out of memory";
    *cur = table_add(t, name, &dup);
    if (*cur == NULL) {
        free(name);
        return dup ? "duplicate alias" : "out of memory";
    }
    return parse_targets(*cur, line + colon + 1, len - colon - 1);
}

/* One physical line.  *cur is the entry being continued (NULL after a
 * comment or blank line). */
static const char *parse_line(struct aliastab *t, const char *line, size_t len,
                              struct alias **cur)
{
    switch (line_kind(line, len)) {
    case LK_ENTRY:
        return parse_entry(t, line, len, cur);
    case LK_CONT:
        if (*cur == NULL)
            return "continuation line without an alias";
        return parse_targets(*cur, line, len);
    default:
        *cur = NULL;
        return NULL;
    }
}

struct aliastab *aliases_load(const char *path, char *err, size_t errlen)
{
    struct aliastab *t = calloc(1, sizeof(*t));
    struct alias *cur = NULL;
    size_t len, lineno = 0, cur_line = 0;
    const char *p, *end, *why = NULL;
    char *text = NULL;

    if (t == NULL || table_grow(t) != 0) {
        err_fmt(err, errlen, "%s: out of memory", path);
        aliases_free(t);
        return NULL;
    }
    if (fs_read_file_or_empty(path, ALIAS_FILE_MAX, &text, &len) != 0) {
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        aliases_free(t);
        return NULL;
    }
    for (p = text, end = text + len; ; ) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        enum line_kind k = p < end ? line_kind(p, l) : LK_BLANK;
        if (cur != NULL && k != LK_CONT && cur->n == 0) {
            why = "alias has no targets";
            lineno = cur_line;
            break;
        }
        if (p >= end)
            break;
        lineno++;
        if (k == LK_ENTRY)
            cur_line = lineno;
        why = memchr(p, '\0', l) ? "NUL byte in line" : parse_line(t, p, l, &cur);
        if (why != NULL)
            break;
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (why != NULL) {
        err_fmt(err, errlen, "%s:%zu: %s", path, lineno, why);
        aliases_free(t);
        return NULL;
    }
    return t;
}

/* ---- lookup ---------------------------------------------------------- */

static const struct alias *find(const struct aliastab *t, const char *key, size_t len)
{
    size_t s;

    if (len == 0 || len > ALIAS_ADDR_MAX)
        return NULL;
    s = *slot_find(t, key, len);
    return s ? &t->v[s - 1] : NULL;
}

char *const *aliases_lookup(const struct aliastab *t, const char *local,
                            const char *domain, size_t *n)
{
    char key[ALIAS_ADDR_MAX + 2];
    const struct alias *a = NULL;
    int r;

    *n = 0;
    if (t == NULL || local == NULL)
        return NULL;
    if (domain != NULL && domain[0] != '\0') {
        r = snprintf(key, sizeof(key), "%s@%s", local, domain);
        if (r > 0 && (size_t)r < sizeof(key))
            a = find(t, key, (size_t)r);
    }
    if (a == NULL)
        a = find(t, local, strlen(local));
    if (a == NULL)
        return NULL;
    *n = a->n;
    return a->targets;
}

size_t aliases_count(const struct aliastab *t)
{
    return t ? t->n : 0;
}

const char *aliases_at(const struct aliastab *t, size_t i, char *const **targets,
                       size_t *n)
{
    if (t == NULL || i >= t->n) {
        *targets = NULL;
        *n = 0;
        return NULL;
    }
    *targets = t->v[i].targets;
    *n = t->v[i].n;
    return t->v[i].name;
}

void aliases_free(struct aliastab *t)
{
    size_t i, j;

    if (t == NULL)
        return;
    for (i = 0; i < t->n; i++) {
        for (j = 0; j < t->v[i].n; j++)
            free(t->v[i].targets[j]);
        free(t->v[i].targets);
        free(t->v[i].name);
    }
    free(t->v);
    free(t->slot);
    free(t);
}

/* ---- edits ------------------------------------------------------------ */

/* Is this entry line the definition of `name` (lower-case)? */
static int entry_is(const char *line, size_t len, const char *name)
{
    size_t nlen, colon;

    if (line_kind(line, len) != LK_ENTRY || entry_name(line, len, &nlen, &colon) != NULL)
        return 0;
    return nlen == strlen(name) && strncasecmp(line, name, nlen) == 0;
}

/* Copy text to out, replacing the first entry `name` (with its
 * continuation lines) by repl (NULL: drop), dropping later copies.
 * Returns how many entries matched; *outlen is the new length. */
static size_t edit_entries(const char *text, size_t len, const char *name,
                           const char *repl, char *out, size_t *outlen)
{
    const char *p = text, *end = text + len;
    size_t o = 0, found = 0;
    int skipping = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t full = nl ? l + 1 : l;
        enum line_kind k = line_kind(p, l);
        if (k == LK_ENTRY)
            skipping = entry_is(p, l, name);
        else if (k != LK_CONT)
            skipping = 0;
        if (skipping && k == LK_ENTRY && found++ == 0 && repl != NULL) {
            memcpy(out + o, repl, strlen(repl));
            o += strlen(repl);
        }
        if (!skipping) {
            memcpy(out + o, p, full);
            o += full;
        }
        p += full;
    }
    *outlen = o;
    return found;
}

/* Does this target need quotes to survive the parser? */
static int needs_quotes(const char *s)
{
    if (s[0] == '"')
        return 1;
    for (; *s; s++) {
        if (is_blank(*s) || *s == ',')
            return 1;
    }
    return 0;
}

/* "name: t1, t2\n" in a malloc'd string; NULL + reason in *why. */
static char *format_entry(const char *name, char *const *targets, size_t n,
                          const char **why)
{
    size_t i, cap = strlen(name) + 3;
    char *s, *o;

    *why = n == 0 ? "an alias needs at least one target" : NULL;
    for (i = 0; i < n && *why == NULL; i++) {
        *why = targets[i] ? check_target(targets[i], strlen(targets[i]))
                          : "empty alias target";
        if (*why == NULL)
            cap += 2 * strlen(targets[i]) + 4;
    }
    if (*why != NULL)
        return NULL;
    s = o = malloc(cap + 1);
    if (s == NULL) {
        *why = "out of memory";
        return NULL;
    }
    o += sprintf(o, "%s:", name);
    for (i = 0; i < n; i++) {
        const char *c;
        int q = needs_quotes(targets[i]);
        *o++ = i ? ',' : ' ';
        if (i)
            *o++ = ' ';
        if (q)
            *o++ = '"';
        for (c = targets[i]; *c; c++) {
            if (q && (*c == '"' || *c == '\\'))
                *o++ = '\\';
            *o++ = *c;
        }
        if (q)
            *o++ = '"';
    }
    *o++ = '\n';
    *o = '\0';
    return s;
}

/* Read, edit (repl NULL = delete), write back.  0 or -1 + message. */
static int file_edit(const char *path, const char *name, const char *repl,
                     char *err, size_t errlen)
{
    size_t len, o, found;
    char *text, *out;
    int r;

    if (fs_read_file_or_empty(path, ALIAS_FILE_MAX, &text, &len) != 0) {
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    out = malloc(len + (repl ? strlen(repl) : 0) + 2);
    if (out == NULL) {
        err_fmt(err, errlen, "%s: out of memory", path);
        free(text);
        return -1;
    }
    found = edit_entries(text, len, name, repl, out, &o);
    if (found == 0 && repl == NULL) {
        err_fmt(err, errlen, "%s: no such alias %s", path, name);
        free(text);
        free(out);
        return -1;
    }
    if (found == 0) {
        if (o > 0 && out[o - 1] != '\n')
            out[o++] = '\n';
        memcpy(out + o, repl, strlen(repl));
        o += strlen(repl);
    }
    r = fs_replace(path, out, o, ALIAS_NEW_MODE);
    if (r != 0)
        err_fmt(err, errlen, "%s: %s", path, strerror(errno));
    free(text);
    free(out);
    return r;
}

int aliases_file_set(const char *path, const char *name, char *const *targets,
                     size_t n, char *err, size_t errlen)
{
    const char *why = name ? check_name(name, strlen(name)) : "empty alias name";
    char *lname, *line;
    int r;

    if (why != NULL) {
        err_fmt(err, errlen, "%s: %s", name ? name : "", why);
        return -1;
    }
    lname = dup_lower(name, strlen(name));
    if (lname == NULL) {
        err_fmt(err, errlen, "%s: out of memory", path);
        return -1;
    }
    line = format_entry(lname, targets, n, &why);
    if (line == NULL) {
        err_fmt(err, errlen, "%s: %s", lname, why);
        free(lname);
        return -1;
    }
    r = file_edit(path, lname, line, err, errlen);
    free(line);
    free(lname);
    return r;
}

int aliases_file_del(const char *path, const char *name, char *err, size_t errlen)
{
    char *lname;
    int r;

    if (name == NULL || name[0] == '\0') {
        err_fmt(err, errlen, "%s: empty alias name", path);
        return -1;
    }
    lname = dup_lower(name, strlen(name));
    if (lname == NULL) {
        err_fmt(err, errlen, "%s: out of memory", path);
        return -1;
    }
    r = file_edit(path, lname, NULL, err, errlen);
    free(lname);
    return r;
}
