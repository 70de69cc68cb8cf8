/*
 * mta/sender_login.c — sender ownership for authenticated submission
 * (mta/sender_login.h): the sender_login_maps table (parsed into a sorted
 * array, looked up by binary search) and the ownership rule that combines
 * it with the login and the router's expansion of the address.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/fsutil.h"
#include "mta/router.h"
#include "mta/sender_login.h"
#include "store/path.h"

#define SL_FILE_MAX  (64L * 1024 * 1024)
#define SL_ADDR_MAX  320

struct grant {
    char *key;          /* "local@domain" or "@domain", lower-case */
    char **logins;
    size_t n;
};

struct sender_logins {
    struct grant *v;
    size_t n, cap;
};

static void grant_free(struct grant *g)
{
    free(g->key);
    for (size_t i = 0; i < g->n; i++)
        free(g->logins[i]);
    free(g->logins);
}

void sender_logins_free(struct sender_logins *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        grant_free(&t->v[i]);
    free(t->v);
    free(t);
}

size_t sender_logins_count(const struct sender_logins *t)
{
    return t ? t->n : 0;
}

static char *dup_lower(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < len; i++)
        d[i] = (char)tolower((unsigned char)s[i]);
    d[len] = '\0';
    return d;
}

static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == ',' || c == '\n' || c == '\r';
}

/* One logical line (continuations joined by the caller's scan): key and
 * logins.  NULL or the reason it is refused. */
static const char *parse_entry(struct sender_logins *t, const char *p, const char *end)
{
    const char *k = p;
    while (p < end && !is_sep(*p))
        p++;
    size_t klen = (size_t)(p - k);
    const char *at = memchr(k, '@', klen);
    if (klen > SL_ADDR_MAX)
        return "key too long";
    if (!at || at + 1 == k + klen || memchr(at + 1, '@', (size_t)(k + klen - at - 1)))
        return "key must be local@domain or @domain";
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct grant *v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return "out of memory";
        t->v = v;
        t->cap = cap;
    }
    struct grant *g = &t->v[t->n];
    memset(g, 0, sizeof *g);
    t->n++;
    if (!(g->key = dup_lower(k, klen)))
        return "out of memory";
    for (;;) {
        while (p < end && is_sep(*p))
            p++;
        if (p >= end)
            break;
        const char *l = p;
        while (p < end && !is_sep(*p))
            p++;
        char **v = realloc(g->logins, (g->n + 1) * sizeof *v);
        if (!v)
            return "out of memory";
        g->logins = v;
        if (!(g->logins[g->n] = dup_lower(l, (size_t)(p - l))))
            return "out of memory";
        g->n++;
    }
    return g->n ? NULL : "no login";
}

static int grant_cmp(const void *a, const void *b)
{
    return strcmp(((const struct grant *)a)->key, ((const struct grant *)b)->key);
}

static int blank_or_comment(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    return p == end || *p == '#';
}

/* The end of the logical line starting at p: the lines after it that
 * start with white space (and are not blank) continue it; *lines counts
 * the physical lines. */
static const char *logical_end(const char *p, const char *end, size_t *lines)
{
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        (*lines)++;
        if (!nl)
            return end;
        const char *next = nl + 1;
        const char *nnl = next < end ? memchr(next, '\n', (size_t)(end - next)) : NULL;
        if (next >= end || (*next != ' ' && *next != '\t') || blank_or_comment(next, nnl ? nnl : end))
            return nl;
        p = next;
    }
}

static const char *parse_text(struct sender_logins *t, const char *text, size_t len,
                              size_t *lineno)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *lend = nl ? nl : end;
        if (memchr(p, '\0', (size_t)(lend - p)))
            return "NUL byte in line";
        if (blank_or_comment(p, lend)) {
            (*lineno)++;
            p = nl ? nl + 1 : end;
            continue;
        }
        if (*p == ' ' || *p == '\t') {
            (*lineno)++;
            return "continuation line without an entry";
        }
        size_t first = *lineno + 1;
        const char *e = logical_end(p, end, lineno);
        const char *why = parse_entry(t, p, e);
        if (why) {
            *lineno = first;
            return why;
        }
        p = e < end ? e + 1 : end;
    }
    return NULL;
}

