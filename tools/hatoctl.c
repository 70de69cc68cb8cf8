/*
 * tools/hatoctl.c — `hatoctl [-f CONF] COMMAND ...`: edit the user table and
 * the alias file (atomically, through auth/users and mta/aliases; concurrent
 * hatoctl edits serialized by a flock on the file's directory), then ask
 * hatod to reload; list the queue; flush it; reload; check the tables.
 * After an edit, and on `check`, it warns when postmaster would reach
 * nobody (no alias, no user, no postmaster_recipient).  One table of commands,
 * one function per command.  The daemon not running is not an error for a
 * file edit (the file is what counts); it is for reload and flush.
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth/sasl.h"
#include "auth/users.h"
#include "lib/addr.h"
#include "lib/base64.h"
#include "lib/conf.h"
#include "lib/fsutil.h"
#include "mta/aliases.h"
#include "mta/config.h"
#include "mta/tables.h"
#include "queue/qid.h"
#include "store/maildir.h"
#include "store/path.h"
#include "tools/ctlclient.h"
#include "tools/hatoctl_tls.h"

#define PROG "hatoctl"
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_DOWN 75       /* hatod unreachable (EX_TEMPFAIL) */
#define SECRETS_MAX 1024   /* the " key=value" secrets of one users_file line */
#define ERR_MAX 1024
#define PASSWORD_MAX 1024        /* octets of a password read from stdin */
#define ALIAS_TARGETS_MAX 1000   /* targets given to one `alias add` */
#define LOCK_WAIT_MS 30000       /* longest wait for another hatoctl's edit */
#define LOCK_POLL_MS 10

typedef int (*cmd_fn)(const struct hato_config *cfg, int argc, char **argv);

struct command {
    const char *noun, *verb;     /* verb NULL: a one-word command */
    cmd_fn fn;
    const char *usage;
};

static void usage(FILE *out);

static void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errmsg(const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static int is_local_domain(const struct hato_config *cfg, const char *domain)
{
    for (size_t i = 0; i < cfg->nlocal_domains; i++)
        if (strcasecmp(cfg->local_domains[i], domain) == 0)
            return 1;
    return 0;
}

/* Table edits are read-modify-write (tmp + rename): two hatoctl runs at
 * once would each write back the file they read, and one edit would be
 * lost.  They are serialized by an exclusive flock(2) on the directory
 * holding the file (no lock file to leave behind; the file itself is
 * replaced by every edit, so a lock on it would not hold).  Returns the
 * fd to close when done, or -1 after a message. */
static int edit_lock(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct timespec pause = { 0, LOCK_POLL_MS * 1000000L };
    int fd, waited = 0;

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    else {
        errmsg("%s: path too long", path);
        return -1;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        errmsg("%s: %s", dir, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            errmsg("cannot lock %s: %s", dir, strerror(errno));
            close(fd);
            return -1;
        }
        if (waited >= LOCK_WAIT_MS) {
            errmsg("%s: another edit holds the lock on %s", path, dir);
            close(fd);
            return -1;
        }
        (void)nanosleep(&pause, NULL);
        waited += LOCK_POLL_MS;
    }
    return fd;
}

static void edit_unlock(int fd)
{
    if (fd >= 0)
        close(fd);   /* releases the flock */
}

/* Read the tables as hatod would and warn when postmaster reaches nobody
 * (RFC 5321 §4.5.1).  0 if the tables load (warning or not), -1 if not. */
static int warn_postmaster(const struct hato_config *cfg, int quiet_load_error)
{
    char err[ERR_MAX];
    struct tables *t = tables_load(cfg, err, sizeof(err));

    if (!t) {
        if (!quiet_load_error)
            errmsg("%s", err);
        return -1;
    }
    if (tables_check_postmaster(t, err, sizeof(err)) < 0)
        errmsg("warning: %s", err);
    tables_free(t);
    return 0;
}

/* After a table edit: warn about postmaster, ask hatod to reload.  Not
 * running is fine. */
static int reload_after_edit(const struct hato_config *cfg)
{
    char err[ERR_MAX];

    (void)warn_postmaster(cfg, 1);
    switch (ctl_command(cfg, "RELOAD", NULL, err, sizeof(err))) {
    case CTL_OK:
        return EXIT_OK;
    case CTL_DOWN:
        errmsg("hatod is not running; the change takes effect when it starts");
        return EXIT_OK;
    default:
        errmsg("file updated, but reload failed: %s", err);
        return EXIT_FAIL;
    }
}

/* ---- users ---------------------------------------------------------------- */

/* A mailbox for users_file: valid, unquoted, in a local domain; lower-cased
 * into out (ADDR_BUF). */
static int user_address(const struct hato_config *cfg, const char *arg, char *out)
{
    struct addr a;
    enum addr_err e = addr_parse_mailbox(arg, strlen(arg), &a);

    if (e != ADDR_OK) {
        errmsg("%s: %s", arg, addr_strerror(e));
        return -1;
    }
    if (a.local[0] == '"') {
        errmsg("%s: quoted local parts are not supported in users_file", arg);
        return -1;
    }
    if (!is_local_domain(cfg, a.domain)) {
        errmsg("%s: %s is not in local_domains", arg, a.domain);
        return -1;
    }
    snprintf(out, ADDR_BUF, "%s", a.full);
    lower(out);
    return 0;
}

static void echo_off(int off, struct termios *saved)
{
    struct termios t;

    if (off) {
        if (tcgetattr(STDIN_FILENO, saved) < 0)
            return;
        t = *saved;
        t.c_lflag &= ~(tcflag_t)ECHO;
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
    } else {
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, saved);
        fputc('\n', stderr);
    }
}

