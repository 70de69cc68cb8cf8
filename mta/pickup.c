/*
 * mta/pickup.c — queues the maildrop.  In the pool: list the maildrop,
 * read each finished file, check its header, and build the queue content
 * (a Received: line naming the submitting uid, then the message with CRLF
 * line ends).  On the loop: expand the recipients, commit through the
 * queue, and remove the maildrop file only once the commit is durable.
 * A file that cannot be parsed is moved to queue/corrupt/, never deleted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/addr.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/timeutil.h"
#include "lib/work.h"
#include "mta/daemon.h"
#include "mta/pickup.h"
#include "proto/local_headers.h"
#include "queue/maildrop.h"
#include "queue/queue.h"
#include "queue/scheduler.h"

#define PICKUP_INTERVAL   60                   /* seconds between scans */
#define PICKUP_BATCH      100                  /* files per scan job */
#define PICKUP_FILE_MAX   (1024LL * 1024 * 1024)
#define PICKUP_STALE_TMP  (24 * 3600)

struct pickup_msg {
    char name[NAME_MAX + 1];
    struct maildrop_hdr hdr;
    char *content;
    size_t len;
    uid_t uid;
    char id[QID_LEN + 1];
    char err[256];
    struct pickup_msg *next;
};

struct pickup_job {
    struct pickup *p;
    char dir[PATH_MAX];
    char corrupt[PATH_MAX];
    char host[256];
    struct pickup_msg *msgs;
};

struct pickup {
    struct hatod *d;
    struct event *timer;
    int running;
    int inflight;                /* commits not yet durable */
    int more;                    /* scan again when this one is done */
    int failed;                  /* files of the last scan not queued */
};

struct pickup_commit {
    struct pickup *p;
    uid_t uid;
    char path[PATH_MAX];
    struct envelope env;
};

/* ------------------------------------------------------------ worker side */

static int is_tmp_name(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".tmp");
}

/* Header-less content → CRLF content with a Received: line in front. */
/* Octets of the header section: up to and including the first empty line
 * (LF or CRLF), or all of it. */
static size_t header_len(const char *body, size_t blen)
{
    if (blen > 0 && (body[0] == '\n' || (blen > 1 && body[0] == '\r' && body[1] == '\n')))
        return 0;                          /* starts with the empty line: no header */
    for (size_t i = 0; i < blen; i++) {
        if (body[i] != '\n')
            continue;
        if (i + 1 < blen && body[i + 1] == '\n')
            return i + 2;
        if (i + 2 < blen && body[i + 1] == '\r' && body[i + 2] == '\n')
            return i + 3;
    }
    return blen;
}

static int build_content(struct pickup_job *j, struct pickup_msg *m, const char *body, size_t blen)
{
    char date[64], add[1024];
    time_t now = time(NULL);
    time_rfc5322(now, date, sizeof date);
    qid_new(m->id);
    /* like local SMTP submission: the fields the message lacks */
    int missing = local_headers_missing(body, header_len(body, blen));
    int alen = local_headers_format(missing, m->hdr.sender ? m->hdr.sender : "", m->id,
                                    j->host, now, add, sizeof add);
    char *out = NULL;
    size_t olen = 0;
    FILE *f = open_memstream(&out, &olen);
    if (!f)
        return -1;
    fprintf(f, "Received: by %s (hato, from userid %u)\r\n\tid %s; %s\r\n%s",
            j->host, (unsigned)m->uid, m->id, date, alen > 0 ? add : "");
    for (size_t i = 0; i < blen; i++) {
        if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r'))
            fputc('\r', f);
        fputc(body[i], f);
    }
    if (blen > 0 && body[blen - 1] != '\n')
        fputs("\r\n", f);
    if (fclose(f) != 0) {
        free(out);
        return -1;
    }
    m->content = out;
    m->len = olen;
    return 0;
}

