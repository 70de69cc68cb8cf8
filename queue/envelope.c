/*
 * queue/envelope.c — the envelope of a queued message in memory and on
 * disk (format in envelope.h); values are %-encoded with lib/pctenc.h.
 *
 * Owns: struct envelope's memory, env_format (always produces a file that
 * env_parse accepts, or fails), env_version (the first line's number),
 * env_parse (strict per version, 1 or 2: every key of that version once,
 * unknown keys, bad tokens, a missing "end" line or bytes after it are
 * errors), the per-recipient remote/TLS/attempt record and the DSN
 * parameters.  Pure: no I/O, no global state; env_parse must survive any input.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"
#include "lib/pctenc.h"
#include "queue/envelope.h"

#define ENV_MAGIC       "hato-envelope "
#define ENV_END         "end"
#define ENV_MAX_RCPT    100000  /* recipients in one envelope */
#define ENV_MAX_LINE    16384   /* octets in one line, without its '\n' */
#define ENV_MAX_VALUE   4096    /* octets in one encoded value or token */
#define ENV_MAX_FIELD   1000    /* raw octets the setters accept per string */
#define ENV_MAX_DSN     32      /* raw octets kept of an enhanced status */
#define ENV_MAX_TEXT    2000    /* raw octets kept of a reason */
#define ENV_MAX_ORCPT   500     /* raw octets of a DSN ORCPT / ENVID */
#define ENV_MAX_REMOTE  319     /* raw octets of "host[ip]:port" */
#define ENV_MAX_TLS     95      /* raw octets of the TLS description */
#define ENV_RCPT_TOKENS1 5      /* v1, after "rcpt": STATE ADDR ORCPT DSN TEXT */
#define ENV_RCPT_TOKENS 11      /* v2: STATE ADDR ORCPT NOTIFY DSNORCPT ATTEMPTS
                                   LAST REMOTE TLS DSN TEXT */
#define ENV_RCPT_CAP0   4       /* first allocation of the recipient array */

/* ------------------------------------------------------------------ */
/* memory                                                              */

/* Every empty string field points here instead of a 1-octet malloc (a
 * 32-octet chunk each: most recipients have six empty fields).  Never
 * written to; env_str_free skips it. */
static char env_empty[1];

static void env_str_free(char *s)
{
    if (s != env_empty)
        free(s);
}

void env_init(struct envelope *e)
{
    memset(e, 0, sizeof(*e));
}

static void rcpt_free(struct env_rcpt *r)
{
    env_str_free(r->addr);
    env_str_free(r->orcpt);
    env_str_free(r->dsn);
    env_str_free(r->text);
    env_str_free(r->dsn_orcpt);
    env_str_free(r->remote);
    env_str_free(r->tls);
    memset(r, 0, sizeof(*r));
}

/* ---- the address index (env_add_rcpt_unique) ------------------------- */

#define ENV_INDEX_MIN 64

struct env_index {
    size_t cap;                /* power of two, > 2 * nrcpt */
    size_t *slot;              /* recipient index + 1; 0 = empty */
};

static size_t index_hash(const char *s)
{
    return (size_t)hash_str(s);
}

static void index_free(struct env_index *x)
{
    if (x) {
        free(x->slot);
        free(x);
    }
}

/* The slot holding addr, or the empty slot where it would go. */
static size_t *index_find(const struct envelope *e, const char *addr)
{
    const struct env_index *x = e->index;
    size_t mask = x->cap - 1;
    for (size_t i = index_hash(addr) & mask;; i = (i + 1) & mask)
        if (x->slot[i] == 0 || strcmp(e->rcpts[x->slot[i] - 1].addr, addr) == 0)
            return &x->slot[i];
}

/* (Re)build the index for the recipients there now.  0 or -1 (ENOMEM). */
static int index_build(struct envelope *e)
{
    struct env_index *x = calloc(1, sizeof(*x));
    size_t cap = ENV_INDEX_MIN;
    while (cap <= 2 * (e->nrcpt + 1))
        cap *= 2;
    if (x)
        x->slot = calloc(cap, sizeof(*x->slot));
    if (x == NULL || x->slot == NULL) {
        index_free(x);
        return -1;
    }
    x->cap = cap;
    index_free(e->index);
    e->index = x;
    for (size_t i = 0; i < e->nrcpt; i++) {
        size_t *sl = index_find(e, e->rcpts[i].addr);
        if (*sl == 0)
            *sl = i + 1;
    }
    return 0;
}

