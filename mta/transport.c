/*
 * mta/transport.c — outbound routing tables (contract in transport.h):
 * transport_maps and smtp_sasl_password_maps read into small hash tables,
 * relayhost and default_transport parsed once.  Owns only these tables;
 * never does DNS or I/O after transport_load().
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"
#include "mta/config.h"
#include "mta/mx.h"
#include "mta/transport.h"

#define NBUCKETS 256

struct entry {
    char *key;                   /* lower-case */
    struct transport_route r;    /* transport_maps */
    char *user, *pass;           /* smtp_sasl_password_maps */
    struct entry *next;
};

struct transport {
    struct entry *maps[NBUCKETS];
    struct entry *sasl[NBUCKETS];
    struct transport_route def;  /* default_transport (with relayhost) */
};

static size_t bucket(const char *key)
{
    return (size_t)(hash_str(key) % NBUCKETS);
}

static const struct entry *find(struct entry *const *tab, const char *key)
{
    for (const struct entry *e = tab[bucket(key)]; e; e = e->next)
        if (!strcmp(e->key, key))
            return e;
    return NULL;
}

static void free_tab(struct entry **tab)
{
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct entry *e = tab[i];
        while (e) {
            struct entry *n = e->next;
            free(e->key);
            if (e->pass)
                memset(e->pass, 0, strlen(e->pass));
            free(e->user);
            free(e->pass);
            free(e);
            e = n;
        }
    }
}

void transport_free(struct transport *t)
{
    if (!t)
        return;
    free_tab(t->maps);
    free_tab(t->sasl);
    free(t);
}

/* "4.3.2 text" → dsn and text; a value without a code gets defcode. */
static void split_code(const char *v, const char *defcode, struct transport_route *r)
{
    const char *p = v;
    if ((p[0] == '4' || p[0] == '5') && p[1] == '.' && isdigit((unsigned char)p[2])) {
        size_t n = strcspn(p, " \t");
        snprintf(r->dsn, sizeof r->dsn, "%.*s", (int)(n < 15 ? n : 15), p);
        p += n;
        while (*p == ' ' || *p == '\t')
            p++;
    } else {
        snprintf(r->dsn, sizeof r->dsn, "%s", defcode);
    }
    snprintf(r->text, sizeof r->text, "%s", *p ? p : "delivery suspended by the transport");
}

/* "" (the domain) or what mx_lookup() can parse. */
static int nexthop_ok(const char *v)
{
    char host[TRANSPORT_NEXTHOP_MAX];
    int literal, port;
    return !*v || mx_parse_nexthop(v, host, sizeof host, &literal, &port) == 0;
}

