/*
 * tools/sendmail.c — hato-sendmail, also run as `sendmail`, `mailq` and
 * `newaliases` (the mode comes from the basename of argv[0]).  Owns the
 * sendmail command line (-t -i -oi -f -F -bs -bp -bi -q -C), reading the
 * message from stdin into a spool file (header edits for -t and -F), and
 * submitting it to hatod as an SMTP client over the control socket; when
 * hatod is not running, or does not take the message before its end was
 * sent (no greeting, a lost connection, 421: it is stopping), the message
 * goes into the maildrop instead, and hatod queues it when it starts.  -bs
 * relays stdin/stdout to an SMTP session.  Exit codes from <sysexits.h>.
 * Never rewrites the body; never adds Date: or Message-ID: (hatod does).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include "lib/addr.h"
#include "mta/aliases.h"
#include "mta/config.h"
#include "queue/maildrop.h"
#include "tools/ctlclient.h"

#define ERR_MAX 1024
#define SM_IN_BUF          65536              /* stdin read buffer = longest line chunk */
#define SM_HEADER_MAX      (1024 * 1024)      /* header section kept in memory */
#define SM_RCPT_MAX        10000              /* recipients of one message */
#define SM_ITEM_MAX        1024               /* one address in a header or argument */
#define SM_REPLY_TEXT      2048               /* server reply kept for messages */
#define SM_REPLY_LINES_MAX 100                /* lines of one multi-line reply */
#define SM_OUT_BUF         16384              /* DATA output buffer */
#define SM_DATA_DONE_TIMEOUT_MS 600000        /* wait for the reply to "." (commit) */
#define SM_GREETING_TIMEOUT_MS 5000           /* no greeting: hatod is stopping */
#define SM_RELAY_IDLE_MS   3600000            /* -bs: idle limit in both directions */

enum sm_mode { MODE_DELIVER, MODE_SMTP, MODE_MAILQ, MODE_NEWALIASES, MODE_FLUSH };

struct opts {
    enum sm_mode mode;
    int extract;            /* -t */
    int ignore_dots;        /* -i, -oi */
    const char *sender;     /* -f, -r */
    const char *fullname;   /* -F */
    const char *conf;       /* -C */
    const char *flush_domain;   /* -qR DOMAIN */
    char **rcpts;           /* command-line recipients */
    int nrcpts;
};

struct rcptlist {
    char **v;
    size_t n, cap;
};

/* The whole message, after header edits, in an unlinked temporary file. */
struct spool {
    FILE *f;
    long long size;         /* as sent: every line end counted as CRLF (RFC 1870) */
    long long bare_lf;      /* LFs without a CR before them, as spooled */
    int last_cr;            /* the last octet spooled was CR */
    int eightbit;
};

static const char *prog = "sendmail";

static void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errmsg(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: %s [-t] [-i] [-f sender] [-F name] [-C conf] [recipient ...]\n"
            "       %s -bs | -bp | -bi | -q [-C conf]\n", prog, prog);
    return EX_USAGE;
}

/* ---- command line ----------------------------------------------------------- */

static int set_mode_b(struct opts *o, const char *v)
{
    if (strcmp(v, "m") == 0)
        o->mode = MODE_DELIVER;
    else if (strcmp(v, "s") == 0)
        o->mode = MODE_SMTP;
    else if (strcmp(v, "p") == 0)
        o->mode = MODE_MAILQ;
    else if (strcmp(v, "i") == 0)
        o->mode = MODE_NEWALIASES;
    else {
        errmsg("unsupported mode -b%s", v);
        return -1;
    }
    return 0;
}

/* Option `c` with its value v (NULL for flags).  0 or -1 (usage). */
static int apply_opt(struct opts *o, int c, const char *v)
{
    switch (c) {
    case 't': o->extract = 1; return 0;
    case 'i': o->ignore_dots = 1; return 0;
    case 'I': o->mode = MODE_NEWALIASES; return 0;
    case 'q': o->mode = MODE_FLUSH; return 0;   /* -q, -qR..., -q30m: flush now */
    case 'b': return set_mode_b(o, v);
    case 'f': case 'r': o->sender = v; return 0;
    case 'F': o->fullname = v; return 0;
    case 'C': o->conf = v; return 0;
    case 'o':
        if (strcmp(v, "i") == 0)
            o->ignore_dots = 1;
        return 0;                                  /* other -oX: ignored */
    case 'B': case 'L': case 'N': case 'O': case 'R': case 'V': case 'X':
    case 'h': case 'p': case 'G': case 'U': case 'm': case 'n': case 'v':
        return 0;                                  /* harmless: ignored like Postfix */
    default:
        errmsg("unknown option -%c", c);
        return -1;
    }
}

/* getopt-like, but options stop at the first recipient and -q takes an
 * optional value glued to it.  0, or -1 for a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const char with_arg[] = "BCFLNORVXbfhopr";
    int i;

    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i] + 1;
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        for (; *a; a++) {
            const char *v = NULL;
            if (*a == 'q') {
                if (apply_opt(o, 'q', a + 1) < 0)
                    return -1;
                if (a[1] == 'R')         /* -qRdomain or -qR domain */
                    o->flush_domain = a[2] ? a + 2 : i + 1 < argc ? argv[++i] : NULL;
                break;
            }
            if (strchr(with_arg, *a)) {
                if (a[1])
                    v = a + 1;
                else if (i + 1 < argc)
                    v = argv[++i];
                else {
                    errmsg("option -%c needs a value", *a);
                    return -1;
                }
            }
            if (apply_opt(o, *a, v) < 0)
                return -1;
            if (v)
                break;
        }
    }
    o->rcpts = argv + i;
    o->nrcpts = argc - i;
    return 0;
}