/* One line from stdin (prompted, without echo, on a terminal, unless
 * no_prompt: --password-stdin).  0 or -1. */
static int read_password(char *pw, size_t len, int no_prompt)
{
    int tty = !no_prompt && isatty(STDIN_FILENO);
    struct termios saved;
    size_t n;
    char *r;

    if (tty) {
        fputs("Password: ", stderr);
        echo_off(1, &saved);
    }
    r = fgets(pw, (int)len, stdin);
    if (tty)
        echo_off(0, &saved);
    if (!r) {
        errmsg("no password on standard input");
        return -1;
    }
    n = strlen(pw);
    if (n == len - 1 && pw[n - 1] != '\n') {
        errmsg("password too long (max %d octets)", PASSWORD_MAX - 2);
        return -1;
    }
    while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
        pw[--n] = '\0';
    if (n == 0) {
        errmsg("empty password");
        return -1;
    }
    return 0;
}

/* yescrypt hash of pw into a malloc'd string, or NULL. */
static char *hash_password(const char *pw)
{
    char *salt, *h, *out = NULL;
    void *data = NULL;
    int size = 0;

    salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
    if (!salt) {
        errmsg("crypt_gensalt: %s", strerror(errno));
        return NULL;
    }
    h = crypt_ra(pw, salt, &data, &size);
    if (!h || h[0] == '*')
        errmsg("crypt: %s", strerror(errno ? errno : EINVAL));
    else if (!(out = strdup(h)))
        errmsg("out of memory");
    if (data) {
        explicit_bzero(data, (size_t)size);
        free(data);
    }
    free(salt);
    return out;
}

/* Password options shared by `user add` and `user passwd`. */
struct pw_opts {
    int want_pw, no_prompt, cram, scram, apop;
};

/* 1 if argv[i] was a password option, else 0. */
static int pw_option(const char *arg, struct pw_opts *o)
{
    if (strcmp(arg, "--password") == 0)
        o->want_pw = 1;
    else if (strcmp(arg, "--password-stdin") == 0)
        o->want_pw = o->no_prompt = 1;
    else if (strcmp(arg, "--with-cram") == 0)
        o->cram = 1;
    else if (strcmp(arg, "--with-scram") == 0)
        o->scram = 1;
    else if (strcmp(arg, "--with-apop") == 0)
        o->apop = 1;
    else
        return 0;
    return 1;
}

/* The end of a users_file edit made under the edit lock: unlock, wipe the
 * secrets, say what failed, or reload. */
static int finish_user_edit(const struct hato_config *cfg, int lk, int r, const char *err,
                            char *hash, char *secrets)
{
    edit_unlock(lk);
    explicit_bzero(secrets, SECRETS_MAX);
    free(hash);
    if (lk < 0)
        return EXIT_FAIL;
    if (r < 0) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    return reload_after_edit(cfg);
}

/* The password's crypt hash and, as asked, its cram-md5= / scram-sha-256=
 * options (" key=value ...") into secrets (SECRETS_MAX).  The password is
 * wiped.  0 or -1 after a message. */
static int make_credentials(const struct pw_opts *o, char **hash, char *secrets)
{
    char pw[PASSWORD_MAX], cram[65], scram[256], apop[B64_ENCODED_SIZE(USERS_APOP_MAX)];
    int r = read_password(pw, sizeof(pw), o->no_prompt);

    secrets[0] = '\0';
    cram[0] = scram[0] = apop[0] = '\0';
    if (r == 0 && (*hash = hash_password(pw)) == NULL)
        r = -1;
    if (r == 0 && o->cram && sasl_cram_secret(pw, cram) != 0) {
        errmsg("cannot derive the CRAM-MD5 secret");
        r = -1;
    }
    if (r == 0 && o->scram && sasl_scram_secret(pw, SASL_SCRAM_ITER, scram, sizeof(scram)) != 0) {
        errmsg("cannot derive the SCRAM-SHA-256 secret");
        r = -1;
    }
    /* APOP needs the password itself (auth/apop.h): base64, so any octet fits */
    if (r == 0 && o->apop && (strlen(pw) > USERS_APOP_MAX || !pw[0])) {
        errmsg("--with-apop: the password must be 1..%d octets", USERS_APOP_MAX);
        r = -1;
    }
    if (r == 0 && o->apop)
        b64_encode((const unsigned char *)pw, strlen(pw), apop);
    if (r == 0)
        snprintf(secrets, SECRETS_MAX, "%s%s%s%s%s%s", o->cram ? " cram-md5=" : "", cram,
                 o->scram ? " scram-sha-256=" : "", scram, o->apop ? " apop=" : "", apop);
    explicit_bzero(apop, sizeof(apop));
    explicit_bzero(pw, sizeof(pw));
    explicit_bzero(cram, sizeof(cram));
    explicit_bzero(scram, sizeof(scram));
    if (r != 0) {
        free(*hash);
        *hash = NULL;
    }
    return r;
}