/* A transport_maps / default_transport value.  0, or -1 if unknown. */
static int parse_value(const char *v, struct transport_route *r)
{
    memset(r, 0, sizeof *r);
    r->kind = TR_SMTP;
    if (!strncmp(v, "retry:", 6)) {
        r->kind = TR_RETRY;
        split_code(v + 6, "4.3.2", r);
        return 0;
    }
    if (!strncmp(v, "error:", 6)) {
        r->kind = TR_ERROR;
        split_code(v + 6, "5.0.0", r);
        return 0;
    }
    if (!strcmp(v, "smtp"))
        return 0;                /* nexthop "": the domain (or relayhost, for the default) */
    if (!strncmp(v, "smtp:", 5))
        v += 5;
    else if (v[0] != '[' && strchr(v, ':') && (!strchr(v, ':')[1] ||
             strspn(strchr(v, ':') + 1, "0123456789") != strlen(strchr(v, ':') + 1)))
        return -1;               /* "local:", "lmtp:...": not a transport hato has */
    if (strlen(v) >= sizeof r->nexthop || strpbrk(v, " \t") || !nexthop_ok(v))
        return -1;
    snprintf(r->nexthop, sizeof r->nexthop, "%s", v);
    return 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int add(struct entry **tab, const char *key, const struct transport_route *r,
               const char *user, const char *pass)
{
    struct entry *e = calloc(1, sizeof *e);
    if (!e || !(e->key = strdup(key)))
        goto oom;
    lower(e->key);
    if (r)
        e->r = *r;
    if (user && (!(e->user = strdup(user)) || !(e->pass = strdup(pass))))
        goto oom;
    size_t b = bucket(e->key);
    e->next = tab[b];            /* a later line wins over an earlier one */
    tab[b] = e;
    return 0;
oom:
    if (e) {
        free(e->key);
        free(e->user);
        free(e->pass);
        free(e);
    }
    return -1;
}

/* Postfix map files name a type ("hash:/etc/postfix/transport"); hato
 * reads the text file itself. */
static const char *map_file(const char *f)
{
    const char *colon = strchr(f, ':');
    return colon && f[0] != '/' ? colon + 1 : f;
}

static int load_file(struct transport *t, const char *file, int sasl, char *err, size_t errlen)
{
    const char *path = map_file(file);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char key[TRANSPORT_NEXTHOP_MAX], val[1024];
        char *hash = strchr(line, '#');
        if (hash && !sasl)
            *hash = '\0';        /* a password may hold '#': only whole comment lines there */
        if (sasl && line[strspn(line, " \t")] == '#')
            continue;
        if (sscanf(line, " %299s %1023[^\r\n]", key, val) != 2) {
            if (strspn(line, " \t\r\n") != strlen(line))
                rc = -1, snprintf(err, errlen, "%s:%d: want KEY VALUE", path, lineno);
            continue;
        }
        for (size_t n = strlen(val); n > 0 && (val[n - 1] == ' ' || val[n - 1] == '\t'); n--)
            val[n - 1] = '\0';
        if (sasl) {
            char *colon = strchr(val, ':');
            if (!colon) {
                rc = -1, snprintf(err, errlen, "%s:%d: want NEXTHOP user:password", path, lineno);
                continue;
            }
            *colon = '\0';
            rc = add(t->sasl, key, NULL, val, colon + 1);
            memset(val, 0, sizeof val);
        } else {
            struct transport_route r;
            if (parse_value(val, &r) < 0)
                rc = -1, snprintf(err, errlen, "%s:%d: unknown transport '%s'", path, lineno, val);
            else
                rc = add(t->maps, key, &r, NULL, NULL);
        }
        if (rc < 0 && !err[0])
            snprintf(err, errlen, "%s:%d: out of memory", path, lineno);
    }
    memset(line, 0, sizeof line);
    fclose(f);
    return rc;
}

struct transport *transport_load(const struct hato_config *c, char *err, size_t errlen)
{
    struct transport *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    err[0] = '\0';
    if (parse_value(c->default_transport, &t->def) < 0) {
        snprintf(err, errlen, "%s: default_transport: unknown transport '%s'", c->path,
                 c->default_transport);
        goto fail;
    }
    if (strlen(c->relayhost) >= sizeof t->def.nexthop || !nexthop_ok(c->relayhost)) {
        snprintf(err, errlen, "%s: relayhost: bad next hop '%s' (want host, [host] or "
                 "[host]:port)", c->path, c->relayhost);
        goto fail;
    }
    if (t->def.kind == TR_SMTP && !t->def.nexthop[0])
        snprintf(t->def.nexthop, sizeof t->def.nexthop, "%s", c->relayhost);
    for (size_t i = 0; i < c->ntransport_maps; i++)
        if (load_file(t, c->transport_maps[i], 0, err, errlen) < 0)
            goto fail;
    if (c->smtp_sasl_password_maps[0] &&
        load_file(t, c->smtp_sasl_password_maps, 1, err, errlen) < 0)
        goto fail;
    return t;
fail:
    transport_free(t);
    return NULL;
}

void transport_route(const struct transport *t, const char *domain, struct transport_route *r)
{
    const struct entry *e = find(t->maps, domain);
    for (const char *p = domain; !e && (p = strchr(p, '.')) != NULL; p++)
        e = find(t->maps, p);    /* ".example.com" for a subdomain */
    if (!e)
        e = find(t->maps, "*");
    *r = e ? e->r : t->def;
    if (r->kind == TR_SMTP && !r->nexthop[0])
        snprintf(r->nexthop, sizeof r->nexthop, "%s", domain);
}

int transport_sasl(const struct transport *t, const char *nexthop, const char **user,
                   const char **pass)
{
    char key[TRANSPORT_NEXTHOP_MAX];
    snprintf(key, sizeof key, "%s", nexthop);
    lower(key);
    const struct entry *e = find(t->sasl, key);
    if (!e && key[0] == '[') {   /* "[host]:port" → "host" */
        char *close = strchr(key, ']');
        if (close) {
            *close = '\0';
            e = find(t->sasl, key + 1);
        }
    }
    if (!e)
        return 0;
    *user = e->user;
    *pass = e->pass;
    return 1;
}
