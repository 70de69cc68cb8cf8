/*
 * lib/conf.h — a schema-driven reader for `key = value` files (Postfix
 * main.cf style): `#` comments, continuation lines (leading white space),
 * `$key` / `${key}` expansion, lists split on commas and white space, sizes
 * with K/M/G (1024-based), times with s/m/h/d/w (bare number = seconds).
 * Knows nothing of mail: the schema (names, types, defaults) is the caller's.
 *
 * Every error names FILE:LINE and the key; unknown keys are errors.
 */
#ifndef HATO_CONF_H
#define HATO_CONF_H

#include <stddef.h>

enum conf_type {
    CT_STR,     /* text, after $expansion */
    CT_LIST,    /* text split into items on commas and white space */
    CT_SIZE,    /* bytes: "10240000", "10M", "512K", "1G" */
    CT_TIME,    /* seconds: "300", "300s", "5m", "4h", "5d", "1w" */
    CT_INT,     /* non-negative decimal integer */
    CT_BOOL,    /* yes/no, true/false, on/off, 1/0 */
    CT_CHOICE,  /* one of `choices` ("none,may,encrypt"); num = its index */
};

struct conf_def {
    const char *name;
    enum conf_type type;
    const char *defval;   /* default text (expanded like a value); NULL = "" */
    const char *choices;  /* CT_CHOICE only */
};

struct conf_value {
    const char *str;      /* expanded text, never NULL ("" if empty) */
    char **list;          /* CT_LIST: items (nlist of them) */
    size_t nlist;
    long long num;        /* SIZE bytes, TIME seconds, INT, BOOL 0/1, CHOICE index */
    int line;             /* line in the file; 0 = the default was used */
};

struct conf;

/* Read and check `path` against the schema.  NULL path = defaults only.
 * On error returns NULL and writes "FILE:LINE: message naming the key" into
 * err (or "FILE: reason" when the file cannot be read). */
struct conf *conf_load(const char *path, const struct conf_def *defs, size_t ndefs,
                       char *err, size_t errlen);
/* The value of a schema key; NULL if the name is not in the schema. */
const struct conf_value *conf_get(const struct conf *c, const char *name);
const char *conf_path(const struct conf *c);
void conf_free(struct conf *c);

/* The typed parsers, exposed for tools and tests.  0 ok, -1 bad input. */
int conf_parse_size(const char *s, long long *out);
int conf_parse_time(const char *s, long long *out);
int conf_parse_bool(const char *s, int *out);
/* Split on commas/white space into a malloc'd array of malloc'd strings. */
int conf_split_list(const char *s, char ***out, size_t *n);
void conf_free_list(char **list, size_t n);

#endif