struct sender_logins *sender_logins_load(const char *path, char *err, size_t errlen)
{
    char *text;
    size_t len, lineno = 0;
    if (fs_read_file_or_empty(path, SL_FILE_MAX, &text, &len) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct sender_logins *t = calloc(1, sizeof *t);
    const char *why = t ? parse_text(t, text, len, &lineno) : "out of memory";
    free(text);
    if (!why && t->n > 1) {
        qsort(t->v, t->n, sizeof *t->v, grant_cmp);
        for (size_t i = 1; i < t->n; i++)
            if (!strcmp(t->v[i - 1].key, t->v[i].key)) {
                snprintf(err, errlen, "%s: %s: key given twice", path, t->v[i].key);
                sender_logins_free(t);
                return NULL;
            }
    }
    if (why) {
        snprintf(err, errlen, "%s:%zu: %s", path, lineno, why);
        sender_logins_free(t);
        return NULL;
    }
    return t;
}

static const struct grant *grant_find(const struct sender_logins *t, const char *key)
{
    struct grant k = { (char *)key, NULL, 0 };
    if (!t || !t->n)
        return NULL;
    return bsearch(&k, t->v, t->n, sizeof *t->v, grant_cmp);
}

int sender_logins_granted(const struct sender_logins *t, const char *login, const char *sender,
                          const char *delimiter)
{
    char key[SL_ADDR_MAX + 2];
    size_t len = strlen(sender);
    const char *at = strrchr(sender, '@');
    if (!t || !at || len > SL_ADDR_MAX)
        return 0;
    for (size_t i = 0; i <= len; i++)
        key[i] = (char)tolower((unsigned char)sender[i]);
    const struct grant *g = grant_find(t, key);
    size_t local = (size_t)(at - sender);
    size_t base = delimiter && *delimiter ? strcspn(key, delimiter) : local;
    if (!g && base > 0 && base < local) {          /* without the extension */
        memmove(key + base, key + local, len - local + 1);
        g = grant_find(t, key);
    }
    if (!g)
        g = grant_find(t, strrchr(key, '@'));      /* the whole domain */
    for (size_t i = 0; g && i < g->n; i++)
        if (!strcasecmp(g->logins[i], login))
            return 1;
    return 0;
}

/* "domain/local" of the login, as the router names its mailbox. */
static int login_mailbox(const char *login, char *buf, size_t len)
{
    char l[SL_ADDR_MAX + 1];
    const char *at = strrchr(login, '@');
    size_t n = strlen(login);
    if (!at || n > SL_ADDR_MAX)
        return -1;
    for (size_t i = 0; i <= n; i++)
        l[i] = (char)tolower((unsigned char)login[i]);
    l[at - login] = '\0';
    return store_mailbox_rel(buf, len, l + (at - login) + 1, l) == 0 ? 0 : -1;
}

int sender_owned(const struct router_config *rc, const struct sender_logins *t,
                 const char *login, const char *sender)
{
    char mine[2 * SL_ADDR_MAX + 2];
    if (!login || !sender || !*sender)
        return 0;
    if (!strcasecmp(login, sender))
        return 1;
    if (sender_logins_granted(t, login, sender, rc ? rc->recipient_delimiter : NULL))
        return 1;
    const char *at = strrchr(sender, '@');
    if (!rc || !at || !router_is_local(rc, at + 1) || login_mailbox(login, mine, sizeof mine) < 0)
        return 0;
    struct route_target *v = NULL;
    size_t n = 0, local = 0, ours = 0;
    enum route_result r = router_expand(rc, sender, &v, &n);
    for (size_t i = 0; r == ROUTE_OK && i < n; i++) {
        if (v[i].kind != ROUTE_LOCAL)
            continue;                              /* a forward elsewhere */
        local++;
        ours += strcmp(v[i].mailbox, mine) == 0;
    }
    router_free_targets(v, n);
    if (r == ROUTE_ERROR)
        return -1;
    return local > 0 && ours == local;
}
