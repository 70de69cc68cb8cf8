/*
 * mta/aliases.h — the alias table (`alias_maps`, /etc/aliases format):
 *   name: target, target, ...
 * Continuation lines start with white space; `#` comments.  A bare name
 * ("postmaster") applies to every local domain; "name@domain" to that
 * domain only.  A bare target is the user of that name in the domain of the
 * address being expanded.  Pipes, files and :include: are refused at load.
 * Names are lower-cased.  Also the atomic edits of `hatoctl alias`.
 */
#ifndef HATO_ALIASES_H
#define HATO_ALIASES_H

#include <stddef.h>

struct aliastab;

/* Load; a missing file is an empty table.  NULL + "FILE:LINE: reason". */
struct aliastab *aliases_load(const char *path, char *err, size_t errlen);
/* Targets of "local@domain" (exact entry first, then the bare "local").
 * NULL if no alias.  *n = count.  Strings are as written in the file. */
char *const *aliases_lookup(const struct aliastab *t, const char *local,
                            const char *domain, size_t *n);
size_t aliases_count(const struct aliastab *t);
/* i-th entry: name and its targets. */
const char *aliases_at(const struct aliastab *t, size_t i, char *const **targets, size_t *n);
void aliases_free(struct aliastab *t);

/* Add or replace the entry `name` (atomic rewrite keeping comments). */
int aliases_file_set(const char *path, const char *name, char *const *targets,
                     size_t n, char *err, size_t errlen);
/* Remove the entry `name`; -1 + message if absent. */
int aliases_file_del(const char *path, const char *name, char *err, size_t errlen);

#endif
