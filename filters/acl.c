/*
 * filters/acl.c — the relay access check at RCPT (Postfix's
 * reject_unauth_destination / permit_mynetworks / permit_sasl_authenticated),
 * and POP-before-SMTP (auth/popb4smtp.h).
 * Pure decision from the transaction view; never pending.
 */
#include <stdio.h>
#include <string.h>

#include "auth/popb4smtp.h"
#include "filters/acl.h"
#include "lib/iplist.h"
#include "lib/timeutil.h"

static enum filter_verdict acl_rcpt(void *ctx, const struct filter_txn *t,
                                    struct filter_reply *r, void *token)
{
    const struct iplist *relay = ctx;
    if (t->rcpt_local || t->trusted || t->authenticated)
        return FILTER_CONTINUE;
    if (t->client && relay && iplist_match(relay, t->client))
        return FILTER_CONTINUE;
    if (t->client && popb4smtp_allowed(t->client, time_mono_us() / 1000000))
        return FILTER_CONTINUE;          /* POP-before-SMTP (pop_before_smtp_time) */
    r->code = 554;
    snprintf(r->enh, sizeof r->enh, "5.7.1");
    snprintf(r->text, sizeof r->text, "<%s>: Relay access denied", t->rcpt);
    return FILTER_REJECT;
}

void acl_filter(struct filter *f, const struct iplist *relay_clients)
{
    memset(f, 0, sizeof *f);
    f->name = "relay-acl";
    f->hook[FILTER_RCPT] = acl_rcpt;
    f->ctx = (void *)relay_clients;
}