/* ---- addresses -------------------------------------------------------------- */

static int rcpt_add(struct rcptlist *rl, const char *addr)
{
    char **v;

    for (size_t i = 0; i < rl->n; i++)
        if (strcmp(rl->v[i], addr) == 0)
            return 0;
    if (rl->n >= SM_RCPT_MAX) {
        errmsg("too many recipients (max %d)", SM_RCPT_MAX);
        return -1;
    }
    if (rl->n == rl->cap) {
        size_t cap = rl->cap ? rl->cap * 2 : 16;
        if (!(v = realloc(rl->v, cap * sizeof(*v)))) {
            errmsg("out of memory");
            return -1;
        }
        rl->v = v;
        rl->cap = cap;
    }
    if (!(rl->v[rl->n] = strdup(addr))) {
        errmsg("out of memory");
        return -1;
    }
    rl->n++;
    return 0;
}

static void rcpt_free(struct rcptlist *rl)
{
    for (size_t i = 0; i < rl->n; i++)
        free(rl->v[i]);
    free(rl->v);
}

/* A mailbox as a person or a header wrote it: "<>" brackets and a source
 * route removed, "@domain" appended when absent; checked and canonical
 * (domain lower-case) into out.  0, or -1 with a message. */
static int normalize_address(const char *in, const char *domain, char *out, size_t outlen)
{
    char buf[SM_ITEM_MAX + ADDR_DOMAIN_MAX + 2];
    struct addr a;
    enum addr_err e;
    const char *s = in, *colon;
    size_t n = strlen(in);

    if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
        s++;
        n -= 2;
    }
    if (n > 0 && s[0] == '@' && (colon = memchr(s, ':', n)) != NULL) {
        n -= (size_t)(colon + 1 - s);
        s = colon + 1;
    }
    if (n >= SM_ITEM_MAX) {
        errmsg("address too long: %.60s...", in);
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!memchr(s, '@', n))
        snprintf(buf + n, sizeof(buf) - n, "@%s", domain);
    e = addr_parse_mailbox(buf, strlen(buf), &a);
    if (e != ADDR_OK) {
        errmsg("bad address \"%s\": %s", in, addr_strerror(e));
        return -1;
    }
    snprintf(out, outlen, "%s", a.full);
    return 0;
}

struct alist_state {
    char cur[SM_ITEM_MAX];
    size_t n;
    int overflow, angle_done;
    int has_at;            /* an '@' outside quotes and angle brackets */
};

static void item_put(struct alist_state *st, char ch)
{
    if (st->angle_done)
        return;
    if (st->n + 1 >= sizeof(st->cur))
        st->overflow = 1;
    else
        st->cur[st->n++] = ch;
}

static void item_reset(struct alist_state *st)
{
    st->n = 0;
    st->overflow = st->angle_done = st->has_at = 0;
}

/* End of one list item: add its address, if any. */
static int item_end(struct alist_state *st, struct rcptlist *rl, const char *domain)
{
    char addr[ADDR_BUF];
    int r = 0;

    while (st->n > 0 && st->cur[st->n - 1] == ' ')
        st->n--;
    st->cur[st->n] = '\0';
    if (st->overflow) {
        errmsg("address too long: %.60s...", st->cur);
        r = -1;
    } else if (st->n > 0) {
        r = normalize_address(st->cur, domain, addr, sizeof(addr));
        if (r == 0)
            r = rcpt_add(rl, addr);
    }
    item_reset(st);
    return r;
}

static int list_error(const char *list, const char *why)
{
    errmsg("bad address list \"%.200s\": %s", list, why);
    return -1;
}

/* An RFC 5322 address list ("A <a@x>, b@y (Bob), group: c@z;") as found in
 * To/Cc/Bcc or on the command line: display names, comments and group
 * names dropped, each address added to rl.  Anything that does not parse
 * (unbalanced <> or quotes or comments, two <addresses> in one item, a
 * group name holding an address) is an error rather than a guess: a
 * guess could drop a recipient silently.  0, or -1 with a message. */
