/*
 * tools/ctlclient.c — the client side of the control socket for hatoctl and
 * hato-sendmail: a non-blocking UNIX-socket connection whose every wait is a
 * poll() bounded by a timeout, a small line reader for "OK"/"ERR" and SMTP
 * replies, and the mailq listing with its fallback of reading the queue
 * directory itself when hatod is not running.
 * Never used inside hatod; it may block (it is a command-line tool).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "mta/config.h"
#include "mta/control.h"
#include "queue/envelope.h"
#include "queue/listing.h"
#include "queue/qid.h"
#include "tools/ctlclient.h"

#define CTL_ENV_MAX   (64 * 1024 * 1024)   /* largest envelope file read */
#define CTL_ITEMS_MAX 10000000             /* queue entries listed offline */

/* Wait until fd is ready for `events`; 0, or -1 with errno (ETIMEDOUT). */
static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int r;

    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    if (r == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    return 0;
}

static int socket_path(const struct hato_config *cfg, struct sockaddr_un *sun,
                       char *err, size_t errlen)
{
    char path[PATH_MAX];

    config_path(cfg, CONTROL_SOCKET_NAME, path, sizeof(path));
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path)) {
        snprintf(err, errlen, "%s: control socket path too long", path);
        return -1;
    }
    memcpy(sun->sun_path, path, strlen(path) + 1);
    return 0;
}

int ctl_open(struct ctl_conn *c, const struct hato_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct timeval tv = { .tv_sec = CTL_TIMEOUT_MS / 1000 };
    int fd, e;

    c->fd = -1;
    c->off = c->len = 0;
    c->timeout_ms = CTL_TIMEOUT_MS;
    if (socket_path(cfg, &sun, err, errlen) < 0)
        return CTL_FAIL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return CTL_FAIL;
    }
    /* A blocking connect bounded by SO_SNDTIMEO: a UNIX-socket connect only
     * waits when the listen backlog is full. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        e = errno;
        close(fd);
        snprintf(err, errlen, "%s: %s", sun.sun_path, strerror(e));
        return (e == ENOENT || e == ECONNREFUSED) ? CTL_DOWN : CTL_FAIL;
    }
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        snprintf(err, errlen, "fcntl: %s", strerror(errno));
        close(fd);
        return CTL_FAIL;
    }
    c->fd = fd;
    return CTL_OK;
}

void ctl_close(struct ctl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->off = c->len = 0;
}

int ctl_write(struct ctl_conn *c, const void *buf, size_t len, char *err, size_t errlen)
{
    const char *p = buf;
    ssize_t n;

    while (len > 0) {
        n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_fd(c->fd, POLLOUT, c->timeout_ms) == 0)
            continue;
        snprintf(err, errlen, "control socket write: %s",
                 n == 0 ? "no progress" : strerror(errno));
        return -1;
    }
    return 0;
}

/* Refill the buffer: 1 if bytes arrived, 0 on EOF, -1 + err. */
static int fill(struct ctl_conn *c, char *err, size_t errlen)
{
    ssize_t n;

    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    for (;;) {
        n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n > 0) {
            c->len += (size_t)n;
            return 1;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_fd(c->fd, POLLIN, c->timeout_ms) == 0)
            continue;
        snprintf(err, errlen, "control socket read: %s", strerror(errno));
        return -1;
    }
}

int ctl_read_line(struct ctl_conn *c, char *line, size_t len, char *err, size_t errlen)
{
    char *nl;
    size_t n;
    int r;

    for (;;) {
        nl = memchr(c->buf + c->off, '\n', c->len - c->off);
        if (nl)
            break;
        if (c->len - c->off >= len || c->len - c->off >= sizeof(c->buf)) {
            snprintf(err, errlen, "control socket: reply line too long");
            return -1;
        }
        r = fill(c, err, errlen);
        if (r < 0)
            return -1;
        if (r == 0) {
            snprintf(err, errlen, "control socket: connection closed by hatod");
            return -1;
        }
    }
    n = (size_t)(nl - (c->buf + c->off));
    if (n >= len) {
        snprintf(err, errlen, "control socket: reply line too long");
        return -1;
    }
    memcpy(line, c->buf + c->off, n);
    c->off += n + 1;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return 0;
}