/* The maildrop is world-writable and its values are %-decoded: every
 * address must be a plain mailbox (no CR, LF or other control octets that
 * would end up in Return-Path:, Delivered-To: or a DSN).  0, or -1 with
 * m->err set. */
static int check_addresses(struct pickup_msg *m)
{
    struct addr a;
    const char *sender = m->hdr.sender ? m->hdr.sender : "";
    if (*sender && addr_parse_mailbox(sender, strlen(sender), &a) != ADDR_OK) {
        snprintf(m->err, sizeof m->err, "bad sender address");
        return -1;
    }
    for (size_t i = 0; i < m->hdr.nrcpt; i++) {
        const char *r = m->hdr.rcpts[i];
        if (addr_parse_mailbox(r, strlen(r), &a) != ADDR_OK) {
            snprintf(m->err, sizeof m->err, "bad recipient address (#%zu)", i + 1);
            return -1;
        }
    }
    return 0;
}

static void read_one(struct pickup_job *j, struct pickup_msg *m)
{
    char path[PATH_MAX];
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", j->dir, m->name);
    if (stat(path, &st) < 0 || fs_read_file(path, PICKUP_FILE_MAX, &buf, &len) < 0) {
        snprintf(m->err, sizeof m->err, "cannot read: %s", strerror(errno));
        return;
    }
    m->uid = st.st_uid;
    if (maildrop_parse(buf, len, &m->hdr, m->err, sizeof m->err) < 0) {
        free(buf);
        if (!m->err[0])
            snprintf(m->err, sizeof m->err, "bad maildrop file");
        return;
    }
    if (check_addresses(m) < 0) {
        free(buf);
        return;
    }
    if (build_content(j, m, buf + m->hdr.body_offset, len - m->hdr.body_offset) < 0)
        snprintf(m->err, sizeof m->err, "out of memory");
    free(buf);
}

static void scan_run(void *arg)
{
    struct pickup_job *j = arg;
    DIR *dir = opendir(j->dir);
    if (!dir)
        return;
    struct dirent *de;
    int n = 0;
    struct pickup_msg **tail = &j->msgs;
    while ((de = readdir(dir)) && n < PICKUP_BATCH) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        if (is_tmp_name(de->d_name)) {
            if (fstatat(dirfd(dir), de->d_name, &st, 0) == 0 &&
                time(NULL) - st.st_mtime > PICKUP_STALE_TMP)
                unlinkat(dirfd(dir), de->d_name, 0);
            continue;
        }
        struct pickup_msg *m = calloc(1, sizeof *m);
        if (!m)
            break;
        snprintf(m->name, sizeof m->name, "%s", de->d_name);
        read_one(j, m);
        *tail = m;
        tail = &m->next;
        n++;
    }
    closedir(dir);
}

/* ------------------------------------------------------------ loop side */

static void msg_free(struct pickup_msg *m)
{
    maildrop_hdr_free(&m->hdr);
    free(m->content);
    free(m);
}

/* The last scan left files behind: scan again as soon as its commits are
 * durable (a file being committed must not be read twice), unless some
 * failed: then the timer retries, so a full disk does not spin. */
static void scan_more(struct pickup *p)
{
    if (p->inflight > 0 || p->running || !p->more)
        return;
    p->more = 0;
    if (!p->failed)
        pickup_scan(p);
}

static void committed(void *arg, int err)
{
    struct pickup_commit *pc = arg;
    struct pickup *p = pc->p;
    p->inflight--;
    if (err) {
        p->failed++;
        log_err("%s: pickup commit failed (kept in the maildrop): %s", pc->env.id, strerror(err));
    } else {
        log_info("%s: uid=%u from=<%s>, size=%lld, nrcpt=%zu (queue active)", pc->env.id,
                 (unsigned)pc->uid, pc->env.sender, pc->env.size, pc->env.nrcpt);
        sched_add(pc->p->d->sched, &pc->env);
        if (unlink(pc->path) < 0)
            log_err("%s: cannot remove %s: %s", pc->env.id, pc->path, strerror(errno));
    }
    env_clear(&pc->env);
    free(pc);
    scan_more(p);
}