static int parse_address_list(const char *s, struct rcptlist *rl, const char *domain)
{
    const char *list = s;
    struct alist_state st = { .n = 0 };
    int quote = 0, depth = 0, angle = 0;

    for (; *s; s++) {
        char ch = *s == '\t' || *s == '\r' || *s == '\n' ? ' ' : *s;
        if (depth) {                        /* (comment) */
            if (ch == '\\' && s[1])
                s++;
            else if (ch == '(')
                depth++;
            else if (ch == ')')
                depth--;
            continue;
        }
        if (quote) {                        /* "quoted string" */
            item_put(&st, ch);
            if (ch == '\\' && s[1])
                item_put(&st, *++s);
            else if (ch == '"')
                quote = 0;
            continue;
        }
        switch (ch) {
        case '(': depth = 1; break;
        case ')': return list_error(list, "unbalanced ')'");
        case '"': quote = 1; item_put(&st, ch); break;
        case '<':
            if (angle || st.angle_done)
                return list_error(list, "more than one <address> in one item");
            angle = 1;
            st.n = 0;
            st.overflow = st.has_at = 0;
            break;
        case '>':
            if (!angle)
                return list_error(list, "'>' without '<'");
            angle = 0;
            st.angle_done = 1;
            break;
        case ':':
            if (angle)
                item_put(&st, ch);          /* source route */
            else if (st.has_at || st.angle_done)
                return list_error(list, "':' after an address");
            else
                item_reset(&st);            /* group name */
            break;
        case ',': case ';':
            if (angle)
                item_put(&st, ch);
            else if (item_end(&st, rl, domain) < 0)
                return -1;
            break;
        case ' ':
            if (!angle && st.n > 0 && st.cur[st.n - 1] != ' ')
                item_put(&st, ' ');
            break;
        default:
            if (ch == '@' && !angle)
                st.has_at = 1;
            item_put(&st, ch);
        }
    }
    if (quote || depth || angle)
        return list_error(list, quote ? "unterminated quoted string" :
                                depth ? "unterminated comment" : "'<' without '>'");
    return item_end(&st, rl, domain);
}

/* The envelope sender: -f (brackets allowed, "" or "<>" = null sender), or
 * the caller's login name at the first local domain.  0 or -1. */
static int resolve_sender(const struct opts *o, const char *domain, char *out, size_t len)
{
    struct passwd *pw;

    if (o->sender) {
        if (o->sender[0] == '\0' || strcmp(o->sender, "<>") == 0) {
            out[0] = '\0';
            return 0;
        }
        return normalize_address(o->sender, domain, out, len);
    }
    errno = 0;
    pw = getpwuid(getuid());
    if (!pw) {
        errmsg("cannot find the login name of uid %u: %s", (unsigned)getuid(),
               errno ? strerror(errno) : "no passwd entry");
        return -1;
    }
    return normalize_address(pw->pw_name, domain, out, len);
}

/* ---- reading the message ------------------------------------------------------ */

struct inbuf {
    int fd;
    int eof;
    size_t off, len;
    char buf[SM_IN_BUF];
};

/* The next piece of input: a whole line (through its LF), or a full buffer
 * of a longer line, or the unterminated tail.  1, 0 at EOF, -1 on error. */
static int in_chunk(struct inbuf *b, const char **p, size_t *n)
{
    char *nl;
    ssize_t r;

    for (;;) {
        nl = memchr(b->buf + b->off, '\n', b->len - b->off);
        if (nl || b->eof || (b->off == 0 && b->len == sizeof(b->buf))) {
            *p = b->buf + b->off;
            *n = nl ? (size_t)(nl + 1 - *p) : b->len - b->off;
            b->off += *n;
            return *n > 0;
        }
        if (b->off > 0) {
            memmove(b->buf, b->buf + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        r = read(b->fd, b->buf + b->len, sizeof(b->buf) - b->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            errmsg("reading the message: %s", strerror(errno));
            return -1;
        }
        if (r == 0)
            b->eof = 1;
        b->len += (size_t)r;
    }
}

struct reader {
    const struct opts *o;
    const char *domain;
    const char *sender;
    struct rcptlist *rl;
    struct spool *sp;
    char *hdr;             /* the header section as read */
    size_t hlen, hcap;
    int in_headers, at_bol, first_line, last_lf;
    int fail;              /* exit code when reading fails (default EX_DATAERR) */
};

static int hdr_append(struct reader *r, const char *p, size_t n)
{
    char *h;

    if (r->hlen + n > SM_HEADER_MAX) {
        errmsg("message header section too large (max %d octets)", SM_HEADER_MAX);
        return -1;
    }
    if (r->hlen + n + 1 > r->hcap) {
        size_t cap = r->hcap ? r->hcap : 4096;
        while (cap < r->hlen + n + 1)
            cap *= 2;
        if (!(h = realloc(r->hdr, cap))) {
            errmsg("out of memory");
            r->fail = EX_OSERR;
            return -1;
        }
        r->hdr = h;
        r->hcap = cap;
    }
    memcpy(r->hdr + r->hlen, p, n);
    r->hlen += n;
    r->hdr[r->hlen] = '\0';
    return 0;
}

/* Note what send_data will need to know: 8-bit octets, bare LFs (each
 * becomes CRLF on the wire, so SIZE= must count it twice). */
static void spool_note(struct spool *sp, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)p[i] >= 0x80)
            sp->eightbit = 1;
        if (p[i] == '\n' && !sp->last_cr)
            sp->bare_lf++;
        sp->last_cr = p[i] == '\r';
    }
}

static int spool_put(struct reader *r, const char *p, size_t n)
{
    spool_note(r->sp, p, n);
    if (n > 0 && fwrite(p, 1, n, r->sp->f) != n) {
        errmsg("writing the spool file: %s", strerror(errno));
        r->fail = EX_TEMPFAIL;
        return -1;
    }
    if (n > 0)
        r->last_lf = p[n - 1] == '\n';
    return 0;
}

/* "Name:" at the start of a line (RFC 5322 field name: printable, no ':'). */
static int is_header_start(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && p[i] > ' ' && p[i] < 127 && p[i] != ':')
        i++;
    while (i > 0 && i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;                                /* obsolete "Name :" */
    return i > 0 && i < n && p[i] == ':';
}

