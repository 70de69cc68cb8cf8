/*
 * mta/local.c — local delivery.  On the loop: look each recipient's mailbox
 * up (users, plus-addressing) and gather deliveries into a batch.  In the
 * pool: write every Maildir file of the batch into tmp/, make them durable
 * (one syncfs for the batch, or an fsync each), rename them into new/, make
 * the renames durable, and report each recipient's result.  Never reports
 * "sent" before the file and its directory entry are on stable storage.
 * Each rename into new/ is made under the folder's index lock together with
 * the message's index record (store/index.h), in the same pool job; the
 * records are flushed with the renames (the second syncfs, or once per
 * mailbox with its new/), before "sent".
 *
 * Quota: a message that would cross the user's quota is deferred (4.2.2;
 * the queue's lifetime then bounces it), or bounced at once (5.2.2) with
 * quota_full_permanent.  After a delivery that takes usage to
 * quota_warning_percent, a warning mail from postmaster is queued to the
 * user, once per crossing (store_quota_warn keeps the marker).  The first
 * delivery into a mailbox gives it its folders (store/layout.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/work.h"
#include "mta/local.h"
#include "mta/router.h"
#include "mta/tables.h"
#include "queue/scheduler.h"
#include "store/index.h"
#include "store/layout.h"
#include "store/maildir.h"
#include "store/path.h"

#define LOCAL_BATCH_MAX    256     /* deliveries per pool job */
#ifndef LOCAL_JOBS_MAX
#define LOCAL_JOBS_MAX     2       /* batch jobs in flight at once */
#endif

struct local_item {                /* one recipient of one delivery */
    char *mailbox;                 /* Maildir root (the tmp file borrows it) */
    long long quota;
    int quota_permanent;           /* quota_full_permanent when looked up */
    int warn_percent;              /* quota_warning_percent when looked up */
    int warn;                      /* the pool found a warning due */
    long long warn_usage;
    char *user;                    /* "local@domain" of the mailbox: the warning's recipient */
    char *prefix;
    size_t prefix_len;
    struct sched_result *res;
    struct maildir_tmp tmp;
    int begun;
};

struct local_dl {                  /* one sched_delivery */
    struct sched_delivery *dl;
    struct local_item *items;
    size_t nitems;
    struct local_dl *next;
};

struct local_job {
    struct local_agent *la;
    struct local_dl *dls;
    int syncfs_fd;
    int whole_fs;                /* one syncfs for the batch, not an fsync per file */
};

struct local_agent {
    struct work_pool *pool;
    char maildirs[PATH_MAX];       /* state_directory/mail */
    int batch;
    const struct tables *tables;
    struct local_dl *waiting, *waiting_tail;
    size_t nwaiting;
    int jobs;
};

static void set_result(struct sched_result *r, enum rcpt_state st, const char *dsn, const char *text)
{
    r->state = st;
    snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
    snprintf(r->text, sizeof r->text, "%s", text);
}

/* ------------------------------------------------------------ worker side */

static void item_begin(struct local_item *it, int fd, long long size)
{
    struct maildir_err e;
    if (maildir_begin(it->mailbox, it->prefix, it->prefix_len, fd, size, it->quota,
                      &it->tmp, &e) < 0) {
        if (it->quota_permanent && strcmp(e.dsn, "4.2.2") == 0)
            set_result(it->res, RCPT_BOUNCED, "5.2.2", e.text);
        else
            set_result(it->res, e.temporary ? RCPT_PENDING : RCPT_BOUNCED, e.dsn, e.text);
        return;
    }
    if (it->tmp.created && store_layout_ensure(it->mailbox) < 0)
        log_warn("local: %s: cannot make the mailbox's folders: %s", it->mailbox, strerror(errno));
    it->begun = 1;
}

/* After a delivery: is a quota warning due? (store_quota_warn) */
static void item_check_warning(struct local_item *it)
{
    if (it->warn_percent <= 0 || it->quota <= 0)
        return;
    int r = store_quota_warn(it->mailbox, it->quota, it->warn_percent, &it->warn_usage);
    if (r < 0)
        log_warn("local: %s: quota warning check failed: %s", it->mailbox, strerror(errno));
    it->warn = r == 1;
}

static void item_fail_io(struct local_item *it, const char *what)
{
    char text[256];
    snprintf(text, sizeof text, "%s: %s", what, strerror(errno));
    if (it->begun)
        maildir_abort(&it->tmp);
    it->begun = 0;
    set_result(it->res, RCPT_PENDING, errno == ENOSPC || errno == EDQUOT ? "4.3.1" : "4.3.0", text);
}