/* Recipient i was just appended: index it (dropping the index on ENOMEM;
 * the next unique add rebuilds it). */
static void index_note(struct envelope *e, size_t i)
{
    if (e->index == NULL)
        return;
    if (2 * (e->nrcpt + 1) >= e->index->cap) {
        if (index_build(e) < 0) {
            index_free(e->index);
            e->index = NULL;
        }
        return;
    }
    size_t *sl = index_find(e, e->rcpts[i].addr);
    if (*sl == 0)
        *sl = i + 1;
}

void env_clear(struct envelope *e)
{
    size_t i;

    index_free(e->index);
    e->index = NULL;
    for (i = 0; i < e->nrcpt; i++)
        rcpt_free(&e->rcpts[i]);
    free(e->rcpts);
    env_str_free(e->sender);
    env_str_free(e->client);
    if (!e->client_packed) {
        env_str_free(e->helo);
        env_str_free(e->proto);
    }
    env_str_free(e->envid);
    env_init(e);
}

/* strndup of s (NULL = ""), at most max octets. */
static char *env_strdup_max(const char *s, size_t max)
{
    if (s == NULL)
        s = "";
    size_t n = strlen(s);
    if (n == 0 || max == 0)
        return env_empty;
    return strndup(s, n < max ? n : max);
}

static int env_replace(char **slot, const char *s, size_t max)
{
    char *copy = env_strdup_max(s, max);

    if (copy == NULL)
        return -1;
    env_str_free(*slot);
    *slot = copy;
    return 0;
}

/* One slot to fill by env_replace_all; copy is its scratch space. */
struct env_repl {
    char **slot;
    const char *val;
    size_t max;
    char *copy;
};

/* Copies every val (at most max octets) first; only if all copies exist are the
 * slots freed and replaced, so on -1 (ENOMEM) every slot keeps its old value. */
static int env_replace_all(struct env_repl *r, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        r[i].copy = env_strdup_max(r[i].val, r[i].max);
        if (r[i].copy == NULL) {
            while (i-- > 0)
                env_str_free(r[i].copy);
            return -1;
        }
    }
    for (i = 0; i < n; i++) {
        env_str_free(*r[i].slot);
        *r[i].slot = r[i].copy;
    }
    return 0;
}

static int env_too_long(const char *s)
{
    if (s != NULL && strlen(s) > ENV_MAX_FIELD) {
        errno = EINVAL;
        return 1;
    }
    return 0;
}

int env_set_sender(struct envelope *e, const char *sender)
{
    if (env_too_long(sender))
        return -1;
    return env_replace(&e->sender, sender, ENV_MAX_FIELD);
}

/* client, helo and proto in one block (client points at its start, the
 * other two into it): set together, read only for logs, bounces and
 * `queue show`, so one malloc instead of three.  NULL = "". */
static int env_pack_client(struct envelope *e, const char *client, const char *helo,
                           const char *proto)
{
    size_t lc = client ? strlen(client) : 0, lh = helo ? strlen(helo) : 0;
    size_t lp = proto ? strlen(proto) : 0;
    char *b = malloc(lc + lh + lp + 3);

    if (b == NULL)
        return -1;
    memcpy(b, client ? client : "", lc + 1);
    memcpy(b + lc + 1, helo ? helo : "", lh + 1);
    memcpy(b + lc + lh + 2, proto ? proto : "", lp + 1);
    env_str_free(e->client);
    if (!e->client_packed) {
        env_str_free(e->helo);
        env_str_free(e->proto);
    }
    e->client = b;
    e->helo = b + lc + 1;
    e->proto = b + lc + lh + 2;
    e->client_packed = 1;
    return 0;
}

int env_set_client(struct envelope *e, const char *client, const char *helo,
                   const char *proto)
{
    if (env_too_long(client) || env_too_long(helo) || env_too_long(proto))
        return -1;
    return env_pack_client(e, client, helo, proto);
}

static int env_grow(struct envelope *e)
{
    size_t cap;
    struct env_rcpt *n;

    if (e->nrcpt < e->rcpt_cap)
        return 0;
    if (e->nrcpt >= ENV_MAX_RCPT) {
        errno = E2BIG;
        return -1;
    }
    cap = e->rcpt_cap ? e->rcpt_cap * 2 : ENV_RCPT_CAP0;
    if (cap > ENV_MAX_RCPT)
        cap = ENV_MAX_RCPT;
    n = realloc(e->rcpts, cap * sizeof(*n));
    if (n == NULL)
        return -1;
    e->rcpts = n;
    e->rcpt_cap = cap;
    return 0;
}