/* Field name match, case-insensitive, tolerating blanks before ':'. */
static int field_is(const char *f, const char *name)
{
    size_t n = strlen(name);

    if (strncasecmp(f, name, n) != 0)
        return 0;
    f += n;
    while (*f == ' ' || *f == '\t')
        f++;
    return *f == ':';
}

/* A display name as a phrase: atoms as they are, else a quoted string.
 * Control characters (CR/LF!) become spaces. */
static int write_from(struct reader *r)
{
    const char *s = r->o->fullname;
    int plain = 1;

    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(" !#$%&'*+-/=?^_`{|}~", *p))
            plain = 0;
    if (fputs("From: ", r->sp->f) == EOF || (!plain && fputc('"', r->sp->f) == EOF))
        return -1;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < ' ' || c == 127)
            c = ' ';
        if (c >= 0x80)
            r->sp->eightbit = 1;
        if (!plain && (c == '"' || c == '\\') && fputc('\\', r->sp->f) == EOF)
            return -1;
        if (fputc(c, r->sp->f) == EOF)
            return -1;
    }
    if (!plain && fputc('"', r->sp->f) == EOF)
        return -1;
    spool_note(r->sp, "\n", 1);
    return fprintf(r->sp->f, " <%s>\n", r->sender) < 0 ? -1 : 0;
}

/* Walk the header fields: note From:, collect -t recipients (Resent-* ones
 * when present, as Postfix does), drop Bcc and Resent-Bcc, write the rest. */
static int flush_headers(struct reader *r)
{
    static const char *const to_hdrs[] = { "To", "Cc", "Bcc" };
    static const char *const resent_hdrs[] = { "Resent-To", "Resent-Cc", "Resent-Bcc" };
    const char *const *rcpt_hdrs = to_hdrs;
    char *f, *next, *end = r->hdr + r->hlen;
    int has_from = 0, pass;

    r->in_headers = 0;
    for (f = r->hdr; f < end; f = (next = memchr(f, '\n', (size_t)(end - f))) ? next + 1 : end)
        if (field_is(f, "Resent-To") || field_is(f, "Resent-Cc") || field_is(f, "Resent-Bcc"))
            rcpt_hdrs = resent_hdrs;
        else if (field_is(f, "From"))
            has_from = 1;
    if (r->o->fullname && !has_from && r->sender[0] && write_from(r) < 0) {
        errmsg("writing the spool file: %s", strerror(errno));
        r->fail = EX_TEMPFAIL;
        return -1;
    }
    for (f = r->hdr; f < end; f = next) {
        /* the field runs to the first LF not followed by a blank */
        for (next = f; next < end; next++)
            if (*next == '\n' && (next + 1 >= end || (next[1] != ' ' && next[1] != '\t')))
                break;
        next = next < end ? next + 1 : end;
        /* Bcc and Resent-Bcc never reach the recipients, with or without
         * -t (as Postfix and Sendmail do; mail clients rely on it) */
        pass = !field_is(f, "Bcc") && !field_is(f, "Resent-Bcc");
        for (size_t i = 0; r->o->extract && i < 3; i++)
            if (field_is(f, rcpt_hdrs[i])) {
                char save = *next;
                *next = '\0';
                int e = parse_address_list(strchr(f, ':') + 1, r->rl, r->domain);
                *next = save;
                if (e < 0)
                    return -1;
            }
        if (pass && spool_put(r, f, (size_t)(next - f)) < 0)
            return -1;
    }
    return 0;
}

/* A line alone holding "." ends the input (without -i). */
static int is_dot_line(const char *p, size_t n)
{
    return (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '\n') ||
           (n == 3 && memcmp(p, ".\r\n", 3) == 0);
}

/* One piece of input (see in_chunk).  1 go on, 0 end of input, -1 error. */
static int take_chunk(struct reader *r, const char *p, size_t n)
{
    int bol = r->at_bol, first = r->first_line;

    r->at_bol = p[n - 1] == '\n';
    if (bol)
        r->first_line = 0;
    if (bol && !r->o->ignore_dots && is_dot_line(p, n))
        return 0;
    if (!r->in_headers)
        return spool_put(r, p, n) < 0 ? -1 : 1;
    if (bol && first && n >= 5 && memcmp(p, "From ", 5) == 0)
        return 1;                           /* an mbox "From " line: dropped */
    if (!bol || ((p[0] == ' ' || p[0] == '\t') && r->hlen > 0) || is_header_start(p, n))
        return hdr_append(r, p, n) < 0 ? -1 : 1;
    /* end of the header section: the empty line, or a body line (then a
     * separator is supplied) */
    if (flush_headers(r) < 0)
        return -1;
    if (!(n == 1 && p[0] == '\n') && !(n == 2 && p[0] == '\r' && p[1] == '\n') &&
        spool_put(r, "\n", 1) < 0)
        return -1;
    return spool_put(r, p, n) < 0 ? -1 : 1;
}

/* Read the message from stdin into sp (header edits applied), collecting
 * -t recipients into rl.  0, or an exit code (the error is reported). */
static int read_message(const struct opts *o, const char *domain, const char *sender,
                        struct rcptlist *rl, struct spool *sp)
{
    struct inbuf *in;
    struct reader r = { .o = o, .domain = domain, .sender = sender, .rl = rl, .sp = sp,
                        .in_headers = 1, .at_bol = 1, .first_line = 1, .last_lf = 1,
                        .fail = EX_DATAERR };
    const char *p;
    size_t n;
    int t;