static void write_all_tmp(struct local_job *j)
{
    for (struct local_dl *d = j->dls; d; d = d->next) {
        int fd = open(d->dl->msg_path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            for (size_t i = 0; i < d->nitems; i++)
                item_fail_io(&d->items[i], "cannot read the queue file");
            if (fd >= 0)
                close(fd);
            continue;
        }
        for (size_t i = 0; i < d->nitems; i++) {
            item_begin(&d->items[i], fd, (long long)st.st_size);
            /* the index records are flushed after all the renames: by the
             * batch's second syncfs, or once per mailbox (flush_mailboxes) */
            d->items[i].tmp.index_nosync = 1;
            if (j->syncfs_fd < 0 && d->items[i].begun)
                j->syncfs_fd = dup(d->items[i].tmp.fd);
        }
        close(fd);
    }
}

static void sync_tmp(struct local_job *j)
{
    int batch = j->whole_fs;
    int ok = 1;
    if (batch && j->syncfs_fd >= 0)
        ok = syncfs(j->syncfs_fd) == 0;
    for (struct local_dl *d = j->dls; d; d = d->next)
        for (size_t i = 0; i < d->nitems; i++) {
            struct local_item *it = &d->items[i];
            struct maildir_err e;
            if (!it->begun)
                continue;
            if (!ok || (!batch && maildir_sync_tmp(&it->tmp, &e) < 0))
                item_fail_io(it, "cannot flush the mailbox file");
        }
}

static void finish_all(struct local_job *j)
{
    for (struct local_dl *d = j->dls; d; d = d->next)
        for (size_t i = 0; i < d->nitems; i++) {
            struct local_item *it = &d->items[i];
            struct maildir_err e;
            if (!it->begun)
                continue;
            if (maildir_finish(&it->tmp, &e) < 0) {
                it->begun = 0;
                set_result(it->res, e.temporary ? RCPT_PENDING : RCPT_BOUNCED, e.dsn, e.text);
            } else {
                item_check_warning(it);
            }
        }
}

/* Was mailbox m finished by an item before `upto` in this job? */
static int mailbox_seen(struct local_job *j, const struct local_item *upto, const char *m)
{
    for (struct local_dl *d = j->dls; d; d = d->next)
        for (size_t i = 0; i < d->nitems; i++) {
            if (&d->items[i] == upto)
                return 0;
            if (d->items[i].begun && strcmp(d->items[i].mailbox, m) == 0)
                return 1;
        }
    return 0;
}

static void fail_mailbox(struct local_job *j, const char *m)
{
    for (struct local_dl *d = j->dls; d; d = d->next)
        for (size_t i = 0; i < d->nitems; i++) {
            struct local_item *it = &d->items[i];
            if (it->begun && strcmp(it->mailbox, m) == 0) {
                it->begun = 0;
                set_result(it->res, RCPT_PENDING, "4.3.0", "cannot flush the mailbox directory");
            }
        }
}

/* Without a syncfs: each mailbox's index records and new/ entries flushed
 * once, after all the renames of the job. */
static void flush_mailboxes(struct local_job *j)
{
    for (struct local_dl *d = j->dls; d; d = d->next)
        for (size_t i = 0; i < d->nitems; i++) {
            struct local_item *it = &d->items[i];
            char newdir[PATH_MAX];
            if (!it->begun || mailbox_seen(j, it, it->mailbox))
                continue;
            snprintf(newdir, sizeof newdir, "%s/new", it->mailbox);
            if (store_index_flush(it->mailbox) < 0 || fs_fsync_dir(newdir) < 0)
                fail_mailbox(j, it->mailbox);
        }
}

static void job_run(void *arg)
{
    struct local_job *j = arg;
    size_t items = 0;
    for (struct local_dl *d = j->dls; d; d = d->next)
        items += d->nitems;
    /* the same policy as queue commits (lib/fsutil.h) */
    j->whole_fs = j->la->batch && fs_batch_wants_syncfs(items);
    j->syncfs_fd = -1;
    write_all_tmp(j);
    sync_tmp(j);
    finish_all(j);
    if (!j->whole_fs)
        flush_mailboxes(j);
    int dirs_ok = 1;
    if (j->whole_fs && j->syncfs_fd >= 0)
        dirs_ok = syncfs(j->syncfs_fd) == 0;
    for (struct local_dl *d = j->dls; d; d = d->next)
        for (size_t i = 0; i < d->nitems; i++) {
            struct local_item *it = &d->items[i];
            if (!it->begun)
                continue;
            if (dirs_ok)
                set_result(it->res, RCPT_SENT, "2.0.0", "delivered to maildir");
            else
                set_result(it->res, RCPT_PENDING, "4.3.0", "cannot flush the mailbox directory");
        }
    if (j->syncfs_fd >= 0)
        close(j->syncfs_fd);
}

/* ------------------------------------------------------------ loop side */

