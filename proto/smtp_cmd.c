/*
 * proto/smtp_cmd.c — the SMTP command parser (see smtp_cmd.h).
 *
 * Owns: recognising the verb of a command line, and parsing the arguments
 * of MAIL and RCPT (the path through lib/addr, then ESMTP parameters: SIZE,
 * BODY, SMTPUTF8, and DSN's RET, ENVID, NOTIFY, ORCPT with xtext), and
 * the sanity check of a HELO/EHLO argument.  Every error becomes a reply
 * (code, enhanced code, static text).
 * Must never: keep state, allocate, do I/O, or read past the NUL of `arg`.
 */
#include <string.h>
#include <strings.h>

#include "proto/smtp_cmd.h"

#define SMTP_VERB_MAX    8     /* longest verb: STARTTLS */
#define SMTP_SIZE_DIGITS 18    /* SIZE= fits a long long */
#define SMTP_HELO_MAX    255   /* octets of a HELO/EHLO argument */

static const struct {
    const char *name;
    enum smtp_verb verb;
} smtp_verbs[] = {
    { "HELO", SMTP_V_HELO }, { "EHLO", SMTP_V_EHLO }, { "MAIL", SMTP_V_MAIL },
    { "RCPT", SMTP_V_RCPT }, { "DATA", SMTP_V_DATA }, { "RSET", SMTP_V_RSET },
    { "NOOP", SMTP_V_NOOP }, { "QUIT", SMTP_V_QUIT }, { "VRFY", SMTP_V_VRFY },
    { "EXPN", SMTP_V_EXPN }, { "HELP", SMTP_V_HELP },
    { "STARTTLS", SMTP_V_STARTTLS }, { "AUTH", SMTP_V_AUTH },
    { "BDAT", SMTP_V_BDAT },
};

static int set_err(struct smtp_err *err, int code, const char *enh, const char *text)
{
    err->code = code;
    err->enh = enh;
    err->text = text;
    return -1;
}

static enum smtp_verb verb_lookup(const char *v, size_t n)
{
    size_t i;

    if (n == 0 || n > SMTP_VERB_MAX)
        return SMTP_V_UNKNOWN;
    for (i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++)
        if (strlen(smtp_verbs[i].name) == n && strncasecmp(smtp_verbs[i].name, v, n) == 0)
            return smtp_verbs[i].verb;
    return SMTP_V_UNKNOWN;
}

int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
    const char *sp;
    size_t vlen;

    cmd->verb = SMTP_V_UNKNOWN;
    cmd->arg = "";
    if (len == 0 || line[0] == ' ')
        return -1;
    if (memchr(line, '\0', len) != NULL)
        return 0;                           /* NUL in the line: UNKNOWN */
    sp = memchr(line, ' ', len);
    vlen = sp ? (size_t)(sp - line) : len;
    cmd->verb = verb_lookup(line, vlen);
    if (sp)
        cmd->arg = sp + 1;
    return 0;
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int keyword_ok(const char *k, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || c != '-'))
            return 0;
    }
    return 1;
}

/* esmtp-value = 1*(%d33-60 / %d62-126) */
static int value_ok(const char *v, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 33 || c > 126 || c == '=')
            return 0;
    }
    return 1;
}

static int is_kw(const char *k, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(k, name, n) == 0;
}

static int parse_size(const char *v, size_t n, long long *size)
{
    long long s = 0;
    size_t i;

    if (n == 0 || n > SMTP_SIZE_DIGITS)
        return -1;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        s = s * 10 + (v[i] - '0');
    }
    *size = s;
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int smtp_xtext_decode(const char *in, size_t n, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 33 || c > 126 || c == '=')
            return -1;
        if (c == '+') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            if (c < 32 || c > 126)
                return -1;
            i += 2;
        }
        if (o + 1 >= outlen)
            return -1;
        out[o++] = (char)c;
    }
    if (o >= outlen)
        return -1;
    out[o] = '\0';
    return 0;
}