    if (!(in = calloc(1, sizeof(*in)))) {
        errmsg("out of memory");
        return EX_OSERR;
    }
    in->fd = STDIN_FILENO;
    if (!(sp->f = tmpfile())) {
        errmsg("cannot create a spool file: %s", strerror(errno));
        free(in);
        return EX_TEMPFAIL;
    }
    for (;;) {
        t = in_chunk(in, &p, &n);
        if (t < 0) {
            r.fail = EX_IOERR;
            goto done;
        }
        if (t == 0)
            break;
        t = take_chunk(&r, p, n);
        if (t < 0)
            goto done;
        if (t == 0)
            break;
    }
    if (r.in_headers && flush_headers(&r) < 0)
        goto done;
    if (!r.last_lf && spool_put(&r, "\n", 1) < 0)
        goto done;
    if (fflush(sp->f) != 0 || ferror(sp->f)) {
        errmsg("writing the spool file: %s", strerror(errno));
        r.fail = EX_TEMPFAIL;
        goto done;
    }
    sp->size = ftell(sp->f);
    if (sp->size >= 0)
        sp->size += sp->bare_lf;
    rewind(sp->f);
    r.fail = 0;
done:
    free(r.hdr);
    free(in);
    return r.fail;
}

/* ---- SMTP over the control socket ------------------------------------------- */

struct reply {
    int code;
    int ext_8bitmime, ext_size;   /* EHLO keywords seen */
    char text[SM_REPLY_TEXT];
};

static void keyword(struct reply *rp, const char *kw)
{
    size_t n = strcspn(kw, " ");

    if (n == 8 && strncasecmp(kw, "8BITMIME", 8) == 0)
        rp->ext_8bitmime = 1;
    else if (n == 4 && strncasecmp(kw, "SIZE", 4) == 0)
        rp->ext_size = 1;
}