static void start_jobs(struct local_agent *la);

static void dl_free(struct local_dl *d)
{
    for (size_t i = 0; i < d->nitems; i++) {
        free(d->items[i].prefix);
        free(d->items[i].mailbox);
        free(d->items[i].user);
    }
    free(d->items);
    free(d);
}

/* "12.3 MiB" style, for the warning's text. */
static void human_size(long long v, char *buf, size_t len)
{
    static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
    double x = (double)v;
    size_t u = 0;
    while (x >= 1024 && u + 1 < sizeof unit / sizeof unit[0]) {
        x /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lld bytes", v);
    else
        snprintf(buf, len, "%.1f %s", x, unit[u]);
}

/* RFC 5322 atext, plus '.' where a dot-atom may have it. */
static int is_atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* "local@domain" for a header: the local part quoted unless a dot-atom. */
static void header_address(const char *user, char *buf, size_t len)
{
    const char *at = strrchr(user, '@');
    size_t ll = at ? (size_t)(at - user) : strlen(user), o = 0;
    int atom = ll > 0 && user[0] != '.' && user[ll - 1] != '.';
    for (size_t i = 0; i < ll && atom; i++)
        atom = is_atext((unsigned char)user[i]) || (user[i] == '.' && user[i + 1] != '.');
    if (atom) {
        snprintf(buf, len, "%s", user);
        return;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < ll && o + 4 < len; i++) {
        if (user[i] == '"' || user[i] == '\\')
            buf[o++] = '\\';
        buf[o++] = user[i];
    }
    snprintf(buf + o, len - o, "\"%s", at ? at : "");
}

/* The warning mail (CRLF) for it into a malloc'd *out. */
static int warning_text(const struct local_item *it, char **out)
{
    char date[64], used[32], limit[32], to[2 * 320];
    const char *at = strrchr(it->user, '@');
    const char *domain = at ? at + 1 : it->user;
    long long pct = it->warn_usage / (it->quota / 100 > 0 ? it->quota / 100 : 1);
    if (it->quota < 100)
        pct = it->warn_usage * 100 / it->quota;
    time_rfc5322(time(NULL), date, sizeof date);
    human_size(it->warn_usage, used, sizeof used);
    human_size(it->quota, limit, sizeof limit);
    header_address(it->user, to, sizeof to);
    int n = asprintf(out,
        "From: Mail Delivery System <postmaster@%s>\r\n"
        "To: <%s>\r\n"
        "Subject: Mailbox quota warning: %lld%% full\r\n"
        "Date: %s\r\n"
        "Message-ID: <%lld.quota-warning.%s>\r\n"
        "Auto-Submitted: auto-generated\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "Your mailbox holds %s of its %s quota (%lld%%).\r\n"
        "\r\n"
        "When it is full, new mail for you is held and then returned to its\r\n"
        "senders.  Please delete messages you no longer need, and empty the\r\n"
        "Trash folder.\r\n", domain, to, pct, date, time_now_us(), domain,
        used, limit, pct);
    return n < 0 ? -1 : n;
}

/* On the loop, after the job: queue the warnings the pool found due. */
static void send_warnings(struct local_dl *d)
{
    for (size_t i = 0; i < d->nitems; i++) {
        struct local_item *it = &d->items[i];
        char *text = NULL;
        if (!it->warn || !it->user)
            continue;
        int n = warning_text(it, &text);
        if (n < 0 || sched_notice(d->dl->sched, it->user, text, (size_t)n) < 0)
            log_err("local: cannot queue the quota warning to <%s>", it->user);
        else
            log_info("local: quota warning to <%s>: %lld of %lld bytes", it->user,
                     it->warn_usage, it->quota);
        free(text);
    }
}

static void job_done(void *arg)
{
    struct local_job *j = arg;
    struct local_agent *la = j->la;
    struct local_dl *d = j->dls;
    while (d) {
        struct local_dl *next = d->next;
        send_warnings(d);
        sched_delivery_done(d->dl);
        dl_free(d);
        d = next;
    }
    free(j);
    la->jobs--;
    start_jobs(la);
}

static void start_jobs(struct local_agent *la)
{
    while (la->waiting && la->jobs < LOCAL_JOBS_MAX) {
        struct local_job *j = calloc(1, sizeof *j);
        if (!j)
            return;
        j->la = la;
        struct local_dl **tail = &j->dls;
        size_t n = 0;
        size_t max = la->batch ? LOCAL_BATCH_MAX : 1;
        while (la->waiting && n < max) {
            struct local_dl *d = la->waiting;
            la->waiting = d->next;
            d->next = NULL;
            *tail = d;
            tail = &d->next;
            n++;
            la->nwaiting--;
        }
        if (!la->waiting)
            la->waiting_tail = NULL;
        if (work_submit(la->pool, WORK_DELIVERY, job_run, job_done, j) < 0) {
            job_done(j);          /* results stay "deferred" */
            return;
        }
        la->jobs++;
    }
}

/* "local@domain" from a mailbox "domain/local" (store_mailbox_rel_ok). */
static int mailbox_user(struct local_item *it, const char *rel)
{
    const char *slash = strchr(rel, '/');
    if (asprintf(&it->user, "%s@%.*s", slash + 1, (int)(slash - rel), rel) < 0) {
        it->user = NULL;
        return -1;
    }
    return 0;
}

/* Mailbox of a final local recipient; 0, or -1 with res set. */
static int find_mailbox(struct local_agent *la, const char *addr, struct local_item *it)
{
    struct route_target *t = NULL;
    size_t n = 0;
    enum route_result rr = la->tables ? router_expand(&la->tables->rc, addr, &t, &n) : ROUTE_ERROR;
    int found = -1;
    for (size_t i = 0; rr == ROUTE_OK && i < n; i++) {
        if (t[i].kind == ROUTE_LOCAL) {
            if (!store_mailbox_rel_ok(t[i].mailbox)) {
                log_warn("local: refusing mailbox path %s for %s", t[i].mailbox, addr);
                break;                  /* unknown: never a path out of mail/ */
            }
            if (asprintf(&it->mailbox, "%s/%s", la->maildirs, t[i].mailbox) < 0) {
                it->mailbox = NULL;
                rr = ROUTE_ERROR;
                break;
            }
            it->quota = t[i].quota;
            it->quota_permanent = la->tables->quota_full_permanent;
            it->warn_percent = la->tables->quota_warning_percent;
            if (it->warn_percent > 0 && it->quota > 0 && mailbox_user(it, t[i].mailbox) < 0) {
                free(it->mailbox);      /* the slot is reused by the next recipient */
                it->mailbox = NULL;
                rr = ROUTE_ERROR;
                break;
            }
            found = 0;
            break;
        }
    }
    if (t)
        router_free_targets(t, n);
    if (found < 0) {
        if (rr == ROUTE_ERROR)
            set_result(it->res, RCPT_PENDING, "4.3.0", "temporary lookup failure");
        else
            set_result(it->res, RCPT_BOUNCED, "5.1.1", "user unknown");
    }
    return found;
}

static int make_prefix(struct local_item *it, const char *sender, const char *addr)
{
    int n = asprintf(&it->prefix, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", sender, addr);
    if (n < 0) {
        it->prefix = NULL;
        return -1;
    }
    it->prefix_len = (size_t)n;
    return 0;
}

void local_agent_deliver(void *ctx, struct sched_delivery *dl)
{
    struct local_agent *la = ctx;
    struct local_dl *d = calloc(1, sizeof *d);
    struct local_item *items = calloc(dl->n, sizeof *items);
    if (!d || !items) {
        free(d);
        free(items);
        sched_delivery_done(dl);      /* results stay "deferred" */
        return;
    }
    d->dl = dl;
    d->items = items;
    for (size_t k = 0; k < dl->n; k++) {
        struct local_item *it = &items[d->nitems];
        const char *addr = dl->env->rcpts[dl->idx[k]].addr;
        it->res = &dl->res[k];
        it->tmp.fd = -1;
        if (find_mailbox(la, addr, it) < 0)
            continue;
        if (make_prefix(it, dl->env->sender, addr) < 0) {
            set_result(it->res, RCPT_PENDING, "4.3.0", "out of memory");
            free(it->mailbox);          /* the slot is reused by the next recipient */
            it->mailbox = NULL;
            free(it->user);
            it->user = NULL;
            continue;
        }
        d->nitems++;
    }
    if (d->nitems == 0) {
        dl_free(d);
        sched_delivery_done(dl);
        return;
    }
    if (la->waiting_tail)
        la->waiting_tail->next = d;
    else
        la->waiting = d;
    la->waiting_tail = d;
    la->nwaiting++;
    start_jobs(la);
}

struct local_agent *local_agent_new(struct work_pool *pool, const char *state_dir, int batch)
{
    struct local_agent *la = calloc(1, sizeof *la);
    if (!la)
        return NULL;
    la->pool = pool;
    la->batch = batch;
    snprintf(la->maildirs, sizeof la->maildirs, "%s/mail", state_dir);
    return la;
}

void local_agent_set_tables(struct local_agent *la, const struct tables *t)
{
    la->tables = t;
}

void local_agent_free(struct local_agent *la)
{
    if (!la)
        return;
    while (la->waiting) {
        struct local_dl *d = la->waiting;
        la->waiting = d->next;
        dl_free(d);
    }
    free(la);
}