/* NOTIFY=NEVER | SUCCESS,FAILURE,DELAY (each once, any order, any case). */
static int parse_notify(const char *v, size_t n, int *bits)
{
    static const struct { const char *name; int bit; } kw[] = {
        { "NEVER", SMTP_NOTIFY_NEVER }, { "SUCCESS", SMTP_NOTIFY_SUCCESS },
        { "FAILURE", SMTP_NOTIFY_FAILURE }, { "DELAY", SMTP_NOTIFY_DELAY },
    };
    size_t pos = 0, k;
    int b = 0;

    while (pos <= n) {
        const char *comma = memchr(v + pos, ',', n - pos);
        size_t len = comma ? (size_t)(comma - (v + pos)) : n - pos;
        for (k = 0; k < sizeof kw / sizeof kw[0]; k++)
            if (is_kw(v + pos, len, kw[k].name))
                break;
        if (k == sizeof kw / sizeof kw[0] || (b & kw[k].bit))
            return -1;
        b |= kw[k].bit;
        pos += len + 1;
        if (!comma)
            break;
    }
    if ((b & SMTP_NOTIFY_NEVER) && b != SMTP_NOTIFY_NEVER)
        return -1;
    *bits = b;
    return 0;
}

/* ORCPT=addr-type;xtext, decoded; addr-type an atom (rfc822, utf-8). */
static int parse_orcpt(const char *v, size_t n, char *out)
{
    const char *semi = memchr(v, ';', n);

    if (n > SMTP_ORCPT_MAX || semi == NULL || semi == v || semi + 1 == v + n)
        return -1;
    if (!keyword_ok(v, (size_t)(semi - v)))
        return -1;
    return smtp_xtext_decode(v, n, out, SMTP_ORCPT_MAX + 1);
}

/* The DSN and SMTPUTF8 parameters of MAIL: 1 not one of them, 0 taken, -1. */
static int parse_mail_ext(const char *k, size_t klen, const char *val, size_t vlen,
                          struct smtp_mail_args *mail, struct smtp_err *err)
{
    if (is_kw(k, klen, "SMTPUTF8")) {
        if (val || mail->smtputf8)
            return set_err(err, 501, "5.5.4", "Bad SMTPUTF8 parameter syntax");
        mail->smtputf8 = 1;
        return 0;
    }
    if (is_kw(k, klen, "RET")) {
        if (!val || mail->ret != SMTP_RET_NONE)
            return set_err(err, 501, "5.5.4", "Bad RET parameter syntax");
        if (is_kw(val, vlen, "FULL"))
            mail->ret = SMTP_RET_FULL;
        else if (is_kw(val, vlen, "HDRS"))
            mail->ret = SMTP_RET_HDRS;
        else
            return set_err(err, 501, "5.5.4", "Bad RET parameter syntax");
        return 0;
    }
    if (is_kw(k, klen, "ENVID")) {
        if (!val || mail->envid[0] || vlen > SMTP_ENVID_MAX ||
            smtp_xtext_decode(val, vlen, mail->envid, sizeof mail->envid) < 0)
            return set_err(err, 501, "5.5.4", "Bad ENVID parameter syntax");
        return 0;
    }
    return 1;
}

/* The DSN parameters of RCPT: 1 not one of them, 0 taken, -1. */
static int parse_rcpt_ext(const char *k, size_t klen, const char *val, size_t vlen,
                          struct smtp_rcpt_args *rcpt, struct smtp_err *err)
{
    if (is_kw(k, klen, "NOTIFY")) {
        if (!val || rcpt->notify || parse_notify(val, vlen, &rcpt->notify) < 0)
            return set_err(err, 501, "5.5.4", "Bad NOTIFY parameter syntax");
        return 0;
    }
    if (is_kw(k, klen, "ORCPT")) {
        if (!val || rcpt->orcpt[0] || parse_orcpt(val, vlen, rcpt->orcpt) < 0)
            return set_err(err, 501, "5.5.4", "Bad ORCPT parameter syntax");
        return 0;
    }
    return 1;
}

/* One "KEYWORD[=value]" token of MAIL FROM (mail != NULL) or RCPT TO. */
static int parse_param(const char *tok, size_t n, struct smtp_mail_args *mail,
                       struct smtp_rcpt_args *rcpt, struct smtp_err *err)
{
    const char *eq = memchr(tok, '=', n);
    size_t klen = eq ? (size_t)(eq - tok) : n;
    const char *val = eq ? eq + 1 : NULL;
    size_t vlen = eq ? n - klen - 1 : 0;
    int rc;