static int read_reply(struct ctl_conn *c, struct reply *rp, char *err, size_t errlen)
{
    char line[CTL_LINE_MAX];
    size_t used = 0;
    int code;

    memset(rp, 0, sizeof(*rp));
    for (int i = 0; i < SM_REPLY_LINES_MAX; i++) {
        if (ctl_read_line(c, line, sizeof(line), err, errlen) < 0)
            return -1;
        if (strlen(line) < 3 || !isdigit((unsigned char)line[0]) ||
            !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
            (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
            break;
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (i > 0 && code != rp->code)
            break;
        rp->code = code;
        if (i > 0 && line[3])
            keyword(rp, line + 4);
        used += (size_t)snprintf(rp->text + used, sizeof(rp->text) - used, "%s%s",
                                 i ? "\n" : "", line);
        if (used >= sizeof(rp->text))
            used = sizeof(rp->text) - 1;
        if (line[3] != '-')
            return 0;
    }
    snprintf(err, errlen, "malformed SMTP reply from hatod");
    return -1;
}

struct smtp {
    struct ctl_conn c;
    struct reply rp;
    char err[ERR_MAX];
};

/* Send one command and read its reply.  The reply's class (2..5), or -1. */
static int command(struct smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int command(struct smtp *s, const char *fmt, ...)
{
    char line[ADDR_BUF + 128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2) {
        snprintf(s->err, sizeof(s->err), "command too long");
        return -1;
    }
    memcpy(line + n, "\r\n", 3);
    if (ctl_write(&s->c, line, (size_t)n + 2, s->err, sizeof(s->err)) < 0 ||
        read_reply(&s->c, &s->rp, s->err, sizeof(s->err)) < 0)
        return -1;
    return s->rp.code / 100;
}

/* Exit code for a failed step: 4xx temporary; 5xx data error for the
 * sender/recipients, unavailable otherwise. */
static int failure(struct smtp *s, int cls, const char *what, int addr_step)
{
    if (cls < 0) {
        errmsg("%s: %s", what, s->err);
        return EX_TEMPFAIL;
    }
    errmsg("%s: %s", what, s->rp.text);
    if (cls == 4)
        return EX_TEMPFAIL;
    if (cls == 5)
        return addr_step ? EX_DATAERR : EX_UNAVAILABLE;
    return EX_PROTOCOL;
}

static int out_flush(struct smtp *s, char *buf, size_t *n)
{
    int r = *n ? ctl_write(&s->c, buf, *n, s->err, sizeof(s->err)) : 0;

    *n = 0;
    return r;
}

/* The content with CRLF line ends and dot-stuffing, then ".".  0 or -1. */
static int send_data(struct smtp *s, FILE *f)
{
    char in[SM_OUT_BUF], out[SM_OUT_BUF * 2 + 8];
    size_t nin, nout = 0;
    int bol = 1, cr = 0;

    while ((nin = fread(in, 1, sizeof(in), f)) > 0) {
        for (size_t i = 0; i < nin; i++) {
            char ch = in[i];
            if (bol && ch == '.')
                out[nout++] = '.';
            if (ch == '\n' && !cr)
                out[nout++] = '\r';
            out[nout++] = ch;
            bol = ch == '\n';
            cr = ch == '\r';
        }
        if (out_flush(s, out, &nout) < 0)
            return -1;
    }
    if (ferror(f)) {
        snprintf(s->err, sizeof(s->err), "reading the spool file: %s", strerror(errno));
        return -1;
    }
    if (!bol) {
        memcpy(out + nout, "\r\n", 2);
        nout += 2;
    }
    memcpy(out + nout, ".\r\n", 3);
    nout += 3;
    return out_flush(s, out, &nout);
}

static void quit(struct smtp *s)
{
    (void)command(s, "QUIT");
}

/* smtp_submit: hatod went away, timed out or said 421 before it had the
 * whole message.  Nothing was submitted, so the maildrop can take it (this
 * covers a hatod that is shutting down: its control socket still exists
 * but nobody accepts on it).  Not an exit code (those are >= 0). */
#define SM_TO_MAILDROP (-1)

static int gone(const struct smtp *s, int cls)
{
    return cls < 0 || s->rp.code == 421;
}

/* Record why, for the warning deliver() prints, and say "use the maildrop". */
static int to_drop(struct smtp *s, int cls, const char *what)
{
    const char *src = cls < 0 ? s->err : s->rp.text;
    char why[ERR_MAX];
    size_t n = strnlen(src, sizeof(why) - 1);

    memcpy(why, src, n);            /* s->err is both source and target */
    why[n] = '\0';
    snprintf(s->err, sizeof(s->err), "%.200s: %.800s", what, why);
    return SM_TO_MAILDROP;
}

/* A refused step: report, say QUIT if the session is still up, exit code. */
static int refused(struct smtp *s, int cls, const char *what, int addr_step)
{
    int rc = failure(s, cls, what, addr_step);

    if (cls > 0)
        quit(s);
    return rc;
}

/* The SMTP dialogue on a connected control socket.  An exit code, or
 * SM_TO_MAILDROP. */
static int smtp_submit(struct smtp *s, const char *sender, const struct rcptlist *rl,
                       const struct spool *sp)
{
    char params[64] = "";
    int cls, worst = 0, rc;

    s->c.timeout_ms = SM_GREETING_TIMEOUT_MS;
    if (ctl_write(&s->c, "SMTP\n", 5, s->err, sizeof(s->err)) < 0 ||
        read_reply(&s->c, &s->rp, s->err, sizeof(s->err)) < 0)
        return to_drop(s, -1, "no greeting from hatod");
    s->c.timeout_ms = CTL_TIMEOUT_MS;
    cls = s->rp.code / 100;
    if (cls != 2)
        return gone(s, cls) ? to_drop(s, cls, "hatod") : refused(s, cls, "hatod", 0);
    if ((cls = command(s, "EHLO localhost")) != 2)
        return gone(s, cls) ? to_drop(s, cls, "EHLO") : refused(s, cls, "EHLO", 0);
    if (s->rp.ext_size)
        snprintf(params, sizeof(params), " SIZE=%lld", sp->size);
    if (s->rp.ext_8bitmime && sp->eightbit)
        strcat(params, " BODY=8BITMIME");
    if ((cls = command(s, "MAIL FROM:<%s>%s", sender, params)) != 2)
        return gone(s, cls) ? to_drop(s, cls, "MAIL FROM") : refused(s, cls, "MAIL FROM", 1);
    for (size_t i = 0; i < rl->n; i++) {
        if ((cls = command(s, "RCPT TO:<%s>", rl->v[i])) == 2)
            continue;
        if (gone(s, cls))
            return to_drop(s, cls, rl->v[i]);
        rc = failure(s, cls, rl->v[i], 1);
        if (worst != EX_DATAERR)
            worst = rc;
    }
    if (worst) {
        errmsg("message not sent");
        quit(s);
        return worst;
    }
    if ((cls = command(s, "DATA")) != 3)
        return gone(s, cls) ? to_drop(s, cls, "DATA") : refused(s, cls, "DATA", 0);
    /* a failed send never delivered the whole final ".\r\n": not queued */
    if (send_data(s, sp->f) < 0)
        return to_drop(s, -1, "sending the message");
    s->c.timeout_ms = SM_DATA_DONE_TIMEOUT_MS;
    if (read_reply(&s->c, &s->rp, s->err, sizeof(s->err)) < 0)
        return failure(s, -1, "waiting for hatod to queue the message", 0);  /* may be queued */
    s->c.timeout_ms = CTL_TIMEOUT_MS;
    cls = s->rp.code / 100;
    if (cls != 2)
        return s->rp.code == 421 ? to_drop(s, cls, "message") : refused(s, cls, "message", 0);
    quit(s);
    return EX_OK;
}

/* Back to the start of the spool, for the maildrop after a failed try. */
static int spool_rewind(struct spool *sp)
{
    rewind(sp->f);
    if (lseek(fileno(sp->f), 0, SEEK_SET) != 0) {
        errmsg("rewinding the spool file: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* hatod is down: leave the message in the maildrop.  An exit code.  A
 * message hatod's pickup would set aside (over message_size_limit, counted
 * with CRLF line ends as both SMTP and pickup do) is refused now, while
 * the user can still be told. */
static int to_maildrop(const struct hato_config *cfg, const char *sender,
                       const struct rcptlist *rl, const struct spool *sp)
{
    char dir[PATH_MAX], name[64];
    int e;

    if (cfg->message_size_limit > 0 && sp->size > cfg->message_size_limit) {
        errmsg("message of %lld octets is over message_size_limit (%lld): not sent",
               sp->size, cfg->message_size_limit);
        return EX_DATAERR;
    }
    config_path(cfg, "maildrop", dir, sizeof(dir));
    if (maildrop_write(dir, sender, rl->v, rl->n, fileno(sp->f), name, sizeof(name)) == 0)
        return EX_OK;
    e = errno;
    errmsg("hatod is not running and the maildrop %s is not writable: %s", dir, strerror(e));
    return (e == ENOENT || e == EACCES || e == EPERM || e == EROFS) ? EX_CANTCREAT : EX_TEMPFAIL;
}

static int deliver(const struct opts *o, const struct hato_config *cfg)
{
    const char *domain = cfg->local_domains[0];
    char sender[ADDR_BUF];
    struct rcptlist rl = { 0 };
    struct spool sp = { 0 };
    struct smtp *s = NULL;
    int rc = EX_DATAERR, r;

    if (resolve_sender(o, domain, sender, sizeof(sender)) < 0)
        goto done;
    for (int i = 0; i < o->nrcpts; i++)
        if (parse_address_list(o->rcpts[i], &rl, domain) < 0)
            goto done;
    if (!o->extract && rl.n == 0) {
        errmsg("no recipients");
        rc = EX_USAGE;
        goto done;
    }
    if ((rc = read_message(o, domain, sender, &rl, &sp)) != 0)
        goto done;
    if (rl.n == 0) {
        errmsg("no recipients");
        rc = EX_USAGE;
        goto done;
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        errmsg("out of memory");
        rc = EX_OSERR;
        goto done;
    }
    r = ctl_open(&s->c, cfg, s->err, sizeof(s->err));
    if (r == CTL_OK) {
        rc = smtp_submit(s, sender, &rl, &sp);
        ctl_close(&s->c);
        if (rc != SM_TO_MAILDROP)
            goto done;
        errmsg("warning: %s; the message goes to the maildrop", s->err);
        if (spool_rewind(&sp) < 0) {
            rc = EX_TEMPFAIL;
            goto done;
        }
    } else if (r != CTL_DOWN) {
        errmsg("warning: %s", s->err);
    }
    rc = to_maildrop(cfg, sender, &rl, &sp);
done:
    free(s);
    if (sp.f)
        fclose(sp.f);
    rcpt_free(&rl);
    return rc;
}

/* ---- the other modes ---------------------------------------------------------- */

static int write_all_fd(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The -bs relay: bytes from stdin wait in `up` until hatod's socket takes
 * them.  Writes to hatod never block, so hatod's replies are read (and
 * copied to stdout) even while it is not reading: a client that pipelines
 * more than the socket buffers hold would otherwise deadlock with a
 * server that stops reading until its replies are read. */
struct relay {
    struct ctl_conn *c;
    char up[SM_OUT_BUF];
    size_t up_off, up_len;
    int greeted;           /* hatod's first line seen: stdin may flow */
    int in_open;           /* stdin not at EOF yet */
    int shut;              /* our half of the socket closed */
    int rc;
};

/* hatod → stdout.  1 go on, 0 hatod closed, -1 error (rc set). */
static int relay_down(struct relay *rl)
{
    char buf[SM_OUT_BUF];
    ssize_t n = read(rl->c->fd, buf, sizeof(buf));

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    if (write_all_fd(STDOUT_FILENO, buf, (size_t)n) < 0) {
        errmsg("-bs: writing to standard output: %s", strerror(errno));
        rl->rc = EX_IOERR;
        return -1;
    }
    if (memchr(buf, '\n', (size_t)n))
        rl->greeted = 1;
    return 1;
}

/* Half-close toward hatod once stdin is done and everything is sent. */
static void relay_maybe_shut(struct relay *rl)
{
    if (!rl->in_open && rl->up_off == rl->up_len && !rl->shut) {
        (void)shutdown(rl->c->fd, SHUT_WR);
        rl->shut = 1;
    }
}

/* stdin → buffer. */
static void relay_read_in(struct relay *rl)
{
    ssize_t n = read(STDIN_FILENO, rl->up, sizeof(rl->up));

    if (n < 0 && errno == EINTR)
        return;
    if (n <= 0) {
        if (n < 0)
            errmsg("-bs: reading standard input: %s", strerror(errno));
        rl->in_open = 0;
    } else {
        rl->up_off = 0;
        rl->up_len = (size_t)n;
    }
    relay_maybe_shut(rl);
}

/* buffer → hatod, as much as the socket takes now. */
static void relay_up(struct relay *rl)
{
    ssize_t n = send(rl->c->fd, rl->up + rl->up_off, rl->up_len - rl->up_off, MSG_NOSIGNAL);

    if (n > 0)
        rl->up_off += (size_t)n;
    else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        /* hatod is gone or closing: drop the rest, still read its replies */
        rl->up_off = rl->up_len;
        rl->in_open = 0;
        rl->shut = 1;
    }
    if (rl->up_off == rl->up_len)
        rl->up_off = rl->up_len = 0;
    relay_maybe_shut(rl);
}

/* -bs: hand stdin/stdout to hatod's SMTP session.  An exit code. */
static int smtp_stdio(const struct hato_config *cfg)
{
    struct relay *rl = calloc(1, sizeof(*rl));
    struct ctl_conn *c = calloc(1, sizeof(*c));
    char err[ERR_MAX];
    struct pollfd p[2];
    int r, rc;

    if (!rl || !c) {
        errmsg("out of memory");
        fputs("421 4.3.0 out of memory\r\n", stdout);
        fflush(stdout);
        free(c);
        free(rl);
        return EX_OSERR;
    }
    r = ctl_open(c, cfg, err, sizeof(err));
    if (r != CTL_OK || ctl_write(c, "SMTP\n", 5, err, sizeof(err)) < 0) {
        if (r != CTL_DOWN)
            errmsg("-bs: %s", err);
        fputs("421 4.3.0 mail system not running\r\n", stdout);
        fflush(stdout);
        ctl_close(c);
        free(c);
        free(rl);
        return EX_TEMPFAIL;
    }
    signal(SIGPIPE, SIG_IGN);          /* a closed stdout is an error, not a kill */
    rl->c = c;
    rl->in_open = 1;
    rl->rc = EX_OK;
    for (;;) {
        int pending = rl->up_len > rl->up_off;
        /* stdin is relayed only after the greeting: nothing the client
         * sends can reach hatod before its SMTP session has started */
        p[0] = (struct pollfd){ .fd = rl->in_open && rl->greeted && !pending ? STDIN_FILENO : -1,
                                .events = POLLIN };
        p[1] = (struct pollfd){ .fd = c->fd, .events = POLLIN | (pending ? POLLOUT : 0) };
        r = poll(p, 2, SM_RELAY_IDLE_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            errmsg("-bs: %s", r == 0 ? "idle timeout" : strerror(errno));
            rl->rc = EX_TEMPFAIL;
            break;
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            r = relay_down(rl);
            if (r <= 0)
                break;                          /* hatod closed: done */
        }
        if (pending && (p[1].revents & POLLOUT))
            relay_up(rl);
        if (p[0].fd >= 0 && p[0].revents)
            relay_read_in(rl);
    }
    rc = rl->rc;
    ctl_close(c);
    free(c);
    free(rl);
    return rc;
}

static int mailq(const struct hato_config *cfg)
{
    char err[ERR_MAX];

    if (ctl_queue_list(cfg, 0, stdout, err, sizeof(err)) < 0) {
        errmsg("%s", err);
        return EX_UNAVAILABLE;
    }
    return EX_OK;
}

static int newaliases(const struct hato_config *cfg)
{
    char err[ERR_MAX];
    struct aliastab *t;

    for (size_t i = 0; i < cfg->nalias_maps; i++) {
        if (!(t = aliases_load(cfg->alias_maps[i], err, sizeof(err)))) {
            errmsg("%s", err);
            return EX_CONFIG;
        }
        aliases_free(t);
    }
    switch (ctl_command(cfg, "RELOAD", NULL, err, sizeof(err))) {
    case CTL_OK:
        return EX_OK;
    case CTL_DOWN:
        errmsg("hatod is not running; the aliases take effect when it starts");
        return EX_OK;
    case CTL_ERR:
        errmsg("reload refused: %s", err);
        return EX_NOPERM;
    default:
        errmsg("reload: %s", err);
        return EX_UNAVAILABLE;
    }
}

static int flush(const struct hato_config *cfg, const char *domain)
{
    char err[ERR_MAX], cmd[300];
    if (domain && (!*domain || strlen(domain) > 255 || strpbrk(domain, " \t\r\n"))) {
        errmsg("-qR: bad domain");
        return EX_USAGE;
    }
    snprintf(cmd, sizeof cmd, "QUEUE FLUSH%s%s", domain ? " " : "", domain ? domain : "");
    int r = ctl_command(cfg, cmd, NULL, err, sizeof(err));

    if (r == CTL_OK)
        return EX_OK;
    errmsg("queue flush: %s%s", r == CTL_DOWN ? "mail system is down: " : "", err);
    return EX_UNAVAILABLE;
}

int main(int argc, char **argv)
{
    struct opts o = { .mode = MODE_DELIVER };
    struct hato_config cfg;
    char err[ERR_MAX];
    const char *slash;
    int rc;

    if (argc > 0 && argv[0][0]) {
        slash = strrchr(argv[0], '/');
        prog = slash ? slash + 1 : argv[0];
    }
    if (strcmp(prog, "mailq") == 0)
        o.mode = MODE_MAILQ;
    else if (strcmp(prog, "newaliases") == 0)
        o.mode = MODE_NEWALIASES;
    if (parse_args(argc, argv, &o) < 0)
        return usage();
    if (config_load(config_default_path(o.conf), &cfg, err, sizeof(err)) < 0) {
        errmsg("%s", err);
        if (o.mode == MODE_SMTP) {
            fputs("421 4.3.0 mail system configuration error\r\n", stdout);
            fflush(stdout);
        }
        return EX_CONFIG;
    }
    switch (o.mode) {
    case MODE_SMTP: rc = smtp_stdio(&cfg); break;
    case MODE_MAILQ: rc = mailq(&cfg); break;
    case MODE_NEWALIASES: rc = newaliases(&cfg); break;
    case MODE_FLUSH: rc = flush(&cfg, o.flush_domain); break;
    default: rc = deliver(&o, &cfg); break;
    }
    config_free(&cfg);
    return rc;
}