static int user_add(const struct hato_config *cfg, int argc, char **argv)
{
    char addr[ADDR_BUF], err[ERR_MAX], secrets[SECRETS_MAX] = "";
    const char *who = NULL, *qarg = NULL;
    char *hash = NULL;
    long long quota = 0;
    struct pw_opts o = { 0, 0, 0, 0, 0 };
    int r, lk;

    for (int i = 0; i < argc; i++) {
        if (pw_option(argv[i], &o))
            continue;
        else if (strcmp(argv[i], "--quota") == 0 && i + 1 < argc)
            qarg = argv[++i];
        else if (strncmp(argv[i], "--quota=", 8) == 0)
            qarg = argv[i] + 8;
        else if (argv[i][0] != '-' && !who)
            who = argv[i];
        else
            return -EXIT_USAGE;
    }
    if (!who || ((o.cram || o.scram || o.apop) && !o.want_pw))
        return -EXIT_USAGE;
    if (qarg && conf_parse_size(qarg, &quota) < 0) {
        errmsg("bad quota '%s' (want a size: 100M, 2G, 512K, bytes)", qarg);
        return EXIT_FAIL;
    }
    if (user_address(cfg, who, addr) < 0)
        return EXIT_FAIL;
    if (o.want_pw && make_credentials(&o, &hash, secrets) < 0)
        return EXIT_FAIL;
    lk = edit_lock(cfg->users_file);
    r = lk < 0 ? -1 : users_file_add(cfg->users_file, addr, hash ? hash : "*", quota,
                                     err, sizeof(err));
    /* the secrets go onto the new line under the same lock */
    if (r == 0 && secrets[0])
        r = users_file_passwd(cfg->users_file, addr, hash, secrets, err, sizeof(err));
    return finish_user_edit(cfg, lk, r, err, hash, secrets);
}

/* user passwd ADDRESS [--with-cram] [--with-scram] [--with-apop] [--password-stdin]:
 * a new hash, and the secrets asked for (the old ones are dropped). */
static int user_passwd(const struct hato_config *cfg, int argc, char **argv)
{
    char addr[ADDR_BUF], err[ERR_MAX], secrets[SECRETS_MAX];
    struct pw_opts o = { 1, 0, 0, 0, 0 };
    const char *who = NULL;
    char *hash = NULL;
    int r, lk;

    for (int i = 0; i < argc; i++) {
        if (pw_option(argv[i], &o))
            continue;
        if (argv[i][0] == '-' || who)
            return -EXIT_USAGE;
        who = argv[i];
    }
    if (!who)
        return -EXIT_USAGE;
    if (user_address(cfg, who, addr) < 0 || make_credentials(&o, &hash, secrets) < 0)
        return EXIT_FAIL;
    lk = edit_lock(cfg->users_file);
    r = lk < 0 ? -1 : users_file_passwd(cfg->users_file, addr, hash, secrets, err, sizeof(err));
    return finish_user_edit(cfg, lk, r, err, hash, secrets);
}

static int user_del(const struct hato_config *cfg, int argc, char **argv)
{
    char addr[ADDR_BUF], err[ERR_MAX];
    int lk, r;

    if (argc != 1 || argv[0][0] == '-')
        return -EXIT_USAGE;
    if (strlen(argv[0]) >= sizeof(addr)) {
        errmsg("%s: address too long", argv[0]);
        return EXIT_FAIL;
    }
    snprintf(addr, sizeof(addr), "%s", argv[0]);
    lower(addr);
    if ((lk = edit_lock(cfg->users_file)) < 0)
        return EXIT_FAIL;
    r = users_file_del(cfg->users_file, addr, err, sizeof(err));
    edit_unlock(lk);
    if (r < 0) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    return reload_after_edit(cfg);
}

/* A size the way a person would write it back into the file. */
static void format_size(long long v, char *buf, size_t len)
{
    static const char units[] = "GMK";
    static const long long mult[] = { 1LL << 30, 1LL << 20, 1LL << 10 };

    if (v <= 0) {
        snprintf(buf, len, "unlimited");
        return;
    }
    for (size_t i = 0; i < 3; i++)
        if (v % mult[i] == 0) {
            snprintf(buf, len, "%lld%c", v / mult[i], units[i]);
            return;
        }
    snprintf(buf, len, "%lld", v);
}

