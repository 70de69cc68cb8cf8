/*
 * proto/pop3_cmd.c — the POP3 command parser: keyword table, argument
 * counts and number syntax.  Owns nothing but the table; never allocates.
 */
#include <string.h>
#include <strings.h>

#include "proto/pop3_cmd.h"

enum { A_REST = 1 };          /* the one argument is the rest of the line */

struct verb_def {
    const char *name;
    enum pop3_verb verb;
    unsigned char min, max;   /* argument counts */
    unsigned char numeric;    /* bit i: argument i is a number */
    unsigned char flags;
};

static const struct verb_def verbs[] = {
    { "USER", POP3_V_USER, 1, 1, 0, A_REST },
    { "PASS", POP3_V_PASS, 1, 1, 0, A_REST },
    { "APOP", POP3_V_APOP, 2, 2, 0, 0 },
    { "AUTH", POP3_V_AUTH, 0, 2, 0, 0 },
    { "STLS", POP3_V_STLS, 0, 0, 0, 0 },
    { "CAPA", POP3_V_CAPA, 0, 0, 0, 0 },
    { "STAT", POP3_V_STAT, 0, 0, 0, 0 },
    { "LIST", POP3_V_LIST, 0, 1, 1, 0 },
    { "RETR", POP3_V_RETR, 1, 1, 1, 0 },
    { "DELE", POP3_V_DELE, 1, 1, 1, 0 },
    { "RSET", POP3_V_RSET, 0, 0, 0, 0 },
    { "NOOP", POP3_V_NOOP, 0, 0, 0, 0 },
    { "QUIT", POP3_V_QUIT, 0, 0, 0, 0 },
    { "TOP", POP3_V_TOP, 2, 2, 3, 0 },
    { "UIDL", POP3_V_UIDL, 0, 1, 1, 0 },
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

const char *pop3_verb_name(enum pop3_verb v)
{
    for (size_t i = 0; i < NVERBS; i++)
        if (verbs[i].verb == v)
            return verbs[i].name;
    return "?";
}

/* Decimal digits only, no sign, at most POP3_NUM_MAX. */
static int parse_num(const char *s, unsigned long *out)
{
    unsigned long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > POP3_NUM_MAX)
            return -1;
    }
    *out = v;
    return 0;
}

/* Split p (the text after the keyword's space) on single spaces. */
static enum pop3_parse split_args(char *p, const struct verb_def *d, struct pop3_cmd *cmd)
{
    while (*p) {
        if (cmd->nargs == d->max)
            return POP3_E_SYNTAX;            /* too many */
        char *sp = strchr(p, ' ');
        if (sp == p)
            return POP3_E_SYNTAX;            /* an empty argument: two spaces */
        cmd->arg[cmd->nargs++] = p;
        if (!sp)
            break;
        *sp = '\0';
        p = sp + 1;
        if (!*p)
            return POP3_E_SYNTAX;            /* a trailing space */
    }
    return POP3_OK;
}

static enum pop3_parse parse_args(char *p, const struct verb_def *d, struct pop3_cmd *cmd)
{
    if (d->flags & A_REST) {
        if (p && *p)
            cmd->arg[cmd->nargs++] = p;
    } else if (p) {
        enum pop3_parse r = split_args(p, d, cmd);
        if (r != POP3_OK)
            return r;
    }
    if (cmd->nargs < d->min)
        return POP3_E_SYNTAX;
    for (size_t i = 0; i < cmd->nargs; i++)
        if ((d->numeric & (1u << i)) && parse_num(cmd->arg[i], &cmd->num[i]) < 0)
            return POP3_E_SYNTAX;
    return POP3_OK;
}

enum pop3_parse pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    line[len] = '\0';
    size_t kw = 0;
    while (kw < len && line[kw] != ' ')
        kw++;
    const struct verb_def *d = NULL;
    for (size_t i = 0; i < NVERBS && kw >= 3 && kw <= 4; i++)
        if (strlen(verbs[i].name) == kw && strncasecmp(line, verbs[i].name, kw) == 0)
            d = &verbs[i];
    if (!d)
        return POP3_E_UNKNOWN;
    cmd->verb = d->verb;
    if (memchr(line, '\0', len))
        return POP3_E_SYNTAX;
    if (kw == len)
        return parse_args(NULL, d, cmd);
    line[kw] = '\0';
    if (kw + 1 == len && !(d->flags & A_REST))
        return POP3_E_SYNTAX;                /* "LIST " */
    return parse_args(line + kw + 1, d, cmd);
}
