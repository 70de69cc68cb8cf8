/*
 * mta/remote.c — the "smtp" delivery agent as it stands before outbound
 * delivery exists: an honest deferral for every remote recipient.
 */
#include <stdio.h>

#include "mta/remote.h"
#include "queue/scheduler.h"

void remote_agent_deliver(void *ctx, struct sched_delivery *dl)
{
    for (size_t k = 0; k < dl->n; k++) {
        dl->res[k].state = RCPT_PENDING;
        snprintf(dl->res[k].dsn, sizeof dl->res[k].dsn, "4.4.0");
        snprintf(dl->res[k].text, sizeof dl->res[k].text, "no outbound transport yet");
    }
    sched_delivery_done(dl);
}