static int user_list(const struct hato_config *cfg, int argc, char **argv)
{
    char err[ERR_MAX], q[32];
    struct usertab *t;
    const struct user *u;

    if (argc != 0)
        return -EXIT_USAGE;
    t = users_load(cfg->users_file, err, sizeof(err));
    if (!t) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    for (size_t i = 0; i < users_count(t); i++) {
        u = users_at(t, i);
        format_size(u->quota, q, sizeof(q));
        printf("%s %s\n", u->address, q);
    }
    users_free(t);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ---- quota ---------------------------------------------------------------- */

struct quota_row {
    const char *addr;
    long long usage, limit;      /* bytes; limit 0 = unlimited */
};

static int quota_row_cmp(const void *a, const void *b)
{
    const struct quota_row *x = a, *y = b;

    if (x->usage != y->usage)
        return x->usage < y->usage ? 1 : -1;      /* biggest first */
    return strcmp(x->addr, y->addr);
}

/* Usage of one user's Maildir (read only); 0, or -1 with a message. */
static int quota_usage(const struct hato_config *cfg, const char *addr, long long *usage)
{
    char rel[2 * ADDR_BUF], path[PATH_MAX + 2 * ADDR_BUF], local[ADDR_BUF];
    const char *at = strrchr(addr, '@');

    if (at == NULL || (size_t)(at - addr) >= sizeof(local)) {
        errmsg("%s: not an address", addr);
        return -1;
    }
    memcpy(local, addr, (size_t)(at - addr));
    local[at - addr] = '\0';
    if (store_mailbox_rel(rel, sizeof(rel), at + 1, local) != 0) {
        errmsg("%s: no mailbox path for it", addr);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/mail/%s", cfg->state_directory, rel);
    *usage = maildir_usage_peek(path);
    if (*usage < 0) {
        errmsg("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void quota_print(const struct quota_row *v, size_t n, int json)
{
    char us[32], ls[32];

    if (json)
        printf("[");
    else
        printf("%-40s %10s %10s %7s\n", "user", "usage", "limit", "percent");
    for (size_t i = 0; i < n; i++) {
        double pct = v[i].limit > 0 ? 100.0 * (double)v[i].usage / (double)v[i].limit : 0;
        if (json) {
            printf("%s{\"user\":", i ? "," : "");
            json_str(v[i].addr);
            printf(",\"usage\":%lld,\"limit\":", v[i].usage);
            if (v[i].limit > 0)
                printf("%lld,\"percent\":%.1f}", v[i].limit, pct);
            else
                printf("null,\"percent\":null}");
            continue;
        }
        format_size(v[i].usage, us, sizeof(us));
        if (v[i].usage == 0)
            snprintf(us, sizeof(us), "0");
        format_size(v[i].limit, ls, sizeof(ls));
        if (v[i].limit > 0)
            printf("%-40s %10s %10s %6.1f%%\n", v[i].addr, us, ls, pct);
        else
            printf("%-40s %10s %10s %7s\n", v[i].addr, us, "unlimited", "-");
    }
    if (json)
        printf("]\n");
}

/* quota show [ADDRESS|--all] [--sort usage] [--json] */
static int quota_show(const struct hato_config *cfg, int argc, char **argv)
{
    const char *only = NULL;
    int json = 0, sort = 0, rc = EXIT_OK;
    char err[ERR_MAX];

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--all") == 0 && only == NULL)
            continue;
        else if (strcmp(argv[i], "--sort") == 0 && i + 1 < argc
                 && strcmp(argv[i + 1], "usage") == 0)
            sort = 1, i++;
        else if (argv[i][0] != '-' && only == NULL)
            only = argv[i];
        else
            return -EXIT_USAGE;
    }
    struct usertab *t = users_load(cfg->users_file, err, sizeof(err));
    if (!t) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    struct quota_row *v = calloc(users_count(t) + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; v != NULL && i < users_count(t); i++) {
        const struct user *u = users_at(t, i);
        if (only != NULL && strcasecmp(only, u->address) != 0)
            continue;
        v[n].addr = u->address;
        v[n].limit = u->quota > 0 ? u->quota : u->quota < 0 ? 0 : cfg->default_quota;
        if (quota_usage(cfg, u->address, &v[n].usage) != 0)
            rc = EXIT_FAIL;
        else
            n++;
    }
    if (v == NULL) {
        errmsg("out of memory");
        rc = EXIT_FAIL;
    } else if (only != NULL && n == 0 && rc == EXIT_OK) {
        errmsg("%s: no such user in %s", only, cfg->users_file);
        rc = EXIT_FAIL;
    } else {
        if (sort)
            qsort(v, n, sizeof(*v), quota_row_cmp);
        quota_print(v, n, json);
    }
    free(v);
    users_free(t);
    return fflush(stdout) == 0 ? rc : EXIT_FAIL;
}

/* One quota= change: the address (lower case) and the bytes,
 * USERS_QUOTA_UNLIMITED, or 0 for "default" (the option dropped). */
struct quota_change {
    char addr[ADDR_BUF];
    long long quota;
};

#define QUOTA_FILE_MAX (16 * 1024 * 1024)   /* a --from-file list */

/* SIZE|unlimited|default → *q.  0, or -1 (told, after `where`). */
static int quota_arg(const char *s, long long *q, const char *where)
{
    *q = 0;
    if (strcmp(s, "unlimited") == 0)
        *q = USERS_QUOTA_UNLIMITED;
    else if (strcmp(s, "default") != 0 && (conf_parse_size(s, q) < 0 || *q <= 0)) {
        errmsg("%sbad quota '%s' (want a size: 100M, 2G, 512K, bytes; unlimited; default)",
               where, s);
        return -1;
    }
    return 0;
}

/* Add a change for addr (checked against users: a known user, not twice). */
static int quota_add(struct quota_change *v, size_t *n, const struct usertab *t,
                     const char *addr, size_t alen, long long q, const char *where)
{
    if (alen >= sizeof(v[0].addr)) {
        errmsg("%s%.*s: address too long", where, (int)alen, addr);
        return -1;
    }
    snprintf(v[*n].addr, sizeof(v[*n].addr), "%.*s", (int)alen, addr);
    lower(v[*n].addr);
    if (users_find(t, v[*n].addr) == NULL) {
        errmsg("%s%s: no such user", where, v[*n].addr);
        return -1;
    }
    for (size_t i = 0; i < *n; i++)
        if (strcmp(v[i].addr, v[*n].addr) == 0) {
            errmsg("%s%s: given twice", where, v[*n].addr);
            return -1;
        }
    v[(*n)++].quota = q;
    return 0;
}

/* One line "address size" of a --from-file list (# comments, blank lines). */
static int quota_line(struct quota_change *v, size_t *n, const struct usertab *t,
                      const char *path, size_t lineno, char *line)
{
    char where[64 + PATH_MAX], *save = NULL;
    char *addr = strtok_r(line, " \t\r", &save), *size, *extra;
    long long q;

    snprintf(where, sizeof(where), "%s:%zu: ", path, lineno);
    if (addr == NULL || addr[0] == '#')
        return 0;
    size = strtok_r(NULL, " \t\r", &save);
    extra = strtok_r(NULL, " \t\r", &save);
    if (size == NULL || (extra != NULL && extra[0] != '#')) {
        errmsg("%swant \"address size\"", where);
        return -1;
    }
    if (quota_arg(size, &q, where) < 0)
        return -1;
    return quota_add(v, n, t, addr, strlen(addr), q, where);
}

/* The changes a --from-file list asks for, all checked before any is made. */
static int quota_from_file(const char *path, const struct usertab *t,
                           struct quota_change **out, size_t *n)
{
    char *text;
    size_t len, lines = 1, lineno = 0;
    int r = 0;

    if (fs_read_file(path, QUOTA_FILE_MAX, &text, &len) != 0) {
        errmsg("%s: %s", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    *out = calloc(lines, sizeof(**out));
    for (char *p = text, *end = text + len; *out && r == 0 && p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl)
            *nl = '\0';
        else
            text[len] = '\0';          /* fs_read_file leaves room for it */
        r = quota_line(*out, n, t, path, ++lineno, p);
        p = nl ? nl + 1 : end;
    }
    free(text);
    if (*out == NULL) {
        errmsg("out of memory");
        return -1;
    }
    return r;
}

/* Make the changes under one edit lock, then one reload. */
static int quota_apply(const struct hato_config *cfg, const struct quota_change *v, size_t n)
{
    char err[ERR_MAX];
    size_t done = 0;
    int lk, r = 0;

    if ((lk = edit_lock(cfg->users_file)) < 0)
        return EXIT_FAIL;
    for (; done < n && r == 0; done++)
        if ((r = users_file_quota(cfg->users_file, v[done].addr, v[done].quota, err,
                                  sizeof(err))) < 0) {
            errmsg("%s", err);
            done--;
        }
    edit_unlock(lk);
    if (done == 0)
        return r < 0 ? EXIT_FAIL : EXIT_OK;
    if (r < 0)
        errmsg("%zu of %zu changes made", done, n);
    int rc = reload_after_edit(cfg);
    return r < 0 ? EXIT_FAIL : rc;
}

/* quota set ADDRESS SIZE | --all SIZE | --from-file FILE
 * (SIZE: 100M, unlimited, default) */
static int quota_set(const struct hato_config *cfg, int argc, char **argv)
{
    char err[ERR_MAX];
    struct quota_change *v = NULL;
    size_t n = 0;
    long long q;
    int r = 0;

    if (argc != 2 || (argv[0][0] == '-' && strcmp(argv[0], "--all") != 0
                      && strcmp(argv[0], "--from-file") != 0))
        return -EXIT_USAGE;
    struct usertab *t = users_load(cfg->users_file, err, sizeof(err));
    if (!t) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    if (strcmp(argv[0], "--from-file") == 0) {
        r = quota_from_file(argv[1], t, &v, &n);
    } else if ((r = quota_arg(argv[1], &q, "")) == 0) {
        int all = strcmp(argv[0], "--all") == 0;
        size_t want = all ? users_count(t) : 1;
        v = calloc(want ? want : 1, sizeof(*v));
        for (size_t i = 0; v && r == 0 && i < want; i++) {
            const char *a = all ? users_at(t, i)->address : argv[0];
            r = quota_add(v, &n, t, a, strlen(a), q, "");
        }
        if (!v) {
            errmsg("out of memory");
            r = -1;
        }
    }
    users_free(t);
    int rc = r < 0 ? EXIT_FAIL : quota_apply(cfg, v, n);
    free(v);
    return rc;
}

/* ---- aliases -------------------------------------------------------------- */

static const char *alias_file(const struct hato_config *cfg)
{
    if (cfg->nalias_maps == 0) {
        errmsg("alias_maps is empty in %s", cfg->path);
        return NULL;
    }
    return cfg->alias_maps[0];
}

/* A bare name ("postmaster") or an unquoted local@domain. */
static int check_alias_word(const char *s, int need_local_domain,
                            const struct hato_config *cfg)
{
    char buf[ADDR_BUF + 16];
    struct addr a;
    enum addr_err e;

    if (strlen(s) >= ADDR_BUF) {
        errmsg("%.40s...: too long", s);
        return -1;
    }
    if (strchr(s, '@'))
        snprintf(buf, sizeof(buf), "%s", s);
    else
        snprintf(buf, sizeof(buf), "%s@localhost", s);
    e = addr_parse_mailbox(buf, strlen(buf), &a);
    if (e == ADDR_OK && a.local[0] == '"')
        e = ADDR_E_SYNTAX;   /* quoted local parts do not fit the file format */
    if (e != ADDR_OK) {
        errmsg("%s: %s", s, addr_strerror(e));
        return -1;
    }
    if (need_local_domain && strchr(s, '@') && !is_local_domain(cfg, a.domain)) {
        errmsg("%s: %s is not in local_domains", s, a.domain);
        return -1;
    }
    return 0;
}

/* Split the arguments on commas into targets (pointers into argv, which is
 * modified).  Returns the count, or -1. */
static int collect_targets(int argc, char **argv, char **out, size_t max)
{
    size_t n = 0;
    char *p, *tok, *save = NULL;

    for (int i = 0; i < argc; i++)
        for (p = argv[i]; (tok = strtok_r(p, ", \t", &save)) != NULL; p = NULL) {
            if (n == max) {
                errmsg("too many targets (max %d)", ALIAS_TARGETS_MAX);
                return -1;
            }
            lower(tok);
            out[n++] = tok;
        }
    return (int)n;
}

/* Check the name and targets, then write the entry.  0 or -1. */
static int alias_write(const struct hato_config *cfg, const char *file, char *name,
                       int argc, char **argv, char **targets)
{
    char err[ERR_MAX];
    int n, lk, r;

    lower(name);
    if (check_alias_word(name, 1, cfg) < 0)
        return -1;
    n = collect_targets(argc, argv, targets, ALIAS_TARGETS_MAX);
    if (n <= 0) {
        if (n == 0)
            errmsg("no targets");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (check_alias_word(targets[i], 0, cfg) < 0)
            return -1;
    if ((lk = edit_lock(file)) < 0)
        return -1;
    r = aliases_file_set(file, name, targets, (size_t)n, err, sizeof(err));
    edit_unlock(lk);
    if (r < 0) {
        errmsg("%s", err);
        return -1;
    }
    return 0;
}

static int alias_add(const struct hato_config *cfg, int argc, char **argv)
{
    const char *file;
    char **targets;
    int r;

    if (argc < 2)
        return -EXIT_USAGE;
    if (!(file = alias_file(cfg)))
        return EXIT_FAIL;
    if (!(targets = calloc(ALIAS_TARGETS_MAX, sizeof(*targets)))) {
        errmsg("out of memory");
        return EXIT_FAIL;
    }
    r = alias_write(cfg, file, argv[0], argc - 1, argv + 1, targets);
    free(targets);
    return r < 0 ? EXIT_FAIL : reload_after_edit(cfg);
}

static int alias_del(const struct hato_config *cfg, int argc, char **argv)
{
    const char *file;
    char err[ERR_MAX];
    int lk, r;

    if (argc != 1)
        return -EXIT_USAGE;
    if (!(file = alias_file(cfg)))
        return EXIT_FAIL;
    lower(argv[0]);
    if ((lk = edit_lock(file)) < 0)
        return EXIT_FAIL;
    r = aliases_file_del(file, argv[0], err, sizeof(err));
    edit_unlock(lk);
    if (r < 0) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    return reload_after_edit(cfg);
}

static int alias_list(const struct hato_config *cfg, int argc, char **argv)
{
    const char *file, *name;
    char err[ERR_MAX];
    struct aliastab *t;
    char *const *tg;
    size_t n;

    if (argc != 0)
        return -EXIT_USAGE;
    if (!(file = alias_file(cfg)))
        return EXIT_FAIL;
    if (!(t = aliases_load(file, err, sizeof(err)))) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    for (size_t i = 0; i < aliases_count(t); i++) {
        name = aliases_at(t, i, &tg, &n);
        printf("%s:", name);
        for (size_t j = 0; j < n; j++)
            printf("%s %s", j ? "," : "", tg[j]);
        putchar('\n');
    }
    aliases_free(t);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ---- queue and daemon ------------------------------------------------------ */

static int queue_list(const struct hato_config *cfg, int argc, char **argv)
{
    char err[ERR_MAX];
    int json = 0;

    if (argc == 1 && strcmp(argv[0], "--json") == 0)
        json = 1;
    else if (argc != 0)
        return -EXIT_USAGE;
    if (ctl_queue_list(cfg, json, stdout, err, sizeof(err)) < 0) {
        errmsg("queue list: %s", err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* A control command; its answer (if any) goes to out.  `down` is the exit
 * status when hatod cannot be reached: the older verbs say 1, the newer
 * ones 75 (EX_TEMPFAIL). */
static int daemon_command(const struct hato_config *cfg, const char *cmd, FILE *out,
                          const char *what, int down)
{
    char err[ERR_MAX];
    switch (ctl_command(cfg, cmd, out, err, sizeof(err))) {
    case CTL_OK:
        return !out || fflush(out) == 0 ? EXIT_OK : EXIT_FAIL;
    case CTL_DOWN:
        errmsg("%s: hatod is not running (%s)", what, err);
        return down;
    default:
        errmsg("%s: %s", what, err);
        return EXIT_FAIL;
    }
}

static int simple_command(const struct hato_config *cfg, const char *cmd, const char *what)
{
    return daemon_command(cfg, cmd, NULL, what, EXIT_FAIL);
}

static int queue_flush(const struct hato_config *cfg, int argc, char **argv)
{
    char cmd[300];
    if (argc > 1 || (argc == 1 && (argv[0][0] == '-' || strlen(argv[0]) > 255 ||
                                   strpbrk(argv[0], " \t\r\n@"))))
        return -EXIT_USAGE;
    if (argc == 0)
        return simple_command(cfg, "QUEUE FLUSH", "queue flush");
    snprintf(cmd, sizeof cmd, "QUEUE FLUSH %s", argv[0]);
    return daemon_command(cfg, cmd, NULL, "queue flush", EXIT_DOWN);
}

/* A queue ID as the daemon writes them (16 hex digits), or ALL. */
static int queue_arg_ok(const char *a)
{
    return strcmp(a, "ALL") == 0 || qid_valid(a);
}

/* The header section of the queued message, from the queue directory. */
static void print_headers(const struct hato_config *cfg, const char *id)
{
    char dir[PATH_MAX], path[PATH_MAX + 40], line[4096];
    config_path(cfg, "queue", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/msg/%s", dir, id);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("headers: unreadable (%s)\n", strerror(errno));
        return;
    }
    printf("headers:\n");
    while (fgets(line, sizeof line, f) && line[0] != '\r' && line[0] != '\n') {
        line[strcspn(line, "\r\n")] = '\0';
        for (char *p = line; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t')
                *p = '?';
        printf("  %s\n", line);
    }
    fclose(f);
}

static int queue_show(const struct hato_config *cfg, int argc, char **argv)
{
    char cmd[64];
    if (argc != 1 || !qid_valid(argv[0]))
        return -EXIT_USAGE;
    snprintf(cmd, sizeof cmd, "QUEUE SHOW %s", argv[0]);
    int r = daemon_command(cfg, cmd, stdout, "queue show", EXIT_DOWN);
    if (r == EXIT_OK)
        print_headers(cfg, argv[0]);
    return r == EXIT_OK && fflush(stdout) != 0 ? EXIT_FAIL : r;
}

/* VERB for each of IDs (or ALL): the worst exit status of them. */
static int queue_each(const struct hato_config *cfg, const char *verb, int argc, char **argv,
                      int all_ok)
{
    char cmd[128], what[64];
    int worst = EXIT_OK;
    if (argc < 1)
        return -EXIT_USAGE;
    for (int i = 0; i < argc; i++)
        if (!queue_arg_ok(argv[i]) || (!all_ok && strcmp(argv[i], "ALL") == 0) ||
            (strcmp(argv[i], "ALL") == 0 && argc != 1))
            return -EXIT_USAGE;
    snprintf(what, sizeof what, "queue %s", verb);
    for (int i = 0; i < argc; i++) {
        snprintf(cmd, sizeof cmd, "QUEUE %s %s", verb, argv[i]);
        for (char *p = cmd + 6; *p && *p != ' '; p++)
            *p = (char)toupper((unsigned char)*p);
        int r = daemon_command(cfg, cmd, stdout, what, EXIT_DOWN);
        if (r == EXIT_DOWN)
            return r;
        if (r > worst)
            worst = r;
    }
    return worst;
}

static int queue_hold(const struct hato_config *cfg, int argc, char **argv)
{
    return queue_each(cfg, "hold", argc, argv, 1);
}

static int queue_release(const struct hato_config *cfg, int argc, char **argv)
{
    return queue_each(cfg, "release", argc, argv, 1);
}

static int queue_requeue(const struct hato_config *cfg, int argc, char **argv)
{
    return queue_each(cfg, "requeue", argc, argv, 0);
}

/* delete ID...|ALL|--from ADDR|--to DOMAIN */
static int queue_delete(const struct hato_config *cfg, int argc, char **argv)
{
    char cmd[CTL_LINE_MAX];
    if (argc == 2 && (!strcmp(argv[0], "--from") || !strcmp(argv[0], "--to"))) {
        if (strlen(argv[1]) > 200 || strpbrk(argv[1], " \t\r\n"))
            return -EXIT_USAGE;
        snprintf(cmd, sizeof cmd, "QUEUE DELETE %s %s", argv[0][2] == 'f' ? "FROM" : "TO",
                 argv[1]);
        return daemon_command(cfg, cmd, stdout, "queue delete", EXIT_DOWN);
    }
    return queue_each(cfg, "delete", argc, argv, 1);
}

/* The tables load as hatod would read them; postmaster reaches someone. */
static int check(const struct hato_config *cfg, int argc, char **argv)
{
    if (argc != 0)
        return -EXIT_USAGE;
    if (warn_postmaster(cfg, 0) < 0)
        return EXIT_FAIL;
    printf("%s: tables OK\n", cfg->path);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* ---- login lockouts (auth/throttle.h, in hatod) ------------------------- */

static int auth_lockouts(const struct hato_config *cfg, int argc, char **argv)
{
    if (argc != 0)
        return -EXIT_USAGE;
    return daemon_command(cfg, "AUTH LOCKOUTS", stdout, "auth lockouts", EXIT_DOWN);
}

static int auth_unlock(const struct hato_config *cfg, int argc, char **argv)
{
    char cmd[128];
    if (argc != 1 || strlen(argv[0]) > 64 || strpbrk(argv[0], " \t\r\n"))
        return -EXIT_USAGE;
    snprintf(cmd, sizeof cmd, "AUTH UNLOCK %s", argv[0]);
    return daemon_command(cfg, cmd, NULL, "auth unlock", EXIT_DOWN);
}

static int reload(const struct hato_config *cfg, int argc, char **argv)
{
    if (argc != 0)
        return -EXIT_USAGE;
    return simple_command(cfg, "RELOAD", "reload");
}

static const struct command commands[] = {
    { "user", "add", user_add,
      "user add ADDRESS [--quota SIZE] [--password|--password-stdin [--with-cram] [--with-scram] [--with-apop]]" },
    { "user", "passwd", user_passwd,
      "user passwd ADDRESS [--with-cram] [--with-scram] [--with-apop] [--password-stdin]" },
    { "user", "del", user_del, "user del ADDRESS" },
    { "user", "list", user_list, "user list" },
    { "quota", "show", quota_show, "quota show [ADDRESS|--all] [--sort usage] [--json]" },
    { "quota", "set", quota_set,
      "quota set ADDRESS|--all SIZE|unlimited|default, or quota set --from-file FILE" },
    { "alias", "add", alias_add, "alias add NAME TARGET..." },
    { "alias", "del", alias_del, "alias del NAME" },
    { "alias", "list", alias_list, "alias list" },
    { "queue", "list", queue_list, "queue list [--json]" },
    { "queue", "flush", queue_flush, "queue flush [DOMAIN]" },
    { "queue", "show", queue_show, "queue show ID" },
    { "queue", "hold", queue_hold, "queue hold ID...|ALL" },
    { "queue", "release", queue_release, "queue release ID...|ALL" },
    { "queue", "requeue", queue_requeue, "queue requeue ID..." },
    { "queue", "delete", queue_delete, "queue delete ID...|ALL|--from ADDR|--to DOMAIN" },
    { "auth", "lockouts", auth_lockouts, "auth lockouts" },
    { "auth", "unlock", auth_unlock, "auth unlock IP" },
    { "reload", NULL, reload, "reload" },
    { "check", NULL, check, "check" },
    { "tls", "selfsigned", hatoctl_tls_selfsigned,
      "tls selfsigned HOSTNAME [--days N] [--type rsa|ec] [--key FILE] [--cert FILE] [--force]" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: " PROG " [-f CONF] COMMAND ...\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %s\n", commands[i].usage);
}

static const struct command *find_command(int argc, char **argv)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[0], commands[i].noun) != 0)
            continue;
        if (!commands[i].verb || (argc > 1 && strcmp(argv[1], commands[i].verb) == 0))
            return &commands[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *given = NULL;
    const struct command *c;
    struct hato_config cfg;
    char err[ERR_MAX];
    int i = 1, r, skip;

    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return EXIT_OK;
    }
    if (i < argc && strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
        given = argv[i + 1];
        i += 2;
    } else if (i < argc && strncmp(argv[i], "-f", 2) == 0 && argv[i][2]) {
        given = argv[i++] + 2;
    }
    if (i >= argc || argv[i][0] == '-' || !(c = find_command(argc - i, argv + i))) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (config_load(config_default_path(given), &cfg, err, sizeof(err)) < 0) {
        errmsg("%s", err);
        return EXIT_FAIL;
    }
    skip = c->verb ? 2 : 1;
    r = c->fn(&cfg, argc - i - skip, argv + i + skip);
    config_free(&cfg);
    if (r < 0) {
        fprintf(stderr, "usage: " PROG " [-f CONF] %s\n", c->usage);
        return EXIT_USAGE;
    }
    return r;
}