/* Append a copy of *t (NULL strings = ""), no length policy. */
static int env_push_rcpt(struct envelope *e, const struct env_rcpt *t)
{
    struct env_rcpt r;

    if (env_grow(e) < 0)
        return -1;
    r = *t;
    r.addr = env_strdup_max(t->addr, SIZE_MAX);
    r.orcpt = env_strdup_max(t->orcpt, SIZE_MAX);
    r.dsn = env_strdup_max(t->dsn, SIZE_MAX);
    r.text = env_strdup_max(t->text, SIZE_MAX);
    r.dsn_orcpt = env_strdup_max(t->dsn_orcpt, SIZE_MAX);
    r.remote = env_strdup_max(t->remote, SIZE_MAX);
    r.tls = env_strdup_max(t->tls, SIZE_MAX);
    if (r.addr == NULL || r.orcpt == NULL || r.dsn == NULL || r.text == NULL ||
        r.dsn_orcpt == NULL || r.remote == NULL || r.tls == NULL) {
        rcpt_free(&r);
        return -1;
    }
    e->rcpts[e->nrcpt++] = r;
    return 0;
}

int env_add_rcpt(struct envelope *e, const char *addr, const char *orcpt)
{
    if (addr == NULL || addr[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (env_too_long(addr) || env_too_long(orcpt))
        return -1;
    struct env_rcpt t = { .addr = (char *)addr, .orcpt = (char *)orcpt,
                          .state = RCPT_PENDING };
    if (env_push_rcpt(e, &t) < 0)
        return -1;
    index_note(e, e->nrcpt - 1);
    return 0;
}

int env_add_rcpt_unique(struct envelope *e, const char *addr, const char *orcpt)
{
    if (addr == NULL || addr[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (e->index == NULL && index_build(e) < 0)
        return -1;
    if (*index_find(e, addr) != 0)
        return 0;
    return env_add_rcpt(e, addr, orcpt) < 0 ? -1 : 1;
}

static int env_state_ok(int st)
{
    return st == RCPT_PENDING || st == RCPT_SENT || st == RCPT_BOUNCED ||
           st == RCPT_DONE;
}

/* dsn and text are truncated to ENV_MAX_DSN / ENV_MAX_TEXT octets. */
int env_rcpt_set(struct env_rcpt *r, enum rcpt_state st, const char *dsn,
                 const char *text)
{
    struct env_repl v[] = {
        { &r->dsn, dsn, ENV_MAX_DSN, NULL },
        { &r->text, text, ENV_MAX_TEXT, NULL },
    };

    if (!env_state_ok((int)st)) {
        errno = EINVAL;
        return -1;
    }
    if (env_replace_all(v, sizeof(v) / sizeof(v[0])) < 0)
        return -1;
    r->state = st;
    return 0;
}

int env_rcpt_set_remote(struct env_rcpt *r, const char *remote, const char *tls,
                        long long when)
{
    struct env_repl v[] = {
        { &r->remote, remote, ENV_MAX_REMOTE, NULL },
        { &r->tls, tls, ENV_MAX_TLS, NULL },
    };

    if (env_replace_all(v, sizeof(v) / sizeof(v[0])) < 0)
        return -1;
    if (r->attempts < INT_MAX)
        r->attempts++;
    r->last_try = when > 0 ? when : 0;
    return 0;
}

int env_rcpt_set_dsn(struct env_rcpt *r, int notify, const char *dsn_orcpt)
{
    if ((notify & ~(ENV_N_SUCCESS | ENV_N_FAILURE | ENV_N_DELAY | ENV_N_NEVER)) != 0 ||
        ((notify & ENV_N_NEVER) && notify != ENV_N_NEVER) ||
        (dsn_orcpt != NULL && strlen(dsn_orcpt) > ENV_MAX_ORCPT)) {
        errno = EINVAL;
        return -1;
    }
    if (env_replace(&r->dsn_orcpt, dsn_orcpt, ENV_MAX_ORCPT) < 0)
        return -1;
    r->notify = notify;
    return 0;
}

int env_set_dsn(struct envelope *e, enum env_ret ret, const char *envid)
{
    if ((ret != ENV_RET_NONE && ret != ENV_RET_FULL && ret != ENV_RET_HDRS) ||
        (envid != NULL && strlen(envid) > ENV_MAX_ORCPT)) {
        errno = EINVAL;
        return -1;
    }
    if (env_replace(&e->envid, envid, ENV_MAX_ORCPT) < 0)
        return -1;
    e->ret = (int)ret;
    return 0;
}

size_t env_pending(const struct envelope *e)
{
    size_t i, n = 0;

    for (i = 0; i < e->nrcpt; i++)
        if (e->rcpts[i].state == RCPT_PENDING)
            n++;
    return n;
}

/* ------------------------------------------------------------------ */
/* DSN parameters for the next hop                                      */

/* Append RFC 3461 xtext of s: '+', '=', controls and non-ASCII as +XX. */
static int xtext_append(char *buf, size_t len, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int esc = c < 33 || c > 126 || c == '+' || c == '=';
        if (*pos + (esc ? 3 : 1) >= len)
            return -1;
        if (esc) {
            buf[(*pos)++] = '+';
            buf[(*pos)++] = hex[c >> 4];
            buf[(*pos)++] = hex[c & 15];
        } else {
            buf[(*pos)++] = (char)c;
        }
    }
    buf[*pos] = '\0';
    return 0;
}

static int lit_append(char *buf, size_t len, size_t *pos, const char *s)
{
    size_t n = strlen(s);

    if (*pos + n >= len)
        return -1;
    memcpy(buf + *pos, s, n + 1);
    *pos += n;
    return 0;
}

static int dsn_fail(char *buf, size_t len)
{
    if (len > 0)
        buf[0] = '\0';
    errno = ENOSPC;
    return -1;
}

int env_dsn_mail_params(const struct envelope *e, char *buf, size_t len)
{
    size_t pos = 0;
    const char *ret = e->ret == ENV_RET_FULL ? "RET=FULL" : e->ret == ENV_RET_HDRS ? "RET=HDRS" : "";

    if (len == 0)
        return dsn_fail(buf, len);
    buf[0] = '\0';
    if (lit_append(buf, len, &pos, ret) < 0)
        return dsn_fail(buf, len);
    if (e->envid && e->envid[0] &&
        (lit_append(buf, len, &pos, pos ? " ENVID=" : "ENVID=") < 0 ||
         xtext_append(buf, len, &pos, e->envid) < 0))
        return dsn_fail(buf, len);
    return 0;
}

int env_dsn_rcpt_params(const struct env_rcpt *r, char *buf, size_t len)
{
    static const struct { int bit; const char *name; } kw[] = {
        { ENV_N_SUCCESS, "SUCCESS" }, { ENV_N_FAILURE, "FAILURE" }, { ENV_N_DELAY, "DELAY" },
    };
    size_t pos = 0, k;
    const char *semi = r->dsn_orcpt ? strchr(r->dsn_orcpt, ';') : NULL;

    if (len == 0)
        return dsn_fail(buf, len);
    buf[0] = '\0';
    if (r->notify & ENV_N_NEVER) {
        if (lit_append(buf, len, &pos, "NOTIFY=NEVER") < 0)
            return dsn_fail(buf, len);
    } else if (r->notify) {
        for (k = 0; k < sizeof kw / sizeof kw[0]; k++)
            if ((r->notify & kw[k].bit) &&
                lit_append(buf, len, &pos, pos ? "," : "NOTIFY=") < 0)
                return dsn_fail(buf, len);
            else if ((r->notify & kw[k].bit) && lit_append(buf, len, &pos, kw[k].name) < 0)
                return dsn_fail(buf, len);
    }
    if (semi != NULL) {
        char type[64];
        size_t tl = (size_t)(semi - r->dsn_orcpt);
        if (tl == 0 || tl >= sizeof type)
            return dsn_fail(buf, len);
        memcpy(type, r->dsn_orcpt, tl);
        type[tl] = '\0';
        if (lit_append(buf, len, &pos, pos ? " ORCPT=" : "ORCPT=") < 0 ||
            lit_append(buf, len, &pos, type) < 0 || lit_append(buf, len, &pos, ";") < 0 ||
            xtext_append(buf, len, &pos, semi + 1) < 0)
            return dsn_fail(buf, len);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* the scalar fields, shared by env_format and env_parse                */

enum env_kind { EK_ID, EK_STR, EK_LL, EK_INT };

struct env_field {
    const char *key;
    enum env_kind kind;
    size_t off;        /* into struct envelope */
    int dash_empty;    /* EK_STR: "-" stands for empty */
    int since;         /* first format version with this key */
};

#define EF(k, kind, member, dash, v) { k, kind, offsetof(struct envelope, member), dash, v }
static const struct env_field env_fields[] = {
    EF("id",       EK_ID,  id,         0, 1),
    EF("arrival",  EK_LL,  arrival_us, 0, 1),
    EF("sender",   EK_STR, sender,     0, 1),
    EF("client",   EK_STR, client,     0, 1),
    EF("helo",     EK_STR, helo,       1, 1),
    EF("proto",    EK_STR, proto,      0, 1),
    EF("size",     EK_LL,  size,       0, 1),
    EF("attempts", EK_INT, attempts,   0, 1),
    EF("next_try", EK_LL,  next_try,   0, 1),
    EF("warned",   EK_INT, warned,     0, 1),
    EF("flags",    EK_INT, flags,      0, 1),
    EF("ret",      EK_INT, ret,        0, 2),
    EF("envid",    EK_STR, envid,      1, 2),
};
#define ENV_NFIELDS (sizeof(env_fields) / sizeof(env_fields[0]))

/* ------------------------------------------------------------------ */
/* formatting                                                          */

/* Encode s as a token of at most ENV_MAX_VALUE octets.  0 or -1. */
static int env_enc(const char *s, char out[ENV_MAX_VALUE + 1], int dash_empty)
{
    if (pct_encode(s, out, ENV_MAX_VALUE + 1, dash_empty) < 0) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

/* Encode the reason, cut to fit `room` octets (never inside an escape). */
static int env_enc_text(const char *s, char out[ENV_MAX_VALUE + 1], size_t room)
{
    size_t len, cut;
    char *big;

    if (s == NULL)
        s = "";
    if (room > ENV_MAX_VALUE)
        room = ENV_MAX_VALUE;
    len = strlen(s);
    big = malloc(len * 3 + 4);
    if (big == NULL)
        return -1;
    if (pct_encode(s, big, len * 3 + 4, 1) < 0) {
        free(big);
        return -1;
    }
    cut = strlen(big);
    if (cut > room) {
        cut = room;
        if (cut >= 1 && big[cut - 1] == '%')
            cut -= 1;
        else if (cut >= 2 && big[cut - 2] == '%')
            cut -= 2;
    }
    memcpy(out, big, cut);
    out[cut] = '\0';
    free(big);
    if (cut == 0) {         /* room is at least 1: write "empty" */
        if (room < 1)
            return -1;
        memcpy(out, "-", 2);
    }
    return 0;
}

static int env_fmt_scalar(FILE *f, const struct envelope *e, const struct env_field *fd)
{
    const char *base = (const char *)e;
    char enc[ENV_MAX_VALUE + 1];
    long long v;

    switch (fd->kind) {
    case EK_ID:
        if (!qid_valid(e->id))
            return -1;
        return fprintf(f, "%s %s\n", fd->key, e->id) < 0 ? -1 : 0;
    case EK_STR:
        if (env_enc(*(char *const *)(const void *)(base + fd->off), enc, fd->dash_empty) < 0)
            return -1;
        return fprintf(f, "%s%s%s\n", fd->key, enc[0] ? " " : "", enc) < 0 ? -1 : 0;
    case EK_LL:
        v = *(const long long *)(const void *)(base + fd->off);
        break;
    case EK_INT:
    default:
        v = *(const int *)(const void *)(base + fd->off);
        break;
    }
    if (v < 0)
        return -1;
    return fprintf(f, "%s %lld\n", fd->key, v) < 0 ? -1 : 0;
}

/* The encoded tokens of a rcpt line but the text. */
struct env_rcpt_enc {
    char addr[ENV_MAX_VALUE + 1], orcpt[ENV_MAX_VALUE + 1];
    char dorcpt[ENV_MAX_VALUE + 1], remote[ENV_MAX_VALUE + 1];
    char tls[ENV_MAX_VALUE + 1], dsn[ENV_MAX_VALUE + 1];
    char text[ENV_MAX_VALUE + 1];
};

static int env_fmt_rcpt(FILE *f, const struct env_rcpt *r)
{
    struct env_rcpt_enc *x;
    size_t used;
    int rc = -1;

    if (!env_state_ok((int)r->state) || r->addr == NULL || r->addr[0] == '\0' ||
        r->notify < 0 || r->attempts < 0 || r->last_try < 0)
        return -1;
    x = malloc(sizeof(*x));
    if (x == NULL)
        return -1;
    if (env_enc(r->addr, x->addr, 1) < 0 || env_enc(r->orcpt, x->orcpt, 1) < 0 ||
        env_enc(r->dsn_orcpt, x->dorcpt, 1) < 0 || env_enc(r->remote, x->remote, 1) < 0 ||
        env_enc(r->tls, x->tls, 1) < 0 || env_enc(r->dsn, x->dsn, 1) < 0)
        goto out;
    /* "rcpt S addr orcpt notify dorcpt attempts last remote tls dsn " then the text */
    used = strlen("rcpt S ") + strlen(x->addr) + strlen(x->orcpt) + strlen(x->dorcpt) +
           strlen(x->remote) + strlen(x->tls) + strlen(x->dsn) + 3 * 24 + 10;
    if (used >= ENV_MAX_LINE) {
        errno = EINVAL;
        goto out;
    }
    if (env_enc_text(r->text, x->text, ENV_MAX_LINE - used) < 0)
        goto out;
    rc = fprintf(f, "rcpt %c %s %s %d %s %d %lld %s %s %s %s\n", (char)r->state, x->addr,
                 x->orcpt, r->notify, x->dorcpt, r->attempts, r->last_try, x->remote,
                 x->tls, x->dsn, x->text) < 0 ? -1 : 0;
out:
    free(x);
    return rc;
}

static int env_fmt_all(FILE *f, const struct envelope *e)
{
    size_t i;

    if (fprintf(f, "%s%d\n", ENV_MAGIC, ENV_VERSION) < 0)
        return -1;
    for (i = 0; i < ENV_NFIELDS; i++)
        if (env_fmt_scalar(f, e, &env_fields[i]) < 0)
            return -1;
    if (e->nrcpt > ENV_MAX_RCPT)
        return -1;
    for (i = 0; i < e->nrcpt; i++)
        if (env_fmt_rcpt(f, &e->rcpts[i]) < 0)
            return -1;
    return fprintf(f, "%s\n", ENV_END) < 0 ? -1 : 0;
}

int env_format(const struct envelope *e, char **buf, size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    int rc, saved;

    if (f == NULL)
        return -1;
    rc = env_fmt_all(f, e);
    if (ferror(f))
        rc = -1;
    saved = errno;
    if (fclose(f) != 0)
        rc = -1;
    if (rc < 0) {
        free(p);
        errno = saved ? saved : EINVAL;
        return -1;
    }
    *buf = p;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

struct env_parse_ctx {
    struct envelope *e;
    int version;            /* from the header line */
    unsigned seen;          /* bit per env_fields entry */
    size_t lineno;
    char *err;
    size_t errlen;
};

static int env_fail(struct env_parse_ctx *c, const char *why)
{
    if (c->err != NULL && c->errlen > 0) {
        if (c->lineno > 0)
            snprintf(c->err, c->errlen, "line %zu: %s", c->lineno, why);
        else
            snprintf(c->err, c->errlen, "%s", why);
    }
    return -1;
}

/* Decimal digits only, 0..max. */
static int env_parse_num(const char *s, long long max, long long *out)
{
    long long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (max - (*s - '0')) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

/* Decode one token into a fresh string. */
static int env_dec(const char *tok, int dash_empty, char **out)
{
    size_t n = strlen(tok);
    char *s;

    if (n > ENV_MAX_VALUE)
        return -1;
    s = malloc(n + 1);
    if (s == NULL)
        return -1;
    if (pct_decode(tok, s, n + 1, dash_empty) < 0) {
        free(s);
        return -1;
    }
    if (s[0] == '\0') {
        free(s);
        s = env_empty;
    }
    *out = s;
    return 0;
}

static int env_set_scalar(struct env_parse_ctx *c, const struct env_field *fd,
                          const char *val)
{
    char *base = (char *)c->e;
    long long v;
    char *s;

    switch (fd->kind) {
    case EK_ID:
        if (!qid_valid(val))
            return env_fail(c, "bad queue id");
        memcpy(c->e->id, val, QID_LEN + 1);
        return 0;
    case EK_STR:
        if (strchr(val, ' ') != NULL || env_dec(val, fd->dash_empty, &s) < 0)
            return env_fail(c, "bad value");
        *(char **)(void *)(base + fd->off) = s;
        return 0;
    case EK_LL:
        if (env_parse_num(val, LLONG_MAX, &v) < 0)
            return env_fail(c, "bad number");
        *(long long *)(void *)(base + fd->off) = v;
        return 0;
    case EK_INT:
    default:
        if (env_parse_num(val, INT_MAX, &v) < 0)
            return env_fail(c, "bad number");
        *(int *)(void *)(base + fd->off) = (int)v;
        return 0;
    }
}

/* Split s on single spaces into exactly n non-empty tokens. */
static int env_split(char *s, char **tok, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char *sp;
        if (*s == '\0' || *s == ' ')
            return -1;
        tok[i] = s;
        sp = strchr(s, ' ');
        if (sp == NULL)
            return i + 1 == n ? 0 : -1;
        if (i + 1 == n)
            return -1;          /* too many tokens */
        *sp = '\0';
        s = sp + 1;
    }
    return -1;
}

/* Version 2's NOTIFY ATTEMPTS LAST (tok[3], tok[5], tok[6]) and the
 * strings DSNORCPT REMOTE TLS (tok[4], tok[7], tok[8]). */
static int env_parse_rcpt_v2(char **tok, struct env_rcpt *r)
{
    long long v;

    if (env_parse_num(tok[3], ENV_N_SUCCESS | ENV_N_FAILURE | ENV_N_DELAY | ENV_N_NEVER, &v) < 0)
        return -1;
    r->notify = (int)v;
    if (env_parse_num(tok[5], INT_MAX, &v) < 0)
        return -1;
    r->attempts = (int)v;
    if (env_parse_num(tok[6], LLONG_MAX, &r->last_try) < 0)
        return -1;
    if (env_dec(tok[4], 1, &r->dsn_orcpt) < 0 || env_dec(tok[7], 1, &r->remote) < 0 ||
        env_dec(tok[8], 1, &r->tls) < 0)
        return -1;
    return 0;
}

static int env_parse_rcpt(struct env_parse_ctx *c, char *val)
{
    char *tok[ENV_RCPT_TOKENS];
    size_t ntok = c->version >= 2 ? ENV_RCPT_TOKENS : ENV_RCPT_TOKENS1;
    struct env_rcpt r;
    int rc = -1;

    memset(&r, 0, sizeof r);
    if (env_split(val, tok, ntok) < 0)
        return env_fail(c, "rcpt: wrong number of tokens");
    if (tok[0][1] != '\0' || !env_state_ok((unsigned char)tok[0][0]))
        return env_fail(c, "rcpt: bad state");
    if (c->e->nrcpt >= ENV_MAX_RCPT)
        return env_fail(c, "too many recipients");
    r.state = (enum rcpt_state)tok[0][0];
    if (env_dec(tok[1], 1, &r.addr) < 0 || env_dec(tok[2], 1, &r.orcpt) < 0 ||
        env_dec(tok[ntok - 2], 1, &r.dsn) < 0 || env_dec(tok[ntok - 1], 1, &r.text) < 0 ||
        (ntok == ENV_RCPT_TOKENS && env_parse_rcpt_v2(tok, &r) < 0))
        env_fail(c, "rcpt: bad token");
    else if (r.addr[0] == '\0')
        env_fail(c, "rcpt: empty address");
    else if (env_push_rcpt(c->e, &r) < 0)
        env_fail(c, "out of memory");
    else
        rc = 0;
    rcpt_free(&r);                  /* env_push_rcpt kept copies */
    return rc;
}

/* Only printable ASCII and single spaces inside a line. */
static int env_line_chars_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch > 0x7e)
            return 0;
    }
    return 1;
}

static int env_parse_line(struct env_parse_ctx *c, char *line)
{
    char *val = strchr(line, ' ');
    size_t i;

    if (val != NULL)
        *val++ = '\0';
    else
        val = line + strlen(line);   /* "" */
    if (strcmp(line, "rcpt") == 0)
        return env_parse_rcpt(c, val);
    for (i = 0; i < ENV_NFIELDS; i++) {
        if (strcmp(line, env_fields[i].key) != 0 || env_fields[i].since > c->version)
            continue;
        if (c->seen & (1u << i))
            return env_fail(c, "duplicate key");
        c->seen |= 1u << i;
        return env_set_scalar(c, &env_fields[i], val);
    }
    return env_fail(c, "unknown key");
}

/* Walk the lines after the header; 1 when "end" was the last line. */
static int env_parse_body(struct env_parse_ctx *c, const char *buf, size_t len)
{
    char line[ENV_MAX_LINE + 1];
    size_t pos = 0;

    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n;
        c->lineno++;
        if (nl == NULL)
            return env_fail(c, "no end marker (torn write)");
        n = (size_t)(nl - (buf + pos));
        if (n > ENV_MAX_LINE)
            return env_fail(c, "line too long");
        if (!env_line_chars_ok(buf + pos, n))
            return env_fail(c, "bad character");
        memcpy(line, buf + pos, n);
        line[n] = '\0';
        pos += n + 1;
        if (strcmp(line, ENV_END) == 0)
            return pos == len ? 1 : env_fail(c, "data after end marker");
        if (c->lineno == 1) {
            c->version = env_version(buf, len);
            if (c->version < 1 || c->version > ENV_VERSION ||
                strncmp(line, ENV_MAGIC, sizeof ENV_MAGIC - 1) != 0)
                return env_fail(c, "not an envelope of a version this hatod reads");
            continue;
        }
        if (env_parse_line(c, line) < 0)
            return -1;
    }
    c->lineno = 0;
    return env_fail(c, "no end marker (torn write)");
}

int env_version(const char *buf, size_t len)
{
    static const char magic[] = "hato-envelope ";
    size_t i = sizeof magic - 1;
    long v = 0;

    if (buf == NULL || len <= i || memcmp(buf, magic, i) != 0)
        return -1;
    for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
        v = v * 10 + (buf[i] - '0');
        if (v > 1000000)
            return -1;
    }
    if (i == sizeof magic - 1 || i == len || buf[i] != '\n')
        return -1;
    return (int)v;
}

/* The env_fields bits a file of this version must have. */
static unsigned env_keys_of(int version)
{
    unsigned bits = 0;

    for (size_t i = 0; i < ENV_NFIELDS; i++)
        if (env_fields[i].since <= version)
            bits |= 1u << i;
    return bits;
}

int env_parse(const char *buf, size_t len, struct envelope *e, char *err, size_t errlen)
{
    struct envelope tmp;
    struct env_parse_ctx c;
    int rc;

    env_init(&tmp);
    memset(&c, 0, sizeof(c));
    c.e = &tmp;
    c.err = err;
    c.errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (buf == NULL)
        len = 0;
    rc = env_parse_body(&c, buf, len);
    if (rc == 1 && c.lineno == 1)
        rc = env_fail(&c, "not an envelope of a version this hatod reads");
    if (rc == 1 && c.seen != env_keys_of(c.version)) {
        c.lineno = 0;
        rc = env_fail(&c, "missing key");
    }
    if (rc == 1 && tmp.envid == NULL)
        tmp.envid = env_empty;
    env_clear(e);
    if (rc != 1) {
        env_clear(&tmp);
        return -1;
    }
    *e = tmp;
    return 0;
}

int env_copy(struct envelope *dst, const struct envelope *src)
{
    struct envelope tmp;
    size_t i;

    env_init(&tmp);
    memcpy(tmp.id, src->id, sizeof(tmp.id));
    tmp.arrival_us = src->arrival_us;
    tmp.size = src->size;
    tmp.attempts = src->attempts;
    tmp.next_try = src->next_try;
    tmp.warned = src->warned;
    tmp.flags = src->flags;
    tmp.ret = src->ret;
    if (env_replace(&tmp.envid, src->envid, SIZE_MAX) < 0 ||
        env_replace(&tmp.sender, src->sender, SIZE_MAX) < 0 ||
        env_pack_client(&tmp, src->client, src->helo, src->proto) < 0)
        goto fail;
    /* exactly nrcpt slots: a copy (the scheduler's) does not grow */
    if (src->nrcpt > 0) {
        tmp.rcpts = malloc(src->nrcpt * sizeof(*tmp.rcpts));
        if (tmp.rcpts == NULL)
            goto fail;
        tmp.rcpt_cap = src->nrcpt;
    }
    for (i = 0; i < src->nrcpt; i++) {
        if (env_push_rcpt(&tmp, &src->rcpts[i]) < 0)
            goto fail;
    }
    env_clear(dst);
    *dst = tmp;
    return 0;
fail:
    env_clear(&tmp);
    return -1;
}
