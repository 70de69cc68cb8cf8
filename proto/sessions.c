/*
 * proto/sessions.c — the session-id table (proto/sessions.h): buckets by
 * id, chained through the links the sessions embed.
 */
#include "proto/sessions.h"

void sess_table_add(struct sess_table *t, struct sess_link *l, void *owner)
{
    l->id = ++t->last_id;
    l->owner = owner;
    struct sess_link **b = &t->buckets[l->id % SESS_BUCKETS];
    l->next = *b;
    *b = l;
    t->n++;
}

void sess_table_remove(struct sess_table *t, struct sess_link *l)
{
    struct sess_link **pp = &t->buckets[l->id % SESS_BUCKETS];
    while (*pp && *pp != l)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = l->next;
        t->n--;
    }
}

void *sess_table_find(const struct sess_table *t, unsigned long long id)
{
    for (const struct sess_link *l = t->buckets[id % SESS_BUCKETS]; l; l = l->next)
        if (l->id == id)
            return l->owner;
    return NULL;
}

void sess_table_each(struct sess_table *t, void (*fn)(void *owner, void *arg), void *arg)
{
    for (size_t b = 0; b < SESS_BUCKETS; b++)
        for (struct sess_link *l = t->buckets[b], *next; l; l = next) {
            next = l->next;
            fn(l->owner, arg);
        }
}

void *sess_table_any(const struct sess_table *t)
{
    if (t->n == 0)
        return NULL;
    for (size_t b = 0; b < SESS_BUCKETS; b++)
        if (t->buckets[b])
            return t->buckets[b]->owner;
    return NULL;
}