    if (!keyword_ok(tok, klen) || (eq && !value_ok(val, vlen)))
        return set_err(err, 501, "5.5.4", "Bad parameter syntax");
    rc = mail ? parse_mail_ext(tok, klen, val, vlen, mail, err)
              : parse_rcpt_ext(tok, klen, val, vlen, rcpt, err);
    if (rc <= 0)
        return rc;
    if (mail && is_kw(tok, klen, "SIZE")) {
        if (!eq || parse_size(val, vlen, &mail->size) < 0)
            return set_err(err, 501, "5.5.4", "Bad SIZE parameter syntax");
        return 0;
    }
    if (mail && is_kw(tok, klen, "BODY")) {
        if (eq && is_kw(val, vlen, "7BIT"))
            mail->body = SMTP_BODY_7BIT;
        else if (eq && is_kw(val, vlen, "8BITMIME"))
            mail->body = SMTP_BODY_8BITMIME;
        else
            return set_err(err, 501, "5.5.4", "Bad BODY parameter syntax");
        return 0;
    }
    return set_err(err, 555, "5.5.4", "Unsupported option");
}

/* The parameters after a path: `p` is just past '>'. */
static int parse_params(const char *p, struct smtp_mail_args *mail,
                        struct smtp_rcpt_args *rcpt, struct smtp_err *err)
{
    size_t n;

    if (*p != '\0' && *p != ' ')
        return set_err(err, 501, "5.5.4", "Syntax error after the address");
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return 0;
        n = strcspn(p, " ");
        if (parse_param(p, n, mail, rcpt, err) < 0)
            return -1;
        p += n;
    }
}

/* "FROM:" / "TO:" and the one tolerated space; NULL if the keyword is absent. */
static const char *skip_keyword(const char *arg, const char *kw)
{
    size_t n = strlen(kw);

    if (strncasecmp(arg, kw, n) != 0)
        return NULL;
    arg += n;
    if (*arg == ' ')
        arg++;
    return arg;
}

int smtp_parse_mail(const char *arg, struct smtp_mail_args *out, struct smtp_err *err)
{
    const char *p = skip_keyword(arg, "FROM:");
    size_t used = 0;
    enum addr_err e;
    int eight = 0;

    memset(out, 0, sizeof(*out));
    out->size = -1;
    out->body = SMTP_BODY_7BIT;
    if (p == NULL)
        return set_err(err, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
    e = addr_parse_path_utf8(p, strlen(p), 1, &out->path, &used, &eight);
    if (e == ADDR_E_NODOMAIN)
        return set_err(err, 501, "5.1.7", "Sender address must contain a domain");
    if (e != ADDR_OK || used == 0)
        return set_err(err, 501, "5.1.7", "Bad sender address syntax");
    if (parse_params(p + used, out, NULL, err) < 0)
        return -1;
    if (eight && !out->smtputf8)
        return set_err(err, 553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8");
    return 0;
}

/* <postmaster> without a domain (RFC 5321 §4.5.1): returns the octets of
 * the path, or 0 if this is not one. */
static size_t postmaster_path(const char *p, struct addr *a)
{
    const char *gt;

    if (strcasecmp(a->local, "postmaster") != 0)
        return 0;
    gt = strchr(p, '>');
    if (gt == NULL)
        return 0;
    a->is_null = 0;
    a->domain[0] = '\0';
    memcpy(a->full, "postmaster", sizeof("postmaster"));
    return (size_t)(gt - p) + 1;
}

int smtp_parse_rcpt(const char *arg, struct smtp_rcpt_args *out, struct smtp_err *err)
{
    return smtp_parse_rcpt_utf8(arg, 0, out, err);
}

int smtp_parse_rcpt_utf8(const char *arg, int utf8, struct smtp_rcpt_args *out,
                         struct smtp_err *err)
{
    const char *p = skip_keyword(arg, "TO:");
    size_t used = 0;
    enum addr_err e;
    int eight = 0;

    memset(out, 0, sizeof(*out));
    if (p == NULL)
        return set_err(err, 501, "5.5.4", "Syntax: RCPT TO:<address>");
    e = addr_parse_path_utf8(p, strlen(p), 0, &out->path, &used, &eight);
    if (eight && !utf8)
        return set_err(err, 553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8");
    if (e == ADDR_E_NODOMAIN) {
        size_t pm = postmaster_path(p, &out->path);
        if (pm == 0)
            return set_err(err, 501, "5.1.3", "Recipient address must contain a domain");
        if (used == 0)
            used = pm;          /* addr.h promises *consumed only on ADDR_OK */
    } else if (e != ADDR_OK || used == 0 || out->path.is_null) {
        return set_err(err, 501, "5.1.3", "Bad recipient address syntax");
    }
    return parse_params(p + used, NULL, out, err);
}

int smtp_check_helo(const char *arg)
{
    size_t i;

    if (arg == NULL || arg[0] == '\0')
        return -1;
    for (i = 0; arg[i] != '\0'; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (i >= SMTP_HELO_MAX || c < 33 || c > 126)
            return -1;
    }
    return 0;
}