static void move_corrupt(struct pickup_job *j, struct pickup_msg *m)
{
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof from, "%s/%s", j->dir, m->name);
    snprintf(to, sizeof to, "%s/maildrop-%s", j->corrupt, m->name);
    log_err("maildrop file %s: %s; moved to %s", m->name, m->err, to);
    if (rename(from, to) < 0)
        log_err("cannot move %s: %s", from, strerror(errno));
}

static int queue_one(struct pickup *p, struct pickup_job *j, struct pickup_msg *m)
{
    struct pickup_commit *pc = calloc(1, sizeof *pc);
    char client[64];
    if (!pc)
        return -1;
    pc->p = p;
    pc->uid = m->uid;
    snprintf(pc->path, sizeof pc->path, "%s/%s", j->dir, m->name);
    env_init(&pc->env);
    snprintf(client, sizeof client, "local uid=%u", (unsigned)m->uid);
    if (env_set_sender(&pc->env, m->hdr.sender ? m->hdr.sender : "") < 0 ||
        env_set_client(&pc->env, client, "-", "local") < 0)
        goto fail;
    for (size_t i = 0; i < m->hdr.nrcpt; i++)
        if (daemon_add_rcpt_or_bounce(p->d, &pc->env, m->hdr.rcpts[i]) < 0)
            goto fail;
    memcpy(pc->env.id, m->id, sizeof pc->env.id);
    pc->env.arrival_us = time_now_us();
    if (queue_inject(p->d->queue, m->content, m->len, &pc->env, committed, pc) == 0) {
        p->inflight++;
        return 0;
    }
fail:
    env_clear(&pc->env);
    free(pc);
    return -1;
}

static void scan_done(void *arg)
{
    struct pickup_job *j = arg;
    struct pickup *p = j->p;
    struct pickup_msg *m = j->msgs;
    int full = 0;
    while (m) {
        struct pickup_msg *next = m->next;
        full++;
        if (m->err[0]) {
            move_corrupt(j, m);
        } else if (queue_one(p, j, m) < 0) {
            p->failed++;
            log_err("maildrop file %s: cannot queue it now; will retry", m->name);
        }
        msg_free(m);
        m = next;
    }
    free(j);
    p->running = 0;
    if (full >= PICKUP_BATCH)
        p->more = 1;                         /* more files wait */
    scan_more(p);
}

void pickup_scan(struct pickup *p)
{
    if (!p)
        return;
    if (p->running || p->inflight > 0) {
        p->more = 1;     /* after this scan: a file being committed must not be read twice */
        return;
    }
    p->failed = 0;
    struct pickup_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->p = p;
    snprintf(j->dir, sizeof j->dir, "%s/maildrop", p->d->cfg.state_directory);
    snprintf(j->corrupt, sizeof j->corrupt, "%s/corrupt", queue_dir(p->d->queue));
    snprintf(j->host, sizeof j->host, "%s", p->d->cfg.myhostname);
    if (work_submit(p->d->pool, WORK_SCAN, scan_run, scan_done, j) < 0) {
        free(j);
        return;
    }
    p->running = 1;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    pickup_scan(arg);
}

struct pickup *pickup_new(struct hatod *d)
{
    struct pickup *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->d = d;
    p->timer = event_new(d->base, -1, EV_PERSIST, on_timer, p);
    struct timeval tv = { PICKUP_INTERVAL, 0 };
    if (!p->timer || event_add(p->timer, &tv) < 0) {
        pickup_free(p);
        return NULL;
    }
    pickup_scan(p);
    return p;
}

void pickup_free(struct pickup *p)
{
    if (!p)
        return;
    if (p->timer)
        event_free(p->timer);
    free(p);
}