int ctl_copy_rest(struct ctl_conn *c, FILE *out, char *err, size_t errlen)
{
    int r;

    for (;;) {
        if (c->len > c->off &&
            fwrite(c->buf + c->off, 1, c->len - c->off, out) != c->len - c->off) {
            snprintf(err, errlen, "write: %s", strerror(errno));
            return -1;
        }
        c->off = c->len = 0;
        r = fill(c, err, errlen);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
    }
    if (fflush(out) != 0) {
        snprintf(err, errlen, "write: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int ctl_command(const struct hato_config *cfg, const char *cmd, FILE *out,
                char *err, size_t errlen)
{
    struct ctl_conn c;
    char line[CTL_LINE_MAX];
    int r;

    if (strlen(cmd) + 1 > CONTROL_LINE_MAX || strchr(cmd, '\n')) {
        snprintf(err, errlen, "control command too long");
        return CTL_FAIL;
    }
    r = ctl_open(&c, cfg, err, errlen);
    if (r != CTL_OK)
        return r;
    r = CTL_FAIL;
    if (ctl_write(&c, cmd, strlen(cmd), err, errlen) < 0 ||
        ctl_write(&c, "\n", 1, err, errlen) < 0 ||
        ctl_read_line(&c, line, sizeof(line), err, errlen) < 0)
        goto done;
    if (strcmp(line, "OK") == 0) {
        r = CTL_OK;
        if (out && ctl_copy_rest(&c, out, err, errlen) < 0)
            r = CTL_FAIL;
    } else if (strncmp(line, "ERR", 3) == 0 && (line[3] == ' ' || line[3] == '\0')) {
        snprintf(err, errlen, "%s", line[3] ? line + 4 : "refused");
        r = CTL_ERR;
    } else {
        snprintf(err, errlen, "control socket: unexpected reply \"%.100s\"", line);
    }
done:
    ctl_close(&c);
    return r;
}

/* ---- offline listing ---------------------------------------------------- */

struct qlist {
    struct envelope *envs;
    int *held;
    size_t n, cap;
};

static int qlist_grow(struct qlist *q)
{
    size_t cap = q->cap ? q->cap * 2 : 64;
    struct envelope *e;
    int *h;

    if (q->n >= CTL_ITEMS_MAX)
        return -1;
    e = realloc(q->envs, cap * sizeof(*e));
    if (!e)
        return -1;
    q->envs = e;
    h = realloc(q->held, cap * sizeof(*h));
    if (!h)
        return -1;
    q->held = h;
    q->cap = cap;
    return 0;
}

static void qlist_free(struct qlist *q)
{
    for (size_t i = 0; i < q->n; i++)
        env_clear(&q->envs[i]);
    free(q->envs);
    free(q->held);
}

/* Load one envelope file; an unreadable or torn one is reported on stderr
 * and skipped (hatod moves it to corrupt/ when it starts). 0, or -1 ENOMEM. */
static int load_one(struct qlist *q, const char *dir, const char *name, int held)
{
    char path[PATH_MAX], perr[256];
    char *buf;
    size_t len;
    struct envelope *e;

    if (q->n == q->cap && qlist_grow(q) < 0)
        return -1;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return 0;
    if (fs_read_file(path, CTL_ENV_MAX, &buf, &len) < 0) {
        if (errno != ENOENT)   /* delivered meanwhile: not an error */
            fprintf(stderr, "warning: %s: %s\n", path, strerror(errno));
        return 0;
    }
    e = &q->envs[q->n];
    env_init(e);
    if (env_parse(buf, len, e, perr, sizeof(perr)) < 0) {
        fprintf(stderr, "warning: %s: %s\n", path, perr);
        free(buf);
        return 0;
    }
    free(buf);
    q->held[q->n++] = held;
    return 0;
}

/* Every envelope in queue_dir/sub.  A missing directory is empty. */
static int load_dir(struct qlist *q, const char *queue_dir, const char *sub, int held,
                    char *err, size_t errlen)
{
    char dir[PATH_MAX];
    DIR *d;
    struct dirent *de;
    int r = 0;

    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", queue_dir, sub) >= sizeof(dir)) {
        snprintf(err, errlen, "%s: path too long", queue_dir);
        return -1;
    }
    d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (!qid_valid(de->d_name))
            continue;
        if (load_one(q, dir, de->d_name, held) < 0) {
            snprintf(err, errlen, "%s: out of memory", dir);
            r = -1;
            break;
        }
    }
    closedir(d);
    return r;
}

static int item_cmp(const void *a, const void *b)
{
    const struct queue_item *x = a, *y = b;

    return strcmp(x->env->id, y->env->id);
}

int ctl_queue_list_dir(const char *queue_dir, int json, FILE *out,
                       char *err, size_t errlen)
{
    struct qlist q = { 0 };
    struct queue_item *items = NULL;
    int r = -1;

    if (load_dir(&q, queue_dir, "env", 0, err, errlen) < 0 ||
        load_dir(&q, queue_dir, "hold", 1, err, errlen) < 0)
        goto done;
    items = calloc(q.n ? q.n : 1, sizeof(*items));
    if (!items) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < q.n; i++) {
        items[i].env = &q.envs[i];
        items[i].held = q.held[i];
    }
    qsort(items, q.n, sizeof(*items), item_cmp);
    r = json ? queue_listing_json(out, items, q.n) : queue_listing_text(out, items, q.n);
    if (r == 0 && fflush(out) != 0)
        r = -1;
    if (r < 0)
        snprintf(err, errlen, "write: %s", strerror(errno));
done:
    free(items);
    qlist_free(&q);
    return r < 0 ? -1 : 0;
}

int ctl_queue_list(const struct hato_config *cfg, int json, FILE *out,
                   char *err, size_t errlen)
{
    char qdir[PATH_MAX];
    int r;

    r = ctl_command(cfg, json ? "QUEUE LIST JSON" : "QUEUE LIST", out, err, errlen);
    if (r == CTL_OK)
        return 0;
    if (r != CTL_DOWN)
        return -1;
    config_path(cfg, "queue", qdir, sizeof(qdir));
    return ctl_queue_list_dir(qdir, json, out, err, errlen);
}
